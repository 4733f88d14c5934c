"""One bench scenario: stand-ins here, the real `teambridge run` in a child process, N mentions at once.

    result = await run_scenario(Scenario(platform="discord", size=50), workdir)

Timeline of one answer (all clocks are this process's time.monotonic(); the stand-ins run here):
event_sent (the platform delivered the mention) -> model_request (POST /v1/responses arrived) ->
first_delta / last_delta (the stand-in model wrote them) -> first_visible / complete_visible (the platform
stand-in stored a message showing the first delta / the whole answer). The bot process is measured from
/proc: utime+stime (CPU) and VmHWM (peak RSS).

The check of the instrument: the bot (bench.botproc) also notes when it wrote each request's body to the socket
(bench/written.py; CLOCK_MONOTONIC is one clock for all processes). `bench_lag_ms` = model_request − written is
how late the bench noticed a request it had been sent — its own lag, included in event→model; `bot_e2m_written_ms`
= written − event_sent is the bot's part alone.
"""
from __future__ import annotations

import asyncio
import difflib
import json
import math
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.model_process import RemoteModel
from bench.standins import AnswerShape, BenchDiscord, BenchOpenAI, BenchSlack, Ledger, now
from bench.written import read as read_written

REPO = Path(__file__).resolve().parent.parent
PLATFORMS = ("slack-native", "slack-edit", "discord")
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Scenario:
    platform: str                      # one of PLATFORMS
    size: int                          # simultaneous conversations
    shape: AnswerShape = AnswerShape()
    slack_minute: float = 60.0         # length of Slack's rate "minute" (stand-in and bot alike)
    distinct_users: bool = True        # one person per conversation (Slack looks each one up)
    stall_timeout: float = 150.0       # give up when no answer completed for this long
    prefill: int = 0                   # conversation rows put in the store before the bot starts
    bursts: int = 1                    # >1: the same N again once the last burst is answered (leak or high-water?)
    profile: str | None = None         # py-spy: write the bot's collapsed stacks (whole run) to this path
    bot_cpu: int | None = None         # pin the bot to this CPU (and the bench to the others): less noise
    # the stand-in model in a process of its own (bench.model_process), not in the bench's event loop
    model_process: bool = False
    # the bot notes when it wrote each request (bench/written.py): the bench's own lag is measured
    written: bool = True


# ---- /proc ------------------------------------------------------------------------------------------------


