"""The Store's answers and feedback statements (the protocol's "answers" section), written once for both
databases (see core/store/sql.py). Rating an answer is each database's own (`rate_answer`): PostgreSQL reads
the rating it replaces in the same statement, which SQLite's RETURNING cannot (it sees the new row)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

from core.store.protocol import AnswerRecord, FeedbackRow

_ANSWER_COLUMNS = ('id, platform, workspace, channel, thread, message_id, assistant, model, "user", user_name,'
                   " question, is_direct, outcome, at, conversation_id")
# Saving an id again replaces it (the answer is saved when it ends; a Retry's answer is a new id). An upsert,
# not a DELETE + INSERT: the ratings that refer to it stay.
_SAVE_ANSWER = (f"INSERT INTO answers ({_ANSWER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET platform = excluded.platform, workspace = excluded.workspace,"
                " channel = excluded.channel, thread = excluded.thread, message_id = excluded.message_id,"
                ' assistant = excluded.assistant, model = excluded.model, "user" = excluded."user",'
                " user_name = excluded.user_name, question = excluded.question, is_direct = excluded.is_direct,"
                " outcome = excluded.outcome, at = excluded.at, conversation_id = excluded.conversation_id")
_GET_ANSWER = f"SELECT {_ANSWER_COLUMNS} FROM answers WHERE id = ?"
_FEEDBACK_ROWS = ('SELECT f.at, f.answer_id, a.platform, a.workspace, a.channel, a.thread, a.message_id, a.assistant,'
                  ' a.model, a."user", f."user", f.rating FROM feedback f JOIN answers a ON a.id = f.answer_id'
                  ' WHERE f.at >= ? AND f.at < ? ORDER BY f.at, f.answer_id, f."user"')

_DELETE_FEEDBACK = "DELETE FROM feedback WHERE answer_id IN (SELECT id FROM answers WHERE conversation_id = ?)"


class SqlAnswers:
    _clock: Callable[[], float]

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:  # pragma: no cover - per database
        raise NotImplementedError

    async def save_answer(self, answer: AnswerRecord) -> None:
        await self._fetch(_SAVE_ANSWER, (
            answer.id, answer.platform, answer.workspace, answer.channel, answer.thread, answer.message_id,
            answer.assistant, answer.model, answer.user, answer.user_name, answer.question,
            bool(answer.is_direct), answer.outcome, float(answer.at), answer.conversation_id))

    async def get_answer(self, answer_id: str) -> AnswerRecord | None:
        rows = await self._fetch(_GET_ANSWER, (answer_id,))
        if not rows:
            return None
        r = tuple(rows[0])
        return AnswerRecord(*r[:11], is_direct=bool(r[11]), outcome=r[12], at=float(r[13]), conversation_id=r[14])

    async def forget_answers_user(self, user: str, replacement: str) -> int:
        asked = await self._fetch("UPDATE answers SET \"user\" = ?, user_name = '', question = ''"
                                  ' WHERE "user" = ? RETURNING 1', (replacement, user))
        # One rating per person per answer: a digest that rated the same answer already keeps its rating.
        rated = await self._fetch('UPDATE feedback SET "user" = ? WHERE "user" = ? AND NOT EXISTS'
                                  ' (SELECT 1 FROM feedback f WHERE f.answer_id = feedback.answer_id'
                                  ' AND f."user" = ?) RETURNING 1', (replacement, user, replacement))
        return len(asked) + len(rated)

    async def forget_questions(self, before: float) -> int:
        rows = await self._fetch("UPDATE answers SET question = '' WHERE at < ? AND question != '' RETURNING 1",
                                 (float(before),))
        return len(rows)

    async def delete_answers(self, conversation_id: str) -> int:
        """The answers of an erased conversation and their ratings: the ratings first, so that none is left
        pointing at nothing if the second statement fails (a second erase deletes the rest)."""
        if not conversation_id:   # answers recorded before they were linked to a conversation are not "its"
            return 0
        await self._fetch(_DELETE_FEEDBACK, (conversation_id,))
        rows = await self._fetch("DELETE FROM answers WHERE conversation_id = ? RETURNING 1", (conversation_id,))
        return len(rows)

    async def relink_answers(self, old: str, new: str) -> int:
        """A conversation made from a stored first answer (ConversationRecord.pending): the answers recorded
        under the stored answer's id belong to the conversation now (erasing it erases them)."""
        if not old or old == new:
            return 0
        rows = await self._fetch("UPDATE answers SET conversation_id = ? WHERE conversation_id = ? RETURNING 1",
                                 (new, old))
        return len(rows)

    async def feedback_rows(self, since: float, until: float) -> list[FeedbackRow]:
        rows = await self._fetch(_FEEDBACK_ROWS, (float(since), float(until)))
        return [FeedbackRow(*tuple(r)) for r in rows]
