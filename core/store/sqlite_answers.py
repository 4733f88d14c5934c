"""SqliteStore's answers and feedback (the Store protocol's "answers" section), kept apart by job.

A mixin over SqliteStore's plumbing (`_fetch`, `_clock`): one rating per person per answer is a primary key,
so a second click replaces the first (an upsert), also when two clicks race."""
from __future__ import annotations

from typing import Any, Callable, Sequence

from core.store.protocol import AnswerRecord, FeedbackRow

_ANSWER_COLUMNS = ('id, platform, workspace, channel, thread, message_id, assistant, model, "user", user_name,'
                   " question, is_direct, outcome, at")


class SqliteAnswers:
    _clock: Callable[[], float]

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:  # pragma: no cover - SqliteStore's
        raise NotImplementedError

    async def save_answer(self, answer: AnswerRecord) -> None:
        await self._fetch(
            f"INSERT OR REPLACE INTO answers ({_ANSWER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (answer.id, answer.platform, answer.workspace, answer.channel, answer.thread, answer.message_id,
             answer.assistant, answer.model, answer.user, answer.user_name, answer.question,
             int(answer.is_direct), answer.outcome, answer.at))

    async def get_answer(self, answer_id: str) -> AnswerRecord | None:
        rows = await self._fetch(f"SELECT {_ANSWER_COLUMNS} FROM answers WHERE id = ?", (answer_id,))
        if not rows:
            return None
        r = tuple(rows[0])
        return AnswerRecord(*r[:11], is_direct=bool(r[11]), outcome=r[12], at=r[13])

    async def rate_answer(self, answer_id: str, user: str, rating: int) -> int | None:
        before = await self._fetch('SELECT rating FROM feedback WHERE answer_id = ? AND "user" = ?',
                                   (answer_id, user))
        await self._fetch(
            'INSERT INTO feedback (answer_id, "user", rating, at) VALUES (?, ?, ?, ?)'
            ' ON CONFLICT (answer_id, "user") DO UPDATE SET rating = excluded.rating, at = excluded.at',
            (answer_id, user, int(rating), self._clock()))
        return int(before[0][0]) if before else None

    async def forget_answers_user(self, user: str, replacement: str) -> int:
        asked = await self._fetch("UPDATE answers SET \"user\" = ?, user_name = '', question = '' WHERE \"user\" = ?"
                                  " RETURNING 1", (replacement, user))
        rated = await self._fetch('UPDATE feedback SET "user" = ? WHERE "user" = ? AND NOT EXISTS'
                                  ' (SELECT 1 FROM feedback f WHERE f.answer_id = feedback.answer_id AND f."user" = ?)'
                                  " RETURNING 1", (replacement, user, replacement))
        return len(asked) + len(rated)

    async def forget_questions(self, before: float) -> int:
        rows = await self._fetch("UPDATE answers SET question = '' WHERE at < ? AND question != '' RETURNING 1",
                                 (before,))
        return len(rows)

    async def feedback_rows(self, since: float, until: float) -> list[FeedbackRow]:
        rows = await self._fetch(
            'SELECT f.at, f.answer_id, a.platform, a.workspace, a.channel, a.thread, a.message_id, a.assistant,'
            ' a.model, a."user", f."user", f.rating FROM feedback f JOIN answers a ON a.id = f.answer_id'
            " WHERE f.at >= ? AND f.at < ? ORDER BY f.at, f.answer_id, f.\"user\"", (since, until))
        return [FeedbackRow(*tuple(r)) for r in rows]
