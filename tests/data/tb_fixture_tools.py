"""Function tools used by tests/tools/test_tools.py and tests/config/test_config.py (imported from this directory)."""
from __future__ import annotations

import asyncio
import threading
from typing import Literal

from pydantic import BaseModel

NOT_A_FUNCTION = 42

# Set by the test after the sync tool has timed out, so its worker thread ends instead of lingering.
release_sync_hang = threading.Event()


def convert_temperature(value: float, unit: Literal["C", "F"], precision: int = 1) -> dict:
    """Convert a temperature between Celsius and Fahrenheit.

    The result is rounded.

    Args:
        value: The temperature to convert.
        unit: The unit `value` is in; the answer is in the other one.
        precision (int): Digits after the decimal point.
    """
    converted = value * 9 / 5 + 32 if unit == "C" else (value - 32) * 5 / 9
    return {"value": round(converted, precision), "unit": "F" if unit == "C" else "C"}


async def lookup_order(order_id: int, include_items: bool) -> str:
    """Look up a coffee order by its number.

    :param order_id: The order number printed on the receipt.
    :param include_items: Whether to list what was ordered.
    """
    await asyncio.sleep(0)
    text = f"Order {order_id}: ready for pickup"
    return text + (" (1× Harbour Fog, 250 g)" if include_items else "")


def shout(text: str) -> str:
    """Repeat text in capitals."""
    return text.upper()


def broken(text: str) -> str:
    """Always fails."""
    raise RuntimeError(f"the grinder jammed on {text!r}")


async def hang(seconds: float = 30) -> str:
    """Never answers in time."""
    await asyncio.sleep(seconds)
    return "too late"


def sync_hang() -> str:
    """A synchronous tool stuck in blocking I/O."""
    release_sync_hang.wait(10)
    return "too late"


async def own_timeout() -> str:
    """A tool whose own client times out: not the registry's deadline."""
    raise TimeoutError("upstream weather service did not answer")


class Receipt(BaseModel):
    total: float
    currency: str = "EUR"
    note: str = "café"


def make_receipt(total: float) -> Receipt:
    """Return a receipt object (not a string)."""
    return Receipt(total=total)


def set_volume(level):
    """Set a level (no type hints at all)."""
    return {"level": level}
