"""The turn loop on the Responses API: stream, run the function calls the model asks for, repeat.

Where the history lives is the Session's business (core.ports.Session): a server-side session is named in the
request and the server appends the turn itself; a local one (`type: responses`, for servers that keep no
state) is sent in full, kept under `context_tokens` by core.backends.history, and the turn's items are added
to it when the answer is complete. `type: openai` (core.backends.openai.backend) adds OpenAI's hosted tools.
"""
from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable

import openai
from openai import AsyncOpenAI

from core.backends import errors
from core.backends.base import BackendBase, Sessions
from core.backends.capabilities import BY_TYPE
from core.backends.direct import DirectJSON
from core.backends.history import (CONDENSE_INSTRUCTIONS, CONDENSE_MAX_OUTPUT, HistoryWindow, LocalSession, Window,
                                   with_summary)
from core.backends.responses.events import DownloadContainerFile, EventMapper, Round, TurnState, usage_of
from core.backends.responses.items import document_text, to_input, user_message
from core.backends.responses.stream import Fallback, ResponsesStream
from core.backends.tool_calls import ToolRegistryLike, call_function, done_update, function_specs, rounds_exhausted
from core.model import (AssistantItem, BackendEvent, Capabilities, Completed, ConversationStarted, FunctionCallItem, FunctionOutputItem, HistoryItem, TextDelta, Usage, UserItem)
from core.errors import BackendError
from core.ports import Session

if TYPE_CHECKING:  # pragma: no cover
    from core.ports import Turn


