"""Retry-once for the calls that deliver a reply (post, edit): a platform hiccup costs one more request,
a second failure propagates so the stream can fall back (post the text anew) or the caller can log it."""
from __future__ import annotations

import logging
from typing import Awaitable, Callable, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


async def twice(call: Callable[..., Awaitable[T]], *args, **kwargs) -> T:
    try:
        return await call(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - retried once; the second failure propagates
        log.warning("reply delivery: %s failed (%r), retrying once", getattr(call, "__name__", call), exc)
    return await call(*args, **kwargs)
