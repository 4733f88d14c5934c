"""Trust boundaries, as an attacker would test them: tokens go only to their own hosts, URLs named in payloads
are fetched only from the platform's file hosts (redirects too), and model output never pings a workspace.

Each attack points at a trap server that records whether it was contacted and with which Authorization header.
"""
from __future__ import annotations

import json

import pytest

from bots.discord.files import CdnFetcher
from bots.slack.files import FileHosts
from bots.slack.mentions import ZWSP
from tests.fakes.discord_world import world as discord_world
from bots.standins.openai_server import ScriptedResponse
from tests.fakes.slack_harness import answered
from tests.fakes.trap import TrapServer
from tests.slack.test_slack_e2e import world as slack_world

CSV = b"city,temp\nShanghai,25\n"


@pytest.fixture
async def trap():
    async with TrapServer() as t:
        yield t


# ---- Slack: the bot token reads every file of every channel the bot is in --------------------------------


async def test_slack_file_on_a_foreign_host_is_refused_without_any_request(tmp_path, trap):
    async with slack_world(tmp_path, channels={"CMATH": {"assistant": "math"}}) as (bot, openai):
        csv = bot.slack.add_file("temps.csv", CSV, "text/csv")
        forged = {**csv, "url_private": trap.url("a.csv"), "url_private_download": trap.url("a.csv?download=1")}
        ts = await bot.slack.user_says("CMATH", "<@UBOT> analyse this", files=[forged])
        await bot.slack.wait_for(answered(bot.slack, "CMATH", ts), 15)
        await bot.adapter.wait_idle()
        notice, answer = bot.slack.bot_messages("CMATH", ts)
        assert "temps.csv" in notice.text and "not on Slack's file servers" in notice.text
        assert trap.visits == []               # no request at all, so no token either
        assert bot.slack.downloads == [] and openai.files == {}
        assert answer.text.startswith("You said: analyse this")   # the text is answered without the file


async def test_slack_download_redirected_off_slack_is_refused_before_the_second_request(tmp_path, trap):
    async with slack_world(tmp_path, channels={"CMATH": {"assistant": "math"}}) as (bot, openai):
        csv = bot.slack.add_file("temps.csv", CSV, "text/csv")
        bot.slack.file_redirects[csv["id"]] = trap.url("stolen.csv")
        ts = await bot.slack.user_says("CMATH", "<@UBOT> analyse this", files=[csv])
        await bot.slack.wait_for(answered(bot.slack, "CMATH", ts), 15)
        await bot.adapter.wait_idle()
        assert bot.slack.downloads == [(csv["id"], True)]   # Slack's own host got the token ...
        assert trap.visits == []                             # ... the redirect target got nothing
        assert "not on Slack's file servers" in bot.slack.thread_text("CMATH", ts)


def test_slack_file_hosts_are_https_files_slack_com_and_the_api_host():
    production = FileHosts("https://slack.com/api/")
    assert production.gets_token("https://files.slack.com/files-pri/T1-F1/a.csv")
    assert production.gets_token("https://slack.com/files-pri/T1-F1/a.csv")
    for url in ("http://files.slack.com/files-pri/T1-F1/a.csv",        # never the token in clear text
                "https://files.slack.com.evil.example/a.csv",
                "https://files.slack.com:8443/a.csv",
                "https://evil.example/files.slack.com/a.csv",
                "https://user@evil.example/a.csv",
                "file:///etc/passwd"):
        assert not production.gets_token(url), url
        assert not production.may_fetch(url), url
    # Slack's own hosts may be redirect targets, fetched without the token
    assert production.may_fetch("https://files-edge.slack-edge.com/a.csv")
    assert not production.gets_token("https://files-edge.slack-edge.com/a.csv")
    stand_in = FileHosts("http://127.0.0.1:5555/api/")
    assert stand_in.gets_token("http://127.0.0.1:5555/files-pri/x")
    assert not stand_in.gets_token("http://127.0.0.1:5556/files-pri/x")
    assert not stand_in.gets_token("http://localhost:5555/files-pri/x")


# ---- Discord: attachment URLs come from gateway payloads ----------------------------------------------------


async def test_discord_attachment_on_a_foreign_host_is_refused_without_any_request(tmp_path, trap):
    async with discord_world(tmp_path) as w:
        ch = w.channel("math")
        await w.discord.user_message(ch, w.discord.alice, "plot this", mention_bot=True,
                                     files=[("temps.csv", CSV, "text/csv")], file_url=trap.url("temps.csv"))
        notice, answer = await w.discord.wait_for(
            lambda: (m := w.discord.messages_in(ch, by_bot=True)) and m[-1].content.startswith("You said:") and m)
        assert "temps.csv" in notice.content and "not on Discord's file servers" in notice.content
        assert trap.visits == [] and w.discord.cdn_downloads == []
        assert w.openai.files == {}            # the text is answered without the file


