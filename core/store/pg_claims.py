"""Event claims on PostgreSQL, several per round trip.

Every platform event is claimed before it is answered (core.store.protocol.EventClaims): one INSERT against the
primary key of `processed_events`, the first writer wins across processes. A burst of mentions makes one claim
each, all at once; here the claims asked for in the same event-loop turn — or while the previous batch is on
its way — go to the server as one statement:

    INSERT … SELECT FROM unnest($1, $2) ON CONFLICT DO NOTHING RETURNING platform, event_key

It is one statement, so one transaction: each row is inserted or skipped by the primary key exactly as its own
INSERT would be (another process's claim of the same event, committed or in flight, makes ours skip or wait
for it), and a claim is answered only after the statement committed. Two claims of the same event in one batch
(a redelivery arriving together with the original) give the first one the row and the second False.
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

# fetch(sql, *args) -> rows: the pool's fetch
Fetch = Callable[..., Awaitable[list[Any]]]

CLAIM_MANY = ("INSERT INTO processed_events (platform, event_key, created_at)"
              " SELECT platform, event_key, $3 FROM unnest($1::text[], $2::text[]) AS t(platform, event_key)"
              " ORDER BY platform, event_key"
              " ON CONFLICT (platform, event_key) DO NOTHING RETURNING platform, event_key")


class ClaimBatcher:
    def __init__(self, fetch: Fetch, clock: Callable[[], float]) -> None:
        self._fetch = fetch
        self._clock = clock
        self._pending: list[tuple[str, str, asyncio.Future[bool]]] = []
        self._busy = False
        self._scheduled = False

    def claim(self, platform: str, event_key: str) -> asyncio.Future[bool]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        self._pending.append((platform, event_key, fut))
        if not self._busy and not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._scheduled = False
        if self._busy or not self._pending:
            return
        batch, self._pending = self._pending, []
        self._busy = True
        asyncio.ensure_future(self._send(batch))

    async def _send(self, batch: list[tuple[str, str, asyncio.Future[bool]]]) -> None:
        try:
            # Distinct and in one order everywhere: two processes claiming overlapping events (Slack's app_mention
            # and message.* of one mention share a key) take the row locks in the same order, so neither can wait
            # on the other in a cycle (PostgreSQL would abort one batch as a deadlock).
            keys = sorted({(p, k) for p, k, _ in batch})
            rows = await self._fetch(CLAIM_MANY, [p for p, _ in keys], [k for _, k in keys], self._clock())
        except BaseException as exc:  # noqa: BLE001 - every claim of the batch fails with it
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            won = {(r[0], r[1]) for r in rows}
            for platform, key, fut in batch:
                first = (platform, key) in won
                won.discard((platform, key))   # a second claim of the same event in this batch loses
                if not fut.done():
                    fut.set_result(first)
        finally:
            self._busy = False
            if self._pending:
                self._flush()
