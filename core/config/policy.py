"""Config models for limits and prices (pydantic: this is the config boundary).

The lead wires these into core.config.schema.Config as `limits: LimitsConfig` and `prices: PricesConfig`, and into
AssistantConfig as `limits: LimitsConfig | None` (per-assistant overrides, see `effective_limits`).
"""
from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LimitsConfig(_Strict):
    """None means unlimited. Counters are per platform user id / channel id, across all assistants."""
    messages_per_minute: int | None = Field(None, ge=1)        # per user, sliding 60 s window
    tokens_per_user_per_day: int | None = Field(None, ge=1)    # input + output tokens, UTC day
    tokens_per_channel_per_day: int | None = Field(None, ge=1)


def effective_limits(base: LimitsConfig, override: LimitsConfig | None) -> LimitsConfig:
    """Per-assistant override: only the keys written in the assistant's `limits:` block replace the global ones
    (so `tokens_per_user_per_day: null` there lifts the global budget for that assistant)."""
    if override is None:
        return base
    return base.model_copy(update={name: getattr(override, name) for name in override.model_fields_set})


class ModelPrice(_Strict):
    """USD per 1M tokens. `cached_input` defaults to `input` (no caching discount known)."""
    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(None, ge=0)

    @property
    def cached(self) -> float:
        return self.input if self.cached_input is None else self.cached_input


# EXAMPLES — standard-tier list prices as known when this was written. Check them against
# https://openai.com/api/pricing/ and override in config.yaml under `prices.models`; entries there are merged
# over these (same name replaces, new names add).
DEFAULT_MODEL_PRICES: dict[str, ModelPrice] = {
    "gpt-5": ModelPrice(input=1.25, cached_input=0.125, output=10.00),
    "gpt-5-mini": ModelPrice(input=0.25, cached_input=0.025, output=2.00),
    "gpt-5-nano": ModelPrice(input=0.05, cached_input=0.005, output=0.40),
    "gpt-4.1": ModelPrice(input=2.00, cached_input=0.50, output=8.00),
    "gpt-4.1-mini": ModelPrice(input=0.40, cached_input=0.10, output=1.60),
    "gpt-4.1-nano": ModelPrice(input=0.10, cached_input=0.025, output=0.40),
    "gpt-4o": ModelPrice(input=2.50, cached_input=1.25, output=10.00),
    "gpt-4o-mini": ModelPrice(input=0.15, cached_input=0.075, output=0.60),
}


class PricesConfig(_Strict):
    """The tutorial's price list: tokens per model, code interpreter per session, file search storage per GB-day.
    Defaults are EXAMPLES to be checked against OpenAI's pricing page."""
    models: dict[str, ModelPrice] = Field(default_factory=lambda: dict(DEFAULT_MODEL_PRICES))
    code_interpreter_session: float = Field(0.03, ge=0)   # USD per container session (1 GB memory tier)
    vector_storage_gb_day: float = Field(0.10, ge=0)      # USD per GB per day
    vector_storage_free_gb: float = Field(1.0, ge=0)      # OpenAI does not bill the first GB

    @model_validator(mode="before")
    @classmethod
    def _merge_default_models(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("models"), dict):
            merged: dict[str, Any] = dict(DEFAULT_MODEL_PRICES)
            merged.update(data["models"])
            data = {**data, "models": merged}
        return data

    def for_model(self, model: str) -> ModelPrice | None:
        """Exact name, else the name without a dated snapshot suffix (gpt-4.1-2025-04-14 bills like gpt-4.1).
        No looser prefix match: gpt-5-pro must not silently bill like gpt-5. Unknown -> None (reported as unpriced)."""
        if model in self.models:
            return self.models[model]
        base = _SNAPSHOT.sub("", model)
        return self.models.get(base)


_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")
