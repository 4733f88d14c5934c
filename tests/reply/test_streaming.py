"""core.reply.stream.EditStream: what a user watching the channel sees while an answer streams in.

A fake ReplyTarget records every post and edit with the time of a fake clock; the stream's throttle
sleeps on that clock, so the tests run instantly and the timing assertions are exact.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from core.model import OutboundFile, ToolUpdate
from core.ports import Limits
from core.reply.splitting import MIN_LIMIT, is_fence_line, split_message, unsplit
from core.reply.stream import EditStream

CURSOR = " ▌"


class FakeClock:
    """Virtual time: sleep() returns when a test advances the clock past the deadline."""

    def __init__(self) -> None:
        self.now = 0.0
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((self.now + seconds, future))
        await future

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        for deadline, future in list(self._waiters):
            if deadline <= self.now + 1e-9 and not future.done():
                future.set_result(None)
        self._waiters = [(d, f) for d, f in self._waiters if not f.done()]
        for _ in range(10):                    # let woken tasks run to their next await
            await asyncio.sleep(0)


class PlatformDown(Exception):
    pass


@dataclass
class Sent:
    kind: str          # "post" | "edit"
    message_id: str
    text: str
    at: float


class FakeTarget:
    """A chat channel: messages by id, plus a log of every request the stream made."""

    def __init__(self, clock: FakeClock, max_chars: int = 2000, edit_interval: float = 1.0) -> None:
        self.limits = Limits(max_chars=max_chars, edit_interval=edit_interval)
        self.clock = clock
        self.messages: dict[str, str] = {}
        self.log: list[Sent] = []
        self.failing_edits: set[str] = set()  # message ids whose edits fail
        self.edit_failures = 0                 # the next N edits fail
        self.post_failures = 0                 # the next N posts fail
        self.stale: set[str] = set()           # messages whose last edit failed: they show an old text

    async def post(self, text: str) -> str:
        assert 0 < len(text) <= self.limits.max_chars, f"post of {len(text)} chars"
        if self.post_failures:
            self.post_failures -= 1
            raise PlatformDown("post failed")
        message_id = f"m{len(self.messages) + 1}"
        self.messages[message_id] = text
        self.log.append(Sent("post", message_id, text, self.clock()))
        return message_id

    async def edit(self, message_id: str, text: str, *, final: bool = False) -> bool:
        assert 0 < len(text) <= self.limits.max_chars, f"edit of {len(text)} chars"
        assert message_id in self.messages
        if message_id in self.failing_edits or self.edit_failures:
            self.edit_failures = max(0, self.edit_failures - 1)
            self.stale.add(message_id)
            raise PlatformDown("edit failed")
        self.stale.discard(message_id)
        self.messages[message_id] = text
        self.log.append(Sent("edit", message_id, text, self.clock()))
        return True

    async def upload(self, file: OutboundFile) -> None:  # pragma: no cover - not used by the stream
        raise NotImplementedError

    async def notice(self, text: str, *, ephemeral: bool = False) -> None:  # pragma: no cover
        raise NotImplementedError

    async def typing(self) -> None:  # pragma: no cover
        pass

    def open_stream(self, on_posted):  # pragma: no cover
        return None

    # what the user sees
    def thread(self) -> list[str]:
        return list(self.messages.values())


def make(max_chars: int = 2000, edit_interval: float = 1.0) -> tuple[EditStream, FakeTarget, FakeClock, list[str]]:
    clock = FakeClock()
    target = FakeTarget(clock, max_chars, edit_interval)
    tracked: list[str] = []

    async def on_posted(message_id: str) -> None:
        tracked.append(message_id)

    stream = EditStream(target, on_posted=on_posted, clock=clock, sleep=clock.sleep, cursor=CURSOR)
    return stream, target, clock, tracked


def running(title: str, item: str = "t1", tool: str = "code_interpreter") -> ToolUpdate:
    return ToolUpdate(item_id=item, tool=tool, status="running", title=title)


# ---- a platform that holds the first post until its budget has room (may_start / resume) --------------


async def test_a_held_reply_shows_what_it_has_when_resumed_without_waiting_for_more_text() -> None:
    clock = FakeClock()
    target = FakeTarget(clock)
    room = False
    stream = EditStream(target, clock=clock, sleep=clock.sleep, cursor=CURSOR, may_start=lambda: room)
    await stream.text("Hello")
    await stream.text(" there")
    assert target.thread() == []                     # held: no room for a first post yet
    room = True
    stream.resume()                                  # the platform's turn came: the model is silent (a tool runs)
    await clock.advance(0)
    assert target.thread() == ["Hello there" + CURSOR]
    await stream.close()
    assert target.thread() == ["Hello there"]


async def test_a_reply_that_closed_before_its_turn_is_posted_whole_and_a_late_resume_changes_nothing() -> None:
    clock = FakeClock()
    target = FakeTarget(clock)
    stream = EditStream(target, clock=clock, sleep=clock.sleep, cursor=CURSOR, may_start=lambda: False)
    await stream.text("All of it")
    await stream.close()
    stream.resume()
    await clock.advance(0)
    assert [(s.kind, s.text) for s in target.log] == [("post", "All of it")]    # one write, no edit


# ---- first text, coalescing, throttling ---------------------------------------------------------


async def test_first_text_is_posted_immediately_with_a_cursor() -> None:
    stream, target, clock, tracked = make()
    await stream.text("Hello")
    assert target.thread() == ["Hello" + CURSOR]
    assert target.log[0].at == 0.0
    assert tracked == ["m1"] == stream.message_ids
    await stream.close()
    assert target.thread() == ["Hello"]


async def test_hundred_quick_deltas_become_a_few_edits_spaced_by_the_interval() -> None:
    stream, target, clock, _ = make(edit_interval=1.0)
    words = [f"word{i} " for i in range(100)]
    for word in words:                         # the model streams a token every 30 ms
        await stream.text(word)
        await clock.advance(0.03)
    edits_while_streaming = [s for s in target.log if s.kind == "edit"]
    await stream.close()

    assert target.thread() == ["".join(words)]
    assert stream.text_so_far == "".join(words)
    assert [s.kind for s in target.log].count("post") == 1
    assert 2 <= len(edits_while_streaming) <= 4          # 3 s of streaming, one edit per second
    times = [s.at for s in target.log]
    assert all(b - a >= 1.0 - 1e-9 for a, b in zip(times[:-1], times[1:-1]))  # the final edit goes at once
    for sent in edits_while_streaming:                   # latest text wins: each edit shows all text so far
        assert sent.text.endswith(CURSOR)
        assert "".join(words).startswith(sent.text[: -len(CURSOR)])
    assert target.log[-1].text == "".join(words)         # the final edit: no cursor, the whole answer


async def test_an_edit_is_sent_after_the_interval_even_if_the_model_pauses() -> None:
    stream, target, clock, _ = make(edit_interval=1.0)
    await stream.text("The answer")
    await stream.text(" is 42")
    await clock.advance(0.5)
    assert target.thread() == ["The answer" + CURSOR]
    await clock.advance(0.5)
    assert target.thread() == ["The answer is 42" + CURSOR]
    assert [s.at for s in target.log] == [0.0, 1.0]
    await stream.close()
    assert target.thread() == ["The answer is 42"]


async def test_close_sends_the_final_edit_without_waiting_for_the_interval() -> None:
    stream, target, clock, _ = make(edit_interval=5.0)
    await stream.text("Quick")
    await stream.text(" answer.")
    await stream.close()                       # would hang here if close() slept on the fake clock
    assert target.thread() == ["Quick answer."]
    assert [(s.kind, s.at) for s in target.log] == [("post", 0.0), ("edit", 0.0)]


async def test_empty_answer_shows_no_answer() -> None:
    stream, target, _, _ = make()
    await stream.close()
    assert target.thread() == ["(no answer)"]


# ---- status line ----------------------------------------------------------------------------------


async def test_tool_status_is_shown_first_then_under_the_text_then_removed() -> None:
    stream, target, clock, _ = make()
    await stream.status(running("Running code"))
    assert target.thread() == ["_⚙️ Running code…_"]          # before any text, posted at once

    await stream.text("The 20th Fibonacci number is")
    await clock.advance(1)
    assert target.thread() == ["The 20th Fibonacci number is" + CURSOR + "\n\n_⚙️ Running code…_"]

    await stream.status(ToolUpdate(item_id="t1", tool="code_interpreter", status="done", title="Running code"))
    await clock.advance(1)
    assert target.thread() == ["The 20th Fibonacci number is" + CURSOR + "\n\n_✅ Running code_"]

    await stream.text(" 6765.")                                 # a finished tool's line goes with new text
    await clock.advance(1)
    assert target.thread() == ["The 20th Fibonacci number is 6765." + CURSOR]

    await stream.status(running("Searching files", item="t2", tool="file_search"))
    await clock.advance(1)
    assert target.thread()[0].endswith("\n\n_⚙️ Searching files…_")
    await stream.status(None)
    await clock.advance(1)
    assert target.thread() == ["The 20th Fibonacci number is 6765." + CURSOR]

    await stream.status(running("Searching files", item="t3", tool="file_search"))
    await stream.close()
    assert target.thread() == ["The 20th Fibonacci number is 6765."]


async def test_custom_status_format() -> None:
    clock = FakeClock()
    target = FakeTarget(clock)
    stream = EditStream(target, clock=clock, sleep=clock.sleep,
                        status_format=lambda u: f"*{u.title}* ({u.status})")
    await stream.status(running("Calling query_weather", tool="function"))
    assert target.thread() == ["*Calling query_weather* (running)"]
    await stream.close()
    assert target.thread() == ["(no answer)"]


async def test_status_inside_an_open_code_block_is_kept_out_of_the_code() -> None:
    stream, target, clock, _ = make()
    await stream.text("```python\nprint(1)")
    await stream.status(running("Running code"))
    await clock.advance(1)
    assert target.thread() == ["```python\nprint(1)" + CURSOR + "\n```\n\n_⚙️ Running code…_"]
    await stream.text("\n```\n")
    await stream.close()
    assert target.thread() == ["```python\nprint(1)\n```\n"]


# ---- error notice and footer -------------------------------------------------------------------------


async def test_fail_keeps_the_text_and_ends_with_a_notice() -> None:
    stream, target, clock, _ = make()
    await stream.text("Half an ans")
    await stream.status(running("Running code"))
    await stream.fail("The model stopped answering (connection lost). Please ask again.")
    assert target.thread() == ["Half an ans\n\n⚠️ The model stopped answering (connection lost). Please ask again."]


async def test_fail_before_any_text_shows_only_the_notice() -> None:
    stream, target, _, _ = make()
    await stream.fail("Rate limited by OpenAI, try again in a minute.")
    assert target.thread() == ["⚠️ Rate limited by OpenAI, try again in a minute."]


async def test_fail_inside_a_code_block_closes_it_first() -> None:
    stream, target, _, _ = make()
    await stream.text("```\nwhile True:")
    await stream.fail("Cut off.")
    assert target.thread() == ["```\nwhile True:\n```\n\n⚠️ Cut off."]


async def test_footer_is_appended_and_may_overflow_into_a_new_message() -> None:
    stream, target, _, _ = make(max_chars=100)
    await stream.text("See the handbook.")
    await stream.close("\n\n[1] handbook.pdf")
    assert target.thread() == ["See the handbook.\n\n[1] handbook.pdf"]

    stream, target, _, _ = make(max_chars=100)
    await stream.text("It is in the handbook.")
    await stream.close("[1] handbook.pdf\n[2] faq.md")      # footnotes as core.reply.citations writes them
    assert target.thread() == ["It is in the handbook.\n\n[1] handbook.pdf\n[2] faq.md"]

    stream, target, _, _ = make(max_chars=100)
    await stream.close("[1] handbook.pdf")
    assert target.thread() == ["(no answer)\n\n[1] handbook.pdf"]

    stream, target, _, _ = make(max_chars=100)
    answer = "x " * 45                           # 90 chars: fits alone, not with the footer
    footer = "\n\nSources: [1] handbook.pdf, [2] faq.md"
    await stream.text(answer)
    await stream.close(footer)
    assert len(target.thread()) == 2
    assert "".join(target.thread()) == answer + footer
    assert all(len(m) <= 100 for m in target.thread())


# ---- long answers ----------------------------------------------------------------------------------


async def test_long_answer_continues_in_new_messages_with_code_blocks_reopened() -> None:
    stream, target, clock, tracked = make(max_chars=200)
    code = "".join(f"print('line {i}')\n" for i in range(40))
    answer = "Here you go:\n\n```python\n" + code + "```\n\nAll done."
    for i in range(0, len(answer), 7):
        await stream.text(answer[i:i + 7])
        await clock.advance(0.2)
    await stream.close()

    thread = target.thread()
    assert len(thread) >= 4
    assert thread == split_message(answer, 200)
    assert unsplit(thread) == answer
    assert all(m.startswith("```python\n") for m in thread[1:-1])
    assert all(sum(is_fence_line(line) for line in m.split("\n")) % 2 == 0 for m in thread)
    assert tracked == stream.message_ids == list(target.messages)
    assert all(len(s.text) <= 200 for s in target.log)
    # per message, edits are at least one interval apart (the final edit of the last one excepted)
    final = target.log[-1]
    for message_id in target.messages:
        times = [s.at for s in target.log if s.message_id == message_id and s is not final]
        assert all(b - a >= 1.0 - 1e-9 for a, b in zip(times, times[1:]))


async def test_one_huge_delta_is_split_at_once() -> None:
    stream, target, _, _ = make(max_chars=100)
    answer = "\n\n".join(f"Paragraph {i} " + "words " * 10 for i in range(10))
    await stream.text(answer)
    assert len(target.thread()) > 1              # the first messages are already final
    await stream.close()
    assert target.thread() == split_message(answer, 100)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    answer=st.lists(st.one_of(
        st.sampled_from(["```python\n", "\n```\n", "\n", "\n\n", " ", "`", "上海 ☀️ ", "👩‍💻"]),
        st.text(max_size=30),
        st.integers(10, 600).map(lambda n: "y" * n),
    ), max_size=40).map("".join),
    cuts=st.lists(st.integers(1, 50), min_size=1, max_size=20),
    limit=st.one_of(st.integers(MIN_LIMIT, 150), st.integers(MIN_LIMIT, 4000)),
    step=st.sampled_from([0.0, 0.1, 0.7, 2.0]),
)
def test_streamed_messages_join_back_to_the_answer(answer: str, cuts: list[int], limit: int, step: float) -> None:
    async def scenario() -> None:
        stream, target, clock, _ = make(max_chars=limit)
        i = k = 0
        while i < len(answer):
            size = cuts[k % len(cuts)]
            await stream.text(answer[i:i + size])
            await clock.advance(step)
            i, k = i + size, k + 1
        await stream.close()
        thread = target.thread()
        assert all(len(s.text) <= limit for s in target.log)
        if answer.strip():
            assert thread == split_message(answer, limit)
            assert unsplit(thread) == answer
        else:                                    # nothing visible: say so instead of an empty message
            assert thread == [answer + "(no answer)"]

    asyncio.run(scenario())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    answer=st.lists(st.sampled_from(list("ab \n`上") + ["```py\n", "word "]), min_size=1, max_size=600).map("".join),
    size=st.integers(1, 40),
    broken=st.sets(st.sampled_from([f"m{i}" for i in range(1, 8)])),
    hiccups=st.lists(st.integers(0, 3), max_size=30),
    limit=st.integers(MIN_LIMIT, 300),
)
def test_with_failing_edits_the_messages_that_are_current_still_hold_the_whole_answer(
        answer: str, size: int, broken: set[str], hiccups: list[int], limit: int) -> None:
    async def scenario() -> None:
        stream, target, clock, tracked = make(max_chars=limit)
        target.failing_edits = broken
        for n, i in enumerate(range(0, len(answer), size)):
            target.edit_failures = hiccups[n] if n < len(hiccups) else 0
            await stream.text(answer[i:i + size])
            await clock.advance(0.4)
        target.edit_failures = 0
        await stream.close()
        current = [text for message_id, text in target.messages.items() if message_id not in target.stale]
        assert unsplit(current) == (answer if answer.strip() else answer + "(no answer)")
        assert tracked == list(target.messages)

    asyncio.run(scenario())


# ---- platform errors -----------------------------------------------------------------------------


async def test_an_edit_that_fails_once_is_retried() -> None:
    stream, target, clock, _ = make()
    await stream.text("One")
    target.edit_failures = 1
    await stream.text(" two")
    await clock.advance(1)
    assert target.thread() == ["One two" + CURSOR]
    await stream.close()
    assert target.thread() == ["One two"]
    assert len(stream.errors) == 0


async def test_a_message_that_cannot_be_edited_continues_in_a_new_message() -> None:
    stream, target, clock, tracked = make()
    await stream.text("Partial")
    target.failing_edits.add("m1")               # e.g. Discord 30046: message too old to edit
    await stream.text(" answer that keeps going.")
    await clock.advance(1)
    await stream.close()
    # The first message is stuck, the second holds everything: nothing is lost.
    assert target.thread() == ["Partial" + CURSOR, "Partial answer that keeps going."]
    assert tracked == ["m1", "m2"]
    assert any(isinstance(e, PlatformDown) for e in stream.errors)


async def test_a_failing_final_edit_posts_the_whole_text_again() -> None:
    stream, target, clock, _ = make()
    await stream.text("Almost")
    await stream.text(" there.")
    target.failing_edits.add("m1")
    await stream.close("\n\n[1] notes.md")
    assert target.thread()[-1] == "Almost there.\n\n[1] notes.md"


async def test_first_post_failing_twice_is_retried_by_the_flusher() -> None:
    stream, target, clock, _ = make()
    target.post_failures = 2
    await stream.text("Hello")                   # does not raise: the text is kept
    assert target.thread() == []
    await stream.text(", world")
    await clock.advance(1)
    assert target.thread() == ["Hello, world" + CURSOR]
    await stream.close()
    assert target.thread() == ["Hello, world"]


async def test_close_raises_when_nothing_can_be_delivered() -> None:
    stream, target, clock, _ = make()
    await stream.text("Lost?")
    target.failing_edits.add("m1")
    target.post_failures = 10
    with pytest.raises(PlatformDown):
        await stream.close()
    # the service may still try to show a notice once the platform is back
    target.post_failures = 0
    await stream.fail("Sorry, the reply could not be sent completely.")
    assert target.thread()[-1] == "Lost?\n\n⚠️ Sorry, the reply could not be sent completely."


async def test_text_after_close_is_an_error() -> None:
    stream, _, _, _ = make()
    await stream.text("Done.")
    await stream.close()
    with pytest.raises(RuntimeError):
        await stream.text("more")


async def test_limit_below_minimum_is_refused() -> None:
    with pytest.raises(ValueError):
        make(max_chars=10)