def proc_cpu(pid: int) -> float:
    """utime + stime of the process in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK   # fields 14 and 15 of stat(5), after "pid (comm)"


def proc_mem(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) in MB."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0]) / 1024
    return out


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)  # nearest rank
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def ms(values: list[float], q: float) -> float | None:
    v = pct(values, q)
    return None if v is None else round(v * 1000, 1)


# ---- the bot process --------------------------------------------------------------------------------------


def write_config(path: Path, sc: Scenario, db: Path) -> None:
    slack = sc.platform.startswith("slack")
    lines = [
        f"database: {json.dumps(str(db))}",
        "default_assistant: bench",
        "shutdown_grace_seconds: 5",
        "backends:",
        "  openai:",
        "    type: openai",
        "    max_retries: 0",
        "assistants:",
        "  bench:",
        "    description: answers the bench",
        "    model: gpt-test",
        "    instructions: Answer briefly.",
        "slack:",
        f"  enabled: {'true' if slack else 'false'}",
        "  mode: socket",
        f"  native_streaming: {'true' if sc.platform == 'slack-native' else 'false'}",
        "discord:",
        f"  enabled: {'false' if slack else 'true'}",
    ]
    path.write_text("\n".join(lines) + "\n")


def bot_env(sc: Scenario, *, openai: BenchOpenAI | RemoteModel, slack: BenchSlack | None, discord: BenchDiscord | None,
            db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DISCORD_", "OPENAI_", "TEAMBRIDGE_"))}
    env.update(PYTHONPATH=str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""),
               OPENAI_BASE_URL=openai.base_url, OPENAI_API_KEY="sk-test", TEAMBRIDGE_DB=str(db),
               PYTHONUNBUFFERED="1")
    if slack is not None:
        env.update(SLACK_API_URL=slack.api_url, SLACK_BOT_TOKEN=slack.bot_token, SLACK_APP_TOKEN=slack.app_token)
        if sc.slack_minute != 60.0:
            env["BENCH_SLACK_MINUTE"] = str(sc.slack_minute)
    if discord is not None:
        env.update(discord.env())
    return env


async def prefill_store(db: Path, count: int, platform: str) -> None:
    from core.model import ConversationKey
    from core.store.sqlite import SqliteStore

    async with SqliteStore(db) as store:
        for i in range(count):
            key = ConversationKey(platform=platform, workspace="T0PREFILL", channel=f"CPRE{i:06d}",
                                  thread=f"{1_600_000_000 + i}.000100", user="")
            await store.save_conversation(key, "bench", f"conv_prefill{i:06d}",
                                          {"platform": platform, "channel": f"CPRE{i:06d}", "user_id": f"U{i}"})


class BotProcess:
    def __init__(self, workdir: Path, config: Path, env: dict[str, str]) -> None:
        self.workdir, self.config, self.env = workdir, config, env
        self.log_path = workdir / "bot.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.module: str | None = None     # another entry point than `teambridge run` (bench.hotbot)

    async def start(self, timeout: float = 60.0) -> None:
        wrapped = "BENCH_SLACK_MINUTE" in self.env or "BENCH_WRITTEN_OUT" in self.env
        module = self.module or ("bench.botproc" if wrapped else "bots.app")
        log = open(self.log_path, "wb")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, "run", "--config", str(self.config),
            cwd=str(self.workdir), env=self.env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            if "teambridge is running" in text:
                return
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise RuntimeError(f"the bot did not start; its log:\n{self.log_path.read_text(errors='replace')[-3000:]}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stop(self) -> int | None:
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), 30)
        except asyncio.TimeoutError:
            self.proc.kill()
            return await self.proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def error_lines(self) -> list[str]:
        try:
            return [l for l in self.log_path.read_text(errors="replace").splitlines()
                    if " ERROR " in l or " WARNING " in l or "Traceback" in l]
        except OSError:
            return []


# ---- one platform round trip (the floor under "first visible") -------------------------------------------


async def round_trip(url: str, *, method: str = "POST", headers: dict[str, str] | None = None,
                     times: int = 15) -> float:
    """Median seconds of one warm keep-alive HTTP request to the platform stand-in."""
    samples = []
    async with aiohttp.ClientSession(headers=headers or {}) as s:
        for i in range(times + 2):
            t = time.perf_counter()
            async with s.request(method, url) as r:
                await r.read()
            if i >= 2:
                samples.append(time.perf_counter() - t)
    return statistics.median(samples)


# ---- the run ----------------------------------------------------------------------------------------------


async def run_scenario(sc: Scenario, workdir: Path | None = None, *, progress=None) -> dict[str, Any]:
    own_dir = workdir is None
    tmp = tempfile.TemporaryDirectory(prefix="tb-bench-") if own_dir else None
    wd = Path(tmp.name) if tmp else Path(workdir)  # type: ignore[arg-type]
    wd.mkdir(parents=True, exist_ok=True)
    try:
        return await _run(sc, wd, progress or (lambda *_: None))
    finally:
        if tmp is not None:
            tmp.cleanup()


async def _run(sc: Scenario, wd: Path, progress) -> dict[str, Any]:
    ledger = Ledger()
    shape = sc.shape
    tags = [f"q{i:05d}" for i in range(sc.size * sc.bursts)]
    warm_tag = f"q{sc.size * sc.bursts:05d}"  # one answer before measuring: the first one pays for lazy imports
    db = wd / "bench.db"
    if sc.prefill:
        await prefill_store(db, sc.prefill, "slack" if sc.platform.startswith("slack") else "discord")
    config = wd / "bench.yaml"
    write_config(config, sc, db)
    slack: BenchSlack | None = None
    discord: BenchDiscord | None = None
    remote = sc.model_process
    async with (RemoteModel(shape) if remote else BenchOpenAI(ledger, shape)) as openai:
        if sc.platform.startswith("slack"):
            users = {f"U{i:05d}": f"user{i}" for i in range(sc.size if sc.distinct_users else 1)}
            # retry_after=1: what Slack sends for a short wait; the SDK's retry handler honours it
            slack = BenchSlack(ledger, rate_minute=sc.slack_minute, retry_after=1, users=users)
            await slack.start()
            rtt_url, rtt_method, rtt_headers = slack.api_url + "auth.test", "POST", {
                "Authorization": f"Bearer {slack.bot_token}"}
            channels = [f"C{i:07d}" for i in range(sc.size * sc.bursts + 1)]
        else:
            discord = BenchDiscord(ledger)
            await discord.start()
            guild = discord.add_guild("Bench", tuple(f"c{i:05d}" for i in range(sc.size * sc.bursts + 1)))
            people = [discord.add_user(f"user{i}") for i in range(sc.size if sc.distinct_users else 1)]
            channels = list(guild["channel_ids"])
            rtt_url, rtt_method, rtt_headers = discord.api_url + "/users/@me", "GET", {
                "Authorization": f"Bot {discord.token}"}
        warm_channel = channels.pop()
        for tag, ch in zip(tags, channels):
            ledger.add(tag, shape.text_for(tag), ch)

        env = bot_env(sc, openai=openai, slack=slack, discord=discord, db=db)
        written_path = wd / "written.json"
        if sc.written:
            env["BENCH_WRITTEN_OUT"] = str(written_path)
        bot = BotProcess(wd, config, env)
        result: dict[str, Any] = {"platform": sc.platform, "size": sc.size, "scenario": _scenario_dict(sc)}
        spy = None
        try:
            await bot.start()
            if sc.bot_cpu is not None:
                _pin(bot.pid, sc.bot_cpu)
            await asyncio.sleep(0.5)  # let the connection settle (bolt's first ping, discord.py's guild ready)
            first = await _warm_up(ledger, warm_tag, warm_channel, shape, slack, discord,
                                   people[0] if discord is not None else None,
                                   refresh=openai.read_into if remote else None)
            # the process's first answer (not in the rows): what a user pays right after a start
            result["first_answer_event_to_model_ms"] = first
            rtt = await round_trip(rtt_url, method=rtt_method, headers=rtt_headers)
            if discord is not None:
                await asyncio.sleep(1.1)  # the RTT probes count against Discord's global window: let it pass
            spy = await _py_spy(sc.profile, bot.pid) if sc.profile else None
            mem0 = proc_mem(bot.pid)
            cpu0 = proc_cpu(bot.pid)
            if remote:
                await openai.expect(sc.size, bot.pid)
            else:
                ledger.requests_arrived, ledger.requests_expected = 0, sc.size
                ledger.cpu_probe = lambda: proc_cpu(bot.pid)
            bench_cpu0, wall0 = time.process_time(), now()

            rss_after_burst: list[float] = []
            for b in range(sc.bursts):
                burst = list(zip(tags, channels))[b * sc.size:(b + 1) * sc.size]
                if b:
                    ledger.cpu_probe = None  # the first burst only
                # no collection of the bench's heap inside the burst (bench/quietgc.py): until its last request
                # reached the stand-in model — in the model's process too when it has one of its own
                if remote:
                    await openai.hold_gc(sc.size)
                ledger.gc.hold(until=ledger.requests_arrived + sc.size)
                # ---- N mentions at once ----
                if slack is not None:
                    frames = [slack.mention_envelopes(ch, f"<@{slack.bot_user_id}> {tag} how is the bridge?",
                                                      user=f"U{i % len(slack.users):05d}")
                              for i, (tag, ch) in enumerate(burst)]
                    for (tag, _), (mention, message) in zip(burst, frames):
                        await slack.send_raw(mention)
                        ledger.by_tag[tag].event_sent = now()
                    for _, message in frames:
                        await slack.send_raw(message)  # the same @mention as a `message` event (Slack sends both)
                else:
                    assert discord is not None
                    for i, (tag, ch) in enumerate(burst):
                        await discord.user_message(ch, people[i % len(people)], f"{tag} how is the bridge?",
                                                   mention_bot=True)
                        ledger.by_tag[tag].event_sent = now()
                if remote:
                    ledger.gc.release()  # this process timestamps no request: held while it sent the mentions

                # ---- wait for every answer (or for progress to stop) ----
                target = (b + 1) * sc.size
                last_done, last_change = ledger.done(), now()
                while True:
                    done = ledger.done()
                    if done >= target:
                        break
                    if done != last_done:
                        last_done, last_change = done, now()
                        progress(sc, done)
                    if now() - last_change > sc.stall_timeout or bot.proc.returncode is not None:  # type: ignore
                        break
                    ledger.changed.clear()
                    try:
                        await asyncio.wait_for(ledger.changed.wait(), 0.5)
                    except asyncio.TimeoutError:
                        pass
                if sc.bursts > 1:
                    await asyncio.sleep(1.0)
                    rss_after_burst.append(round(proc_mem(bot.pid).get("VmRSS", 0), 1))
                if ledger.done() < target:
                    break
            wall = now() - wall0
            cpu = proc_cpu(bot.pid) - cpu0
            bench_cpu = time.process_time() - bench_cpu0
            await asyncio.sleep(1.0)  # late edits (there should be none) still count as calls
            mem1 = proc_mem(bot.pid)
            if remote:
                await openai.read_into(ledger)
        finally:
            ledger.gc.end()
            exit_code = await bot.stop()
            if sc.profile and spy is not None:
                await asyncio.wait_for(spy.wait(), 30)
            result["bot_log_errors"] = bot.error_lines()[-20:]
            result["bot_exit"] = exit_code
            if slack is not None:
                await slack.close()
            if discord is not None:
                await discord.stop()

    for tag, t in read_written(written_path).items():   # written at the bot's exit
        if (a := ledger.by_tag.get(tag)) is not None:
            a.written = t
    result.update(_metrics(ledger, sc, rtt=rtt, cpu=cpu, wall=wall, bench_cpu=bench_cpu, mem0=mem0, mem1=mem1))
    # each answer's timeline relative to the first mention (seconds): where the time went, per answer
    t0 = min((a.event_sent for a in ledger.by_tag.values() if a.event_sent), default=0.0)
    # (event_sent, model_request, first_delta, last_delta, first_visible, complete_visible, posts, edits, written)
    result["timelines"] = [[round(t - t0, 4) if t else None for t in (a.event_sent, a.model_request, a.first_delta,
                                                                       a.last_delta, a.first_visible,
                                                                       a.complete_visible)] + [a.posts, a.edits]
                           + [round(a.written - t0, 4) if a.written else None]
                           for a in ledger.by_tag.values()]
    if ledger.cpu_at_last_request is not None:
        # the bot's CPU from the burst until its last answer reached the model, per answer: an upper bound on the
        # CPU in front of each request (answers that started early stream meanwhile), and not skewed by how
        # much of the core other processes took
        result["cpu_ms_per_answer_to_model"] = round((ledger.cpu_at_last_request - cpu0) / sc.size * 1000, 2)
    result["bench_gc"] = ledger.gc.report()
    if remote:
        result["model_process_gc"] = openai.gc
    if sc.bursts > 1:
        result["rss_after_burst_mb"] = rss_after_burst
    if slack is not None:
        result["platform_calls"] = dict(slack.call_counts)
        result["platform_429s_total"] = len(slack.rate_limited)
    if discord is not None:
        result["platform_429s_total"] = len(discord.rate_limited)
    return result


def _pin(bot_pid: int, cpu: int) -> None:
    """The bot (every thread: the SQLite worker too) on one CPU, as the issue's baselines were measured. The
    bench and its stand-ins stay free to use every CPU: confined to the other core of a shared 2-core machine,
    the stand-in model itself slowed down to a third of its pace and the answers' shapes changed."""
    os.sched_setaffinity(bot_pid, {cpu})
    for tid in os.listdir(f"/proc/{bot_pid}/task"):
        os.sched_setaffinity(int(tid), {cpu})


