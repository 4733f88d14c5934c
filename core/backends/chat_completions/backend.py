"""`type: chat_completions`: any server that speaks Chat Completions; teambridge keeps the history.

The turn loop of core.backends.responses.backend, in Chat Completions' shapes: the history becomes `messages`
(core.backends.chat_completions.messages), tool calls arrive as streamed fragments (…/stream.py) and go
back as an assistant message with `tool_calls` followed by one `tool` message per call.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable

import openai
from openai import AsyncOpenAI

from core.backends import errors
from core.backends.base import BackendBase
from core.backends.capabilities import BY_TYPE
from core.backends.chat_completions import messages as m
from core.backends.chat_completions.stream import ChatRound, ChatStream, usage_of
from core.backends.history import (CONDENSE_INSTRUCTIONS, CONDENSE_MAX_OUTPUT, HistoryStore, HistoryWindow,
                                   LocalSession, LocalSessions, with_summary)
from core.backends.tool_calls import ToolRegistryLike, call_function, done_update, function_specs, rounds_exhausted
from core.model import (AssistantItem, BackendEvent, Capabilities, Completed, FunctionCallItem, FunctionOutputItem, HistoryItem, ToolUpdate, Usage, UserItem)
from core.errors import BackendError

if TYPE_CHECKING:  # pragma: no cover
    from core.ports import Turn


class ChatCompletionsBackend(BackendBase):
    capabilities: Capabilities = BY_TYPE["chat_completions"]

    def __init__(self, client: AsyncOpenAI, tools: ToolRegistryLike, store: HistoryStore, *, who: str,
                 context_tokens: int = 32000, max_retries: int = 3, headers: dict[str, Any] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, capabilities: Capabilities | None = None,
                 model_label: Callable[[str], str] | None = None) -> None:
        super().__init__(client, tools, LocalSessions(store), who=who, headers=headers,
                         context_tokens=context_tokens, capabilities=capabilities, model_label=model_label)
        self._stream = ChatStream(client, who=who, max_retries=max_retries, headers=self._headers, sleep=sleep)

    def _params(self, turn: "Turn") -> dict[str, Any]:
        a = turn.assistant
        # stream_options.include_usage: the last chunk carries the token counts (without it there are none).
        p: dict[str, Any] = {"model": a.model, "stream_options": {"include_usage": True}, **self._sampling(turn)}
        if a.max_output_tokens is not None:
            # max_tokens, not OpenAI's newer max_completion_tokens: the one every compatible server knows.
            p["max_tokens"] = a.max_output_tokens
        if a.reasoning_effort is not None:
            p["reasoning_effort"] = a.reasoning_effort
        return p

    async def _summarize(self, model: str, transcript: str) -> tuple[str, Usage]:
        try:
            resp = await self._client.with_options(max_retries=0).chat.completions.create(
                model=model, max_tokens=CONDENSE_MAX_OUTPUT, extra_headers=self._headers,
                messages=[{"role": "system", "content": CONDENSE_INSTRUCTIONS}, {"role": "user", "content": transcript}])
        except openai.APIError as exc:
            raise errors.as_backend_error(exc, self._who) from exc
        text = resp.choices[0].message.content if resp.choices else ""
        return text or "", usage_of(resp.usage.model_dump()) if resp.usage else Usage()

    async def run(self, turn: "Turn") -> AsyncIterator[BackendEvent]:
        a = turn.assistant
        session: LocalSession = self._sessions.open(turn.conversation_id)
        specs = function_specs(self._tools, a)
        known = {s.name for s in specs}
        tools = [m.tool(s) for s in specs]
        base = self._params(turn)
        if tools:
            base["tools"] = tools
        counter = self.tokens(a.model)
        session.count = counter.count
        room = self._room(turn, counter, tools)
        window = await HistoryWindow(counter, lambda t: self._summarize(a.model, t),
                                     self._context_tokens).fit(session, room)
        usage = window.usage
        messages = (m.system(with_summary(a.instructions, window.summary)) + m.to_messages(window.turns)
                    + [m.user(turn, vision=a.vision and self.capabilities.vision)])
        text = "\n".join((turn.text, *(f"Attached file {d.name}:\n{d.text}" for d in turn.documents)))
        new_items: list[HistoryItem] = [UserItem(text, tuple(f"image {i + 1}" for i in range(len(turn.images))))]
        tool_calls = 0
        for round_no in range(a.max_tool_rounds + 1):
            rnd = ChatRound()
            try:
                async for ev in self._stream.round({**base, "messages": messages}, rnd):
                    yield ev
            except BackendError:
                spent = usage + rnd.usage
                if spent != Usage():
                    yield self._completed(spent, tool_calls, a.model)
                raise
            usage = usage + rnd.usage
            answer = "".join(rnd.text)
            if not rnd.calls:
                if answer:
                    new_items.append(AssistantItem(answer))
                await session.add_items(new_items)
                yield self._completed(usage, tool_calls, a.model)
                return
            if round_no == a.max_tool_rounds:
                break
            calls = [rnd.calls[i] for i in sorted(rnd.calls)]
            for n, call in enumerate(calls):
                call.id = call.id or f"call_{turn.conversation_id[-8:]}_{round_no}_{n}"  # some servers send none
            said: list[HistoryItem] = [AssistantItem(answer)] if answer else []
            new_items += said
            round_items: list[HistoryItem] = [FunctionCallItem(c.id, c.name, c.arguments_json) for c in calls]
            for call in calls:
                yield ToolUpdate(call.id, "function", "running", f"Calling {call.name}", call.arguments_json)
            outputs: list[HistoryItem] = []
            for call in calls:
                result = await call_function(self._tools, known, call.name, call.arguments_json, turn.conversation_id,
                                             turn=turn)
                yield done_update(call.id, call.name, result)
                outputs.append(FunctionOutputItem(call.id, result))
            tool_calls += len(calls)
            # The answer so far and the calls are one assistant message, then one tool message per output.
            messages = messages + m.to_messages(said + round_items + outputs)
            new_items += round_items + outputs
        raise BackendError(rounds_exhausted(a.max_tool_rounds))

    def _completed(self, usage: Usage, tool_calls: int, model: str) -> Completed:
        return Completed(usage=Usage(usage.input_tokens, usage.cached_tokens, usage.output_tokens, tool_calls),
                         model=self._model_label(model))
