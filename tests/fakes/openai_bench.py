"""CPU cost of the streaming hot path: 100 answers of 60 deltas, client side only.

    python -m tests.fakes.openai_bench [answers] [deltas]

The stand-in server runs in a child process so that its CPU is not counted; this process measures
time.process_time() around (a) OpenAIBackend.run (raw SSE + json.loads for deltas) and (b) the SDK's
typed stream (`responses.create(stream=True)`, one pydantic model per event) for comparison.
"""
from __future__ import annotations

import asyncio
import multiprocessing
import sys
import time


def _serve(port_q: "multiprocessing.Queue[int]", deltas: int) -> None:
    from bots.standins.openai_server import FakeOpenAI, ScriptedResponse

    async def main() -> None:
        async with FakeOpenAI() as fake:
            text = "".join(f"word{i:02d} " for i in range(deltas))   # 7 chars per delta
            fake.responder = lambda body: ScriptedResponse(text=text, delta_size=7)
            port_q.put(fake.port)
            await asyncio.Event().wait()
    asyncio.run(main())


async def _bench(port: int, answers: int) -> None:
    from openai import AsyncOpenAI

    from core.backends.openai.backend import OpenAIBackend
    from core.config.schema import AssistantConfig
    from core.model import TextDelta
    from core.ports import Turn

    class NoTools:
        def specs_for(self, assistant):  # noqa: ANN001
            return []

        async def call(self, name: str, arguments_json: str) -> str:
            return ""

    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test", max_retries=0)
    backend = OpenAIBackend(client, NoTools())
    conv = await backend.create_conversation({})
    turn = Turn(assistant=AssistantConfig(name="b", model="gpt-test"), conversation_id=conv, text="hi")

    async def ours() -> int:
        return len([ev async for ev in backend.run(turn) if isinstance(ev, TextDelta)])

    async def sdk_typed() -> int:
        stream = await client.responses.create(model="gpt-test", input="hi", stream=True)
        return len([ev async for ev in stream if ev.type == "response.output_text.delta"])

    for name, fn in (("backend (raw SSE)", ours), ("SDK typed stream", sdk_typed)):
        await fn()  # warm-up
        cpu0, wall0 = time.process_time(), time.perf_counter()
        n = 0
        for _ in range(answers):
            n += await fn()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        print(f"{name:20s} {answers} answers, {n} deltas: CPU {cpu * 1000:.0f} ms "
              f"({cpu / n * 1e6:.1f} us/delta), wall {wall * 1000:.0f} ms")
    await client.close()


def main() -> None:
    answers = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    deltas = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    q: multiprocessing.Queue[int] = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(q, deltas), daemon=True)
    server.start()
    try:
        asyncio.run(_bench(q.get(timeout=30), answers))
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