async def _py_spy(path: str, pid: int) -> asyncio.subprocess.Process:
    """py-spy (pip install py-spy) sampling the bot until it exits; collapsed stacks for flame graphs."""
    proc = await asyncio.create_subprocess_exec("py-spy", "record", "--pid", str(pid), "--rate", "250",
                                                "--format", "raw", "--output", path, "--nonblocking",
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    await asyncio.sleep(1.0)  # attached before the mentions go out
    return proc


async def _warm_up(ledger: Ledger, tag: str, channel: str, shape: AnswerShape, slack: BenchSlack | None,
                   discord: BenchDiscord | None, person: dict | None, *, refresh=None) -> float | None:
    """The process's first answer, not measured in the rows; returns its event→model in ms."""
    warm = ledger.add(tag, shape.text_for(tag), channel)
    if slack is not None:
        mention, *copies = slack.mention_envelopes(channel, f"<@{slack.bot_user_id}> {tag} warm up", user="U00000")
        await slack.send_raw(mention)
        warm.event_sent = now()
        for frame in copies:
            await slack.send_raw(frame)
    else:
        assert discord is not None and person is not None
        await discord.user_message(channel, person, f"{tag} warm up", mention_bot=True)
        warm.event_sent = now()
    deadline = now() + 60
    while warm.complete_visible is None and now() < deadline:
        await asyncio.sleep(0.05)
    if refresh is not None:
        await refresh(ledger)  # the stand-in model's times of it (bench.model_process)
    del ledger.by_tag[tag]  # not measured
    if warm.complete_visible is None:
        raise RuntimeError("the warm-up answer never completed")
    if warm.model_request and warm.event_sent:
        return round((warm.model_request - warm.event_sent) * 1000, 1)
    return None


def _scenario_dict(sc: Scenario) -> dict[str, Any]:
    d = asdict(sc)
    return d


def chars_lost(answer: str, visible: str) -> int:
    a, v = answer.strip(), visible.strip()
    if a == v:
        return 0
    if not v:
        return len(a)
    matched = sum(b.size for b in difflib.SequenceMatcher(None, a, v, autojunk=False).get_matching_blocks())
    return len(a) - matched


def _metrics(ledger: Ledger, sc: Scenario, *, rtt: float, cpu: float, wall: float, bench_cpu: float,
             mem0: dict[str, float], mem1: dict[str, float]) -> dict[str, Any]:
    answers = list(ledger.by_tag.values())
    e2m = [a.model_request - a.event_sent for a in answers if a.model_request and a.event_sent]
    first = [a.first_visible - a.first_delta for a in answers if a.first_visible and a.first_delta]
    last = [a.complete_visible - a.last_delta for a in answers if a.complete_visible and a.last_delta]
    total = [a.complete_visible - a.event_sent for a in answers if a.complete_visible and a.event_sent]
    lag = [a.model_request - a.written for a in answers if a.model_request and a.written]
    bot_e2m = [a.written - a.event_sent for a in answers if a.written and a.event_sent]
    completed = [a for a in answers if a.complete_visible is not None]
    n = max(1, len(completed))
    lost_chars = sum(chars_lost(a.answer, a.visible) for a in answers)
    return {
        "answers": len(answers),
        "completed": len(completed),
        "answers_lost": len(answers) - len(completed),
        "chars_lost": lost_chars,
        "rtt_ms": round(rtt * 1000, 2),
        "event_to_model_ms": {"p50": ms(e2m, 50), "p95": ms(e2m, 95), "max": ms(e2m, 100)},
        # the check of the instrument (None without the bot's notes: Scenario(written=False))
        "bot_e2m_written_ms": {"p50": ms(bot_e2m, 50), "p95": ms(bot_e2m, 95), "max": ms(bot_e2m, 100)},
        "bench_lag_ms": {"p50": ms(lag, 50), "p95": ms(lag, 95), "max": ms(lag, 100), "min": ms(lag, 0),
                         "answers": len(lag)},
        "first_visible_ms": {"p50": ms(first, 50), "p95": ms(first, 95), "max": ms(first, 100)},
        "first_visible_overhead_ms": {"p50": _minus(ms(first, 50), rtt), "p95": _minus(ms(first, 95), rtt)},
        "last_visible_ms": {"p50": ms(last, 50), "p95": ms(last, 95), "max": ms(last, 100)},
        "event_to_complete_ms": {"p50": ms(total, 50), "p95": ms(total, 95), "max": ms(total, 100)},
        "posts_per_answer": round(sum(a.posts for a in answers) / n, 2),
        "edits_per_answer": round(sum(a.edits for a in answers) / n, 2),
        "appends_per_answer": round(sum(a.appends for a in answers) / n, 2),
        "429s": sum(a.rate_limited for a in answers),
        "cpu_s": round(cpu, 3),
        "cpu_s_per_100": round(cpu / n * 100, 3),
        "wall_s": round(wall, 2),
        "bench_cpu_share": round(bench_cpu / wall, 2) if wall > 0 else None,
        "rss_before_mb": round(mem0.get("VmRSS", 0), 1),
        "rss_after_mb": round(mem1.get("VmRSS", 0), 1),
        "peak_rss_mb": round(mem1.get("VmHWM", 0), 1),
        # only meaningful with many answers: small runs are dominated by one-off allocations
        "rss_growth_per_10k_answers_mb": (round((mem1.get("VmRSS", 0) - mem0.get("VmRSS", 0)) / len(answers)
                                                * 10_000, 1) if len(answers) >= 200 else None),
    }


def _minus(value_ms: float | None, rtt_s: float) -> float | None:
    return None if value_ms is None else round(value_ms - rtt_s * 1000, 1)