async def test_discord_cdn_redirect_to_a_foreign_host_is_not_followed(tmp_path, trap):
    async with discord_world(tmp_path) as w:
        ch = w.channel("math")
        path = f"{ch}/"  # the next CDN path starts with the channel id: redirect whatever is uploaded there
        original = w.discord.upload_to_cdn

        def upload_and_redirect(channel_id, filename, data, ctype):
            att = original(channel_id, filename, data, ctype)
            w.discord.cdn_redirects[att["url"].split("/attachments/", 1)[1]] = trap.url("stolen.csv")
            return att
        w.discord.upload_to_cdn = upload_and_redirect
        await w.discord.user_message(ch, w.discord.alice, "plot this", mention_bot=True,
                                     files=[("temps.csv", CSV, "text/csv")])
        notice, _ = await w.discord.wait_for(
            lambda: (m := w.discord.messages_in(ch, by_bot=True)) and m[-1].content.startswith("You said:") and m)
        assert "not on Discord's file servers" in notice.content
        assert [p for p in w.discord.cdn_downloads if p.startswith(path)]  # the CDN was asked ...
        assert trap.visits == []                                           # ... the redirect was not followed


def test_discord_cdn_hosts():
    production = CdnFetcher("https://discord.com/api/v10")
    assert production.allowed("https://cdn.discordapp.com/attachments/1/2/a.png?ex=1")
    assert production.allowed("https://media.discordapp.net/attachments/1/2/a.png")
    for url in ("http://cdn.discordapp.com/attachments/1/2/a.png", "https://discord.com/attachments/a.png",
                "https://cdn.discordapp.com.evil.example/a.png", "https://169.254.169.254/latest/meta-data",
                "https://evil.example/cdn.discordapp.com/a.png"):
        assert not production.allowed(url), url
    stand_in = CdnFetcher("http://127.0.0.1:7000/api/v10")
    assert stand_in.allowed("http://127.0.0.1:7000/attachments/1/2/a.png")
    assert not stand_in.allowed("http://127.0.0.1:7001/attachments/1/2/a.png")


# ---- model output never pings a workspace --------------------------------------------------------------------

PINGS = "<!channel> lunch! <!here|here> and <!everyone>, also <!subteam^S0DEVS|@devs> — ask <@U1>."


def no_special_mentions(calls) -> None:
    wire = json.dumps(calls, ensure_ascii=False)
    for token in ("<!channel", "<!here", "<!everyone", "<!subteam"):
        assert token not in wire


@pytest.mark.parametrize("delta_size", [1, 3, 500])
async def test_slack_answer_with_special_mentions_pings_no_one_streamed_or_posted(tmp_path, delta_size):
    async with slack_world(tmp_path) as (bot, openai):
        openai.script(ScriptedResponse(text=PINGS, delta_size=delta_size))
        ts = await bot.slack.user_says("C1", "<@UBOT> repeat after me")   # a native stream, in a thread
        openai.script(ScriptedResponse(text=PINGS, delta_size=delta_size))
        await bot.slack.user_says("D1", "say it again")                     # posted (and edited) in a DM
        await bot.slack.wait_for(lambda: answered(bot.slack, "C1", ts)() and bot.slack.bot_messages("D1"), 15)
        await bot.adapter.wait_idle()
        no_special_mentions(bot.slack.calls)
        for shown in (bot.slack.thread_text("C1", ts), bot.slack.bot_messages("D1")[-1].text):
            assert shown.replace(ZWSP, "") == PINGS    # the reader sees every character, and <@U1> is kept


async def test_slack_error_notices_and_interrupted_marks_ping_no_one(tmp_path):
    async with slack_world(tmp_path) as (bot, openai):
        openai.script(ScriptedResponse(text="<!here> half an ans", fail=("server_error", "<!channel> went wrong")))
        ts = await bot.slack.user_says("C1", "<@UBOT> hello")
        await bot.slack.wait_for(answered(bot.slack, "C1", ts), 15)
        await bot.adapter.wait_idle()
        [reply] = bot.slack.bot_messages("C1", ts)
        assert "went wrong" in reply.text and "half an ans" in reply.text
        await bot.adapter.mark_interrupted("C1", reply.ts, ts)
        assert "cut off" in bot.slack.message("C1", reply.ts).text
        no_special_mentions(bot.slack.calls)


async def test_discord_answer_with_everyone_pings_no_one(tmp_path):
    async with discord_world(tmp_path) as w:
        ch = w.channel("general")
        w.openai.script(ScriptedResponse(text="@everyone @here <@&123> dinner is ready"))
        await w.discord.user_message(ch, w.discord.alice, "shout it", mention_bot=True)
        await w.final_answer(ch, "@everyone @here <@&123> dinner is ready")
        sends = [r for r in w.discord.request_bodies if r["method"] in ("POST", "PATCH") and "content" in r["body"]]
        assert sends and all(r["body"].get("allowed_mentions", {}).get("parse") == [] for r in sends)


def test_a_special_mention_split_across_stream_appends_is_still_defused():
    """Each append is one Web API call: `<!chan` + `nel>` must not reach Slack as two harmless-looking halves."""
    from bots.slack.mentions import PingGuard
    for cut in range(1, len(PINGS)):
        guard = PingGuard()
        sent = [guard.feed(PINGS[:cut]), guard.feed(PINGS[cut:]), guard.flush()]
        no_special_mentions(sent)
        assert "".join(sent).replace(ZWSP, "") == PINGS
