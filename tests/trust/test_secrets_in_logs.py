"""Secrets come from the environment and never reach a log: a DEBUG log of an error-heavy `teambridge run`
session (both platforms, model failures, refused files, bad tokens) is grepped for every secret."""
from __future__ import annotations

import signal

from bots.standins.discord_server import FakeDiscord
from bots.standins.openai_server import FakeOpenAI, ScriptedResponse
from bots.standins.slack_server import FakeSlack
from tests.fakes.trap import TrapServer
from tests.run_harness import RunProcess

SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-test-bot-token",
    "SLACK_APP_TOKEN": "xapp-test-app-token",
    "SLACK_SIGNING_SECRET": "test-signing-secret",
    "DISCORD_BOT_TOKEN": "test.discord.bot-token",
    "OPENAI_API_KEY": "sk-test-openai-key",
}


async def test_a_debug_log_of_an_error_heavy_session_holds_no_secret(tmp_path):
    slack = await FakeSlack(bot_token=SECRETS["SLACK_BOT_TOKEN"], app_token=SECRETS["SLACK_APP_TOKEN"]).start()
    discord = await FakeDiscord(token=SECRETS["DISCORD_BOT_TOKEN"]).start()
    guild = discord.add_guild("Team", ("general",))
    alice = discord.add_user("alice")
    general = discord.channel_id(guild, "general")
    bot = None
    try:
        async with FakeOpenAI() as openai, TrapServer() as trap:
            bot = RunProcess(tmp_path, openai, slack=slack, discord=discord, grace=5, extra_env={
                "TEAMBRIDGE_LOG_LEVEL": "DEBUG", "OPENAI_API_KEY": SECRETS["OPENAI_API_KEY"],
                "SLACK_SIGNING_SECRET": SECRETS["SLACK_SIGNING_SECRET"]})
            await (await bot.start()).wait_running()
            # a normal answer on each platform
            openai.script(ScriptedResponse(text="Fine answer."), ScriptedResponse(text="Fine answer."))
            ts = await slack.user_says("C1", f"<@{slack.bot_user_id}> hello")
            await discord.user_message(general, alice, "hello", mention_bot=True)
            await slack.wait_for(lambda: "Fine answer." in slack.thread_text("C1", ts), 20)
            await discord.wait_for(lambda: "Fine answer." in discord.bot_text(general), 20)
            # the model fails in every way
            openai.fail_next(500, times=3, message="upstream exploded")
            openai.fail_next(401, times=3, message="Incorrect API key provided: sk-proj-****")
            failing = [await slack.user_says("C1", f"<@{slack.bot_user_id}> again {i}") for i in range(3)]
            for i in range(3):
                await discord.user_message(general, alice, f"again {i}", mention_bot=True)
            # files from foreign hosts, a redirect off Slack
            csv = slack.add_file("a.csv", b"x,y\n1,2\n", "text/csv")
            await slack.user_says("C1", f"<@{slack.bot_user_id}> read", files=[{**csv, "url_private_download": trap.url()}])
            await discord.user_message(general, alice, "read", mention_bot=True,
                                       files=[("a.csv", b"x,y\n1,2\n", "text/csv")], file_url=trap.url())
            await slack.wait_for(lambda: all(slack.bot_messages("C1", t) for t in failing), 30)
            code, log = await bot.stop(signal.SIGTERM)
        (tmp_path / "debug.log").write_text(log)
        assert code == 0, log
        assert " DEBUG " in log and " WARNING " in log   # it really was a noisy DEBUG session
        assert trap.visits == []
        for name, secret in SECRETS.items():
            assert secret not in log, f"{name} is in the log"
            assert secret[-12:] not in log, f"the end of {name} is in the log"
    finally:
        if bot is not None:
            await bot.kill()
        await slack.close()
        await discord.stop()
