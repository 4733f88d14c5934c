"""History where it lives: `type: responses` (teambridge keeps it, resends it) vs `type: openai` (Conversations).

    python -m bench.history [--answers 100] [--turns 20]

Each of `answers` conversations already holds `turns` turns (~600-character answers); then every conversation gets
one more message through the real ChatService + SqliteStore + backend (from core.backends.factory) against a
stand-in server in a child process (its CPU is not counted). Reported per backend type: the bot process's CPU per
100 answers (time.process_time) and event→model: from ChatService.handle() to the stand-in receiving the request
(time.monotonic is one clock for both processes on Linux).
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WARM_UP = 5
ANSWER = ("Basil, tomato, garlic and a little olive oil make a quick sauce; add salt to taste and finish with "
          "grated parmesan. ") * 5


def _serve(kind: str, port_q: "multiprocessing.Queue[int]", times_q: "multiprocessing.Queue[tuple[str, float]]") -> None:
    from bots.standins.openai_server import _JSON, FakeOpenAI, ScriptedResponse, last_user_text

    class Timed(FakeOpenAI):
        # The arrival time is taken before the stand-in validates the request (pydantic over every input item
        # would otherwise count as the bot's latency).
        async def _create_response(self, request):  # noqa: ANN001
            body = request[_JSON]
            if isinstance(body, dict) and body.get("stream"):
                times_q.put((last_user_text(body), time.monotonic()))
            self.requests.clear()          # keep the stand-in's memory flat
            self.contexts.clear()
            self.headers.clear()
            return await super()._create_response(request)

    async def main() -> None:
        async with Timed(stateless=(kind == "responses")) as fake:
            fake.responder = lambda body: ScriptedResponse(text=ANSWER, delta_size=20)
            port_q.put(fake.port)
            await asyncio.Event().wait()
    asyncio.run(main())


class _Target:
    """A reply target that only keeps the text (the bench measures the model side, not a platform)."""

    def __init__(self) -> None:
        from core.ports import Limits
        self.limits = Limits(max_chars=40000, edit_interval=0.0)
        self.text = ""

    async def post(self, text: str) -> str:
        self.text = text
        return "m1"

    async def edit(self, message_id: str, text: str, *, final: bool = False) -> bool:
        self.text = text
        return True

    async def upload(self, file: Any) -> None: ...
    async def notice(self, text: str, *, ephemeral: bool = False) -> None:
        self.text = text

    async def typing(self) -> None: ...

    def open_stream(self, on_posted: Any) -> None:
        return None


async def _measure(kind: str, port: int, answers: int, turns: int,
                   times_q: "multiprocessing.Queue[tuple[str, float]]") -> dict[str, Any]:
    from core.backends.factory import close_client, make_backend, make_client
    from core.chat.routing import conversation_key
    from core.chat.service import ChatService
    from core.config.schema import Config
    from core.model import AssistantItem, Author, InboundMessage, UserItem
    from core.store.sqlite import SqliteStore
    from core.tools.registry import ToolRegistry

    base = f"http://127.0.0.1:{port}/v1"
    backend_cfg = {"type": "openai", "base_url": base, "spare_conversations": 0} if kind == "openai" else \
        {"type": "responses", "base_url": base, "context_tokens": 32000}
    with tempfile.TemporaryDirectory() as tmp:
        config = Config(default_assistant="food", database=str(Path(tmp) / "tb.db"),
                        backends={"main": backend_cfg}, assistants={
                            "food": {"name": "food", "backend": "main", "model": "llama3.1:8b",
                                     "instructions": "You are a food expert.", "scope": "channel"}})
        import os
        os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
        os.environ["OPENAI_BASE_URL"] = base
        async with SqliteStore(Path(tmp) / "tb.db") as store:
            client = make_client("main", config.backends["main"], os.environ)
            backend = make_backend("main", config.backends["main"], client, tools=ToolRegistry.from_config(config),
                                   store=store)
            service = ChatService(config, store, {"main": backend})
            assistant = config.assistants["food"]
            msgs = [InboundMessage(platform="console", workspace="", channel=f"C{i:04d}",
                                   author=Author(id=f"U{i:04d}"), text=f"q{i:04d}: and with pasta?",
                                   is_direct=True) for i in range(answers + WARM_UP)]
            # the history, written where this backend type keeps it
            history = [item for t in range(turns) for item in
                       (UserItem(f"turn {t}: what goes with basil?"), AssistantItem(ANSWER))]
            for msg in msgs:
                conv = await backend.create_conversation({})
                await store.save_conversation(conversation_key(assistant, msg), "food", conv, {})
                await backend.session(conv).add_items(history)
            while not times_q.empty():
                times_q.get()
            for msg in msgs[:WARM_UP]:      # first answers pay for imports and lazily built validators
                await service.handle(msg, _Target())
            msgs = msgs[WARM_UP:]
            while not times_q.empty():
                times_q.get()
            started: dict[str, float] = {}
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for msg in msgs:
                started[msg.text] = time.monotonic()
                target = _Target()
                await service.handle(msg, target)
                assert target.text.strip().startswith("Basil"), target.text[:200]
            cpu = time.process_time() - cpu0
            wall = time.perf_counter() - wall0
            await backend.aclose()
            await close_client(client)
    received: dict[str, float] = {}
    while len(received) < answers:
        text, t = times_q.get(timeout=10)
        if text in started:
            received[text] = t
    lat = sorted((received[text] - t0) * 1000 for text, t0 in started.items() if text in received)
    return {"type": kind, "answers": answers, "history_turns": turns,
            "cpu_s_per_100": round(cpu * 100 / answers, 3), "wall_s": round(wall, 2),
            "event_to_model_ms_p50": round(statistics.median(lat), 1),
            "event_to_model_ms_p95": round(lat[int(len(lat) * 0.95) - 1], 1)}


def run(kind: str, answers: int, turns: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    port_q, times_q = ctx.Queue(), ctx.Queue()
    server = ctx.Process(target=_serve, args=(kind, port_q, times_q), daemon=True)
    server.start()
    try:
        port = port_q.get(timeout=60)
        return asyncio.run(_measure(kind, port, answers, turns, times_q))
    finally:
        server.terminate()
        server.join(5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__.splitlines()[0])
    p.add_argument("--answers", type=int, default=100)
    p.add_argument("--turns", type=int, default=20)
    args = p.parse_args(argv)
    rows = [run(kind, args.answers, args.turns) for kind in ("openai", "responses")]
    print(f"| type | answers | history | CPU s / 100 answers | event→model p50 | p95 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['type']} | {r['answers']} | {r['history_turns']} turns | {r['cpu_s_per_100']} | "
              f"{r['event_to_model_ms_p50']} ms | {r['event_to_model_ms_p95']} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
