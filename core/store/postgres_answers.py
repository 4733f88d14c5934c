"""PostgresStore's answers and feedback (the Store protocol's "answers" section), kept apart by job.

A mixin over PostgresStore's pool (`_require`) and clock: one rating per person per answer is a primary key,
so a second click replaces the first (an upsert), also when two processes take the two clicks."""
from __future__ import annotations

from typing import Any, Callable

from core.store.protocol import AnswerRecord, FeedbackRow

_ANSWER_COLUMNS = ('id, platform, workspace, channel, thread, message_id, assistant, model, "user", user_name,'
                   " question, is_direct, outcome, at")


class PostgresAnswers:
    _clock: Callable[[], float]

    def _require(self) -> Any:  # pragma: no cover - PostgresStore's
        raise NotImplementedError

    async def save_answer(self, answer: AnswerRecord) -> None:
        await self._require().execute(
            f"INSERT INTO answers ({_ANSWER_COLUMNS})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
            " ON CONFLICT (id) DO UPDATE SET message_id = excluded.message_id, model = excluded.model,"
            " outcome = excluded.outcome, at = excluded.at",
            answer.id, answer.platform, answer.workspace, answer.channel, answer.thread, answer.message_id,
            answer.assistant, answer.model, answer.user, answer.user_name, answer.question,
            bool(answer.is_direct), answer.outcome, float(answer.at))

    async def get_answer(self, answer_id: str) -> AnswerRecord | None:
        r = await self._require().fetchrow(f"SELECT {_ANSWER_COLUMNS} FROM answers WHERE id = $1", answer_id)
        if r is None:
            return None
        return AnswerRecord(*tuple(r)[:11], is_direct=bool(r[11]), outcome=r[12], at=float(r[13]))

    async def rate_answer(self, answer_id: str, user: str, rating: int) -> int | None:
        # The row as it was is read in the same statement that replaces it (xmax = 0: it was inserted).
        row = await self._require().fetchrow(
            'WITH old AS (SELECT rating FROM feedback WHERE answer_id = $1 AND "user" = $2)'
            ' INSERT INTO feedback (answer_id, "user", rating, at) VALUES ($1, $2, $3, $4)'
            ' ON CONFLICT (answer_id, "user") DO UPDATE SET rating = excluded.rating, at = excluded.at'
            " RETURNING (SELECT rating FROM old)", answer_id, user, int(rating), self._clock())
        return None if row is None or row[0] is None else int(row[0])

    async def forget_answers_user(self, user: str, replacement: str) -> int:
        pool = self._require()
        asked = await pool.fetch("UPDATE answers SET \"user\" = $1, user_name = '', question = ''"
                                 ' WHERE "user" = $2 RETURNING 1', replacement, user)
        # One rating per person per answer: a digest that rated the same answer already keeps its rating.
        rated = await pool.fetch('UPDATE feedback SET "user" = $1 WHERE "user" = $2 AND NOT EXISTS'
                                 ' (SELECT 1 FROM feedback f WHERE f.answer_id = feedback.answer_id'
                                 ' AND f."user" = $1) RETURNING 1', replacement, user)
        return len(asked) + len(rated)

    async def forget_questions(self, before: float) -> int:
        rows = await self._require().fetch("UPDATE answers SET question = '' WHERE at < $1 AND question != ''"
                                           " RETURNING 1", float(before))
        return len(rows)

    async def feedback_rows(self, since: float, until: float) -> list[FeedbackRow]:
        rows = await self._require().fetch(
            'SELECT f.at, f.answer_id, a.platform, a.workspace, a.channel, a.thread, a.message_id, a.assistant,'
            ' a.model, a."user", f."user", f.rating FROM feedback f JOIN answers a ON a.id = f.answer_id'
            " WHERE f.at >= $1 AND f.at < $2 ORDER BY f.at, f.answer_id, f.\"user\"", float(since), float(until))
        return [FeedbackRow(*tuple(r)) for r in rows]