class ResponsesBackend(BackendBase):
    """core.ports.AssistantBackend on a Responses API server whose Session says where the history lives."""

    capabilities: Capabilities = BY_TYPE["responses"]

    def __init__(self, client: AsyncOpenAI, tools: ToolRegistryLike, sessions: Sessions, *, who: str,
                 max_retries: int = 3, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 download: DownloadContainerFile | None = None, headers: dict[str, Any] | None = None,
                 context_tokens: int = 32000, capabilities: Capabilities | None = None,
                 model_label: Callable[[str], str] | None = None, fallback: Fallback | None = None,
                 direct: DirectJSON | None = None) -> None:
        super().__init__(client, tools, sessions, who=who, headers=headers, context_tokens=context_tokens,
                         capabilities=capabilities, model_label=model_label)
        self._templates: dict[tuple, tuple[Any, dict[str, Any]]] = {}   # see _prepared
        self._stream = ResponsesStream(client, EventMapper(who, download), who=who, max_retries=max_retries,
                                       sleep=sleep, headers=self._headers, fallback=fallback, direct=direct)

    def prepare(self) -> None:
        super().prepare()
        self._stream.prepare()   # its HTTP session (with `type: openai` the one the spares use too)

    async def aclose(self) -> None:
        await self._sessions.aclose()
        await self._stream.aclose()   # its own HTTP session for the direct requests
        await self._client.close()

    # ---- what differs per server (overridden by the openai type) ----------------------------------------

    def _params(self, turn: "Turn", session: Session) -> dict[str, Any]:
        """The request's parameters but its input: the assistant's own (prepared once, see _prepared) and this
        turn's."""
        p = dict(self._prepared(turn.assistant, session.server_side))
        if session.server_side:
            p["conversation"] = session.session_id
        return p

    def _prepared(self, a, server_side: bool) -> dict[str, Any]:
        """What every turn of assistant `a` sends the same, worked out on its first turn (and again when the
        config is reloaded: a new config brings new assistant objects). Not to be changed by the caller."""
        key = (id(a), server_side, self._variant())
        kept = self._templates.get(key)
        if kept is not None and kept[0] is a:
            return kept[1]
        if len(self._templates) >= 256:   # reloads leave old assistants behind
            self._templates.clear()
        p = self._templates[key] = (a, self._assistant_params(a, server_side))
        return p[1]

    def _variant(self) -> object:
        """Anything besides the assistant that the prepared parameters depend on (overridden by the openai type)."""
        return None

    def _assistant_params(self, a, server_side: bool) -> dict[str, Any]:
        p: dict[str, Any] = {"model": a.model}
        if not server_side:
            p["store"] = False          # nothing to keep at the server: the history is ours
        if a.instructions:
            p["instructions"] = a.instructions  # never persisted by the server: every turn
        p.update(self._sampling_of(a))
        if a.max_output_tokens is not None:
            p["max_output_tokens"] = a.max_output_tokens
        if a.reasoning_effort is not None:
            p["reasoning"] = {"effort": a.reasoning_effort}
        return p

    def _hosted_tools(self, turn: "Turn") -> list[dict[str, Any]]:
        return []

    # ---- a first turn without a conversation (capabilities.deferred_conversations; the openai type) --------

    def _first_turn(self, turn: "Turn") -> bool:
        """Whether this turn goes before its conversation exists (the server keeps it: `store: true`)."""
        return False

    def _answered_first(self, response_id: str, items: list[dict[str, Any]]) -> None:
        """Such a turn's answer is complete: its items, for the conversation made from them afterwards."""

    def _shown_first(self, response_id: str, items: list[dict[str, Any]]) -> None:
        """Such a turn ended before its answer was complete: the user's message and the text shown of the answer,
        for the conversation made afterwards should the server have kept nothing of it."""

    def _cut_short(self, first: bool, rnd: Round, pending: list[dict[str, Any]], refused: object = None) -> None:
        """`refused`: the event the reader's side quit at (a text a Stop refused was not shown)."""
        if first and rnd.response_id:
            answer = "".join(rnd.text)
            if isinstance(refused, TextDelta) and answer.endswith(refused.text):
                answer = answer[:len(answer) - len(refused.text)]
            self._shown_first(rnd.response_id, pending + to_input([AssistantItem(answer)] if answer else []))

    async def _conversation_from(self, turn: "Turn", items: list[dict[str, Any]]) -> str:
        """Such a turn needs a second request (a tool round): its conversation, made now from `items`."""
        raise BackendError(f"{self._who} keeps no conversations")

    # ---- a local history under context_tokens -----------------------------------------------------------

    async def _window(self, session: LocalSession, turn: "Turn", tools: list[Any]) -> Window:
        a = turn.assistant
        counter = self.tokens(a.model)
        room = self._room(turn, counter, tools)

        async def summarize(transcript: str) -> tuple[str, Usage]:
            try:
                resp = await self._client.with_options(max_retries=0).responses.create(
                    model=a.model, instructions=CONDENSE_INSTRUCTIONS, input=transcript, store=False,
                    max_output_tokens=CONDENSE_MAX_OUTPUT, extra_headers=self._headers)
            except openai.APIError as exc:
                raise errors.as_backend_error(exc, self._who) from exc
            return resp.output_text, usage_of(resp)

        return await HistoryWindow(counter, summarize, self._context_tokens).fit(session, room)

    # ---- one turn ----------------------------------------------------------------------------------------

    async def run(self, turn: "Turn") -> AsyncIterator[BackendEvent]:
        a = turn.assistant
        session = self._sessions.open(turn.conversation_id)
        base = self._params(turn, session)
        known: set[str] = set()
        tools: list[dict[str, Any]] = []
        if a.tools:   # (most assistants have none: no tool list to build)
            specs = [s.to_openai() for s in function_specs(self._tools, a)]
            known = {s.get("name") for s in specs}
            tools = self._hosted_tools(turn) + specs
            if tools:
                base["tools"] = tools
        usage = Usage()
        sent: list[dict[str, Any]] = []
        local = isinstance(session, LocalSession)
        if local:
            session.count = self.tokens(a.model).count
            window = await self._window(session, turn, tools)
            usage = window.usage                      # a condensing request is part of this turn's cost
            sent = to_input(window.turns)
            instructions = with_summary(a.instructions, window.summary)
            if instructions:
                base["instructions"] = instructions
        pending: list[dict[str, Any]] = [user_message(turn, vision=a.vision and self.capabilities.vision)]
        text = ("\n".join((turn.text, *(document_text(d.name, d.text) for d in turn.documents))) if turn.documents
                else turn.text)
        images = tuple(f"image {i + 1}" for i in range(len(turn.images))) if turn.images else ()
        new_items: list[HistoryItem] = [UserItem(text, images)]
        state = TurnState()
        first = self._first_turn(turn)  # no conversation yet: the server keeps this turn (openai: first_turn.py)
        for round_no in range(a.max_tool_rounds + 1):
            rnd = Round(stored=first)
            ev: BackendEvent | None = None
            try:
                async for ev in self._stream.round({**base, "input": sent + pending}, rnd, state):
                    yield ev
            except BackendError:
                self._cut_short(first, rnd, pending)
                # An answer cut short or failed still cost tokens: report them before the error.
                spent = usage + rnd.usage
                if spent != Usage():
                    yield self._completed(spent, "", state, a.model)
                raise
            except GeneratorExit:   # the turn closed the stream at `ev`: a reader's Stop, or it failed showing it
                self._cut_short(first, rnd, pending, refused=ev)
                raise
            except BaseException:   # a shutdown cut it off
                self._cut_short(first, rnd, pending)
                raise
            usage = usage + rnd.usage
            answer = "".join(rnd.text)
            if answer:
                new_items.append(AssistantItem(answer))
            if not rnd.calls:
                if local:
                    await session.add_items(new_items)
                if first:   # the conversation is made from these after the answer (make_conversation)
                    self._answered_first(rnd.response_id, pending + rnd.output)
                await self._sessions.ready(turn.conversation_id)  # e.g. a spare conversation labelled
                yield self._completed(usage, rnd.response_id, state, a.model)
                return
            if round_no == a.max_tool_rounds:
                break
            if first:
                # A tool round: the conversation is made now from what this turn has (the calls included), and
                # the turn goes on in it as every other turn does.
                conversation_id = await self._conversation_from(turn, pending + rnd.output)
                yield ConversationStarted(conversation_id)
                turn = replace(turn, conversation_id=conversation_id)
                base = self._params(turn, session=self._sessions.open(conversation_id)) | \
                    {k: v for k, v in base.items() if k == "tools"}
                first = False
            outputs: list[dict[str, Any]] = []
            calls: list[dict[str, Any]] = []
            for call in rnd.calls:
                result = await call_function(self._tools, known, call.name, call.arguments, turn.conversation_id,
                                             turn=turn)
                yield done_update(call.id or call.call_id, call.name, result)
                calls.append({"type": "function_call", "call_id": call.call_id, "name": call.name,
                              "arguments": call.arguments})
                outputs.append({"type": "function_call_output", "call_id": call.call_id, "output": result})
                new_items += [FunctionCallItem(call.call_id, call.name, call.arguments),
                              FunctionOutputItem(call.call_id, result)]
            if local:
                # Nothing is kept at the server: the calls go back with their outputs, after what was sent.
                sent = sent + pending + to_input([AssistantItem(answer)] if answer else []) + calls
            # With server-side history the function_call items are already stored: send only the outputs.
            pending = outputs
        raise BackendError(rounds_exhausted(a.max_tool_rounds))

    def _completed(self, usage: Usage, response_id: str, state: TurnState, model: str) -> Completed:
        return Completed(usage=Usage(usage.input_tokens, usage.cached_tokens, usage.output_tokens, usage.tool_calls,
                                     len(state.containers)),
                         response_id=response_id, containers=tuple(sorted(state.containers)),
                         model=self._model_label(model))
