"""The weather function of the Assistants API tutorial: a canned answer, so it works without a weather service."""
from __future__ import annotations

import json

_KNOWN = {
    "上海": (25, "Sunny"),
    "北京": (19, "Rainy"),
}


def query_weather(city: str) -> str:
    """Get the current weather for a city: its temperature in degrees Celsius and a one-word condition.

    Args:
        city: The city's name as the user wrote it, e.g. 上海 or 北京.
    """
    temperature, condition = _KNOWN.get(city.strip(), (20, "Windy"))
    return json.dumps({"city": city, "temperature": temperature, "condition": condition}, ensure_ascii=False)
