"""What every backend type sets up the same way: its client, tool registry and sessions, the label its model
goes by in usage, a token counter per model, the room a turn leaves for the history, and the sampling
options both APIs spell alike. Stateless between turns: a turn's own state lives in its run().
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol

from openai import AsyncOpenAI

from core.backends.history import budget
from core.backends.tokens import Tokens
from core.backends.tool_calls import ToolRegistryLike
from core.errors import BackendError
from core.model import Capabilities
from core.ports import Session

if TYPE_CHECKING:  # pragma: no cover
    from core.ports import Turn


class Sessions(Protocol):
    """Makes and opens a backend's conversations."""

    async def create(self, metadata: dict[str, str]) -> str: ...
    def open(self, conversation_id: str) -> Session: ...
    def prepare(self) -> None: ...                             # a long-running process starts: get ready now
    async def ready(self, conversation_id: str) -> None: ...   # anything started by create() finished
    async def aclose(self) -> None: ...


class BackendBase:
    capabilities: Capabilities

    def __init__(self, client: AsyncOpenAI, tools: ToolRegistryLike, sessions: Sessions, *, who: str,
                 headers: dict[str, Any] | None = None, context_tokens: int = 32000,
                 capabilities: Capabilities | None = None, model_label: Callable[[str], str] | None = None) -> None:
        self._client = client
        self._tools = tools
        self._sessions = sessions
        self._who = who
        self._headers = headers or {}
        self._context_tokens = context_tokens
        self._tokens: dict[str, Tokens] = {}
        self._model_label = model_label or (lambda model: model)
        if capabilities is not None:
            self.capabilities = capabilities

    def prepare(self) -> None:
        """`teambridge run` has started (in its event loop): what the first answers would otherwise set up on
        their way to the model is set up now."""
        self._sessions.prepare()

    async def aclose(self) -> None:
        await self._sessions.aclose()
        await self._client.close()

    async def create_conversation(self, metadata: dict[str, str]) -> str:
        return await self._sessions.create(metadata)

    async def ready_conversation(self, metadata: dict[str, str]) -> str | None:
        """A conversation for a new thread without waiting for one to be made; here (no deferred conversations)
        one is made now."""
        return await self.create_conversation(metadata)

    async def make_conversation(self, pending: str, metadata: dict[str, str]) -> str:
        raise BackendError(f"{self._who} makes its conversations before the first turn")

    def session(self, conversation_id: str) -> Session:
        return self._sessions.open(conversation_id)

    def tokens(self, model: str) -> Tokens:
        """The token counter of one model, its encoding loading in the background from the first use on."""
        counter = self._tokens.get(model)
        if counter is None:
            counter = self._tokens[model] = Tokens(model)
        counter.start_loading()
        return counter

    def _room(self, turn: "Turn", counter: Tokens, tools: list[Any]) -> int:
        """Tokens left for the history once the turn's own parts (and the answer) have theirs."""
        a = turn.assistant
        return budget(self._context_tokens, counter, instructions=a.instructions,
                      text=turn.text + "".join(d.text for d in turn.documents), tools=tools,
                      images=len(turn.images), max_output=a.max_output_tokens)

    @staticmethod
    def _sampling(turn: "Turn") -> dict[str, Any]:
        """temperature and top_p, when the assistant sets them (both APIs name them alike)."""
        return BackendBase._sampling_of(turn.assistant)

    @staticmethod
    def _sampling_of(a) -> dict[str, Any]:
        p: dict[str, Any] = {}
        if a.temperature is not None:
            p["temperature"] = a.temperature
        if a.top_p is not None:
            p["top_p"] = a.top_p
        return p
