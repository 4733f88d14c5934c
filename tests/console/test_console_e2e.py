"""The tutorial's scenarios, typed into `teambridge chat` and answered by the stand-in OpenAI."""
from __future__ import annotations

import json

import pytest

from tests.console_harness import REPO, openai_env, teambridge
from bots.standins.openai_server import FakeOpenAI, ScriptedResponse
from tests.fakes.tutorial_brain import tutorial_brain

CONFIG = str(REPO / "config.yaml")


@pytest.fixture
async def fake():
    async with FakeOpenAI() as fake:
        fake.responder = tutorial_brain(fake)
        yield fake


async def chat(fake, tmp_path, text: str, *args: str):
    return await teambridge("chat", "--config", CONFIG, "--user", "alice", *args, cwd=tmp_path, stdin=text,
                            env=openai_env(fake, tmp_path))


def conversation_ids(fake) -> list[str]:
    return [fake.conversation_of(r) for r in fake.response_requests() if "function_call_output" not in json.dumps(r["input"])]


async def test_plain_chat_streams_the_answer_to_stdout(fake, tmp_path):
    fake.script(ScriptedResponse(text="Try a shakshuka: eggs poached in spiced tomato sauce.", delta_size=5))
    run = await chat(fake, tmp_path, "What should I cook tonight?\n", "--assistant", "food")
    assert run.code == 0, run.err
    assert run.out == "Try a shakshuka: eggs poached in spiced tomato sauce.\n"
    request = fake.response_requests()[0]
    assert request["model"] == "gpt-4.1-mini" and "food expert" in request["instructions"]
    # a long thread is compacted at OpenAI (truncation="auto" is deprecated) and hits the prompt cache
    assert request["context_management"] == [{"type": "compaction"}] and "truncation" not in request
    # a new conversation's first turn goes before the conversation exists (stored; the conversation is made from
    # it after the answer): its cache key stands for the conversation, and later turns keep it
    assert "conversation" not in request and request["store"] is True
    assert request["prompt_cache_key"].startswith("conv-")


async def test_second_message_and_a_restart_keep_the_same_conversation_with_its_metadata(fake, tmp_path):
    await chat(fake, tmp_path, "first\nsecond\n", "--assistant", "food")
    await chat(fake, tmp_path, "after a restart\n", "--assistant", "food")
    ids = conversation_ids(fake)
    assert len(ids) == 3 and len(set(ids)) == 1
    meta = fake.conversations[ids[0]]["metadata"]
    assert meta["platform"] == "console" and meta["user_id"] == "alice" and meta["user_name"] == "alice"


async def test_reset_starts_a_new_conversation(fake, tmp_path):
    run = await chat(fake, tmp_path, "one\n/reset\ntwo\n", "--assistant", "food")
    assert "Started a new conversation with food." in run.out
    first, second = conversation_ids(fake)
    assert first != second


async def test_code_interpreter_answers_fibonacci_showing_code_and_output(fake, tmp_path):
    run = await chat(fake, tmp_path, "What is the 20th Fibonacci number?\n", "--assistant", "math")
    assert run.code == 0, run.err
    assert "Running code" in run.out
    assert "for _ in range(20):" in run.out and "6765" in run.out
    assert run.out.rstrip().endswith("The 20th Fibonacci number is 6765.")
    tool = fake.response_requests()[0]["tools"][0]
    assert tool["type"] == "code_interpreter" and tool["container"]["type"] == "auto"


async def test_attached_data_file_reaches_the_container_and_the_chart_comes_back(fake, tmp_path):
    data = tmp_path / "sales.csv"
    data.write_text("month,sales\njan,10\nfeb,12\n")
    run = await chat(fake, tmp_path, f"/attach {data}\nPlease chart this\n", "--assistant", "math")
    assert run.code == 0, run.err
    container = fake.response_requests()[0]["tools"][0]["container"]
    [file_id] = container["file_ids"]
    assert fake.files[file_id].data == data.read_bytes()
    assert "chart.png saved to" in run.out
    saved = tmp_path / "teambridge-files" / "chart.png"
    assert saved.read_bytes().startswith(b"\x89PNG")


async def test_weather_function_is_called_with_shanghai_and_its_json_reaches_the_model(fake, tmp_path):
    run = await chat(fake, tmp_path, "上海的天气怎么样？\n", "--assistant", "weather")
    assert run.code == 0, run.err
    assert "It is 25°C and Sunny in 上海." in run.out
    outputs = [i for r in fake.response_requests() for i in r["input"] if isinstance(i, dict)
               and i.get("type") == "function_call_output"]
    assert json.loads(outputs[0]["output"]) == {"city": "上海", "temperature": 25, "condition": "Sunny"}
    assert "Calling query_weather" in run.out


async def test_file_search_over_the_shipped_handbook_cites_it(fake, tmp_path):
    run = await chat(fake, tmp_path, "What is the espresso machine called?\n", "--assistant", "docs")
    assert run.code == 0, run.err
    assert "Bertha" in run.out
    assert "[1]" in run.out and "teambridge-handbook.md" in run.out
    [store] = fake.vector_stores
    tool = fake.response_requests()[0]["tools"][0]
    assert tool["type"] == "file_search" and tool["vector_store_ids"] == [store]


async def test_missing_api_key_is_reported_clearly(tmp_path):
    run = await teambridge("chat", "--config", CONFIG, cwd=tmp_path, stdin="hi\n",
                           env={"TEAMBRIDGE_DB": str(tmp_path / "t.db")})
    assert run.code == 2
    assert "OPENAI_API_KEY" in run.err and "Traceback" not in run.err


async def test_run_without_platform_credentials_says_what_is_missing(fake, tmp_path):
    run = await teambridge("run", "--config", CONFIG, cwd=tmp_path, stdin="hello\n", env=openai_env(fake, tmp_path))
    assert run.code == 0, run.err
    assert "SLACK_BOT_TOKEN" in run.err and "DISCORD_BOT_TOKEN" in run.err
    assert "starting the console" in run.err
    assert "You said: hello" in run.out


async def test_api_errors_reach_the_user_as_one_line(fake, tmp_path):
    fake.fail_next(500, times=10, message="upstream exploded")
    run = await chat(fake, tmp_path, "hello\n", "--assistant", "food")
    assert run.code == 0
    assert "⚠️" in run.out and "Traceback" not in run.out + run.err


async def test_check_lists_the_shipped_assistants(tmp_path):
    run = await teambridge("check", "--config", CONFIG, cwd=tmp_path)
    assert run.code == 0, run.err
    assert [line.split(":")[0] for line in run.out.splitlines()] == ["food", "math", "weather", "docs"]


async def test_run_with_no_keys_at_all_names_every_missing_variable(tmp_path):
    run = await teambridge("run", "--config", CONFIG, cwd=tmp_path, stdin="hi\n",
                           env={"TEAMBRIDGE_DB": str(tmp_path / "t.db")})
    assert run.code == 2
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "DISCORD_BOT_TOKEN", "OPENAI_API_KEY"):
        assert name in run.err
    assert "Traceback" not in run.err


async def test_broken_config_is_reported_with_its_line(tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("default_assistant: food\nassistants:\n  food:\n    model: gpt-4.1-mini\n    temprature: 0.2\n")
    run = await teambridge("check", "--config", str(bad), cwd=tmp_path)
    assert run.code == 2
    assert f"{bad}:5: assistants.food.temprature:" in run.err


async def test_usage_includes_vector_storage_when_openai_can_be_asked(fake, tmp_path):
    await chat(fake, tmp_path, "What is the espresso machine called?\n", "--assistant", "docs")
    [store] = fake.vector_stores
    assert fake._vs(store)["usage_bytes"] == (REPO / "knowledge" / "teambridge-handbook.md").stat().st_size
    with_key = await teambridge("usage", "--config", CONFIG, "--json", cwd=tmp_path, env=openai_env(fake, tmp_path))
    assert with_key.code == 0, with_key.err
    report = json.loads(with_key.out)
    assert report["vector_storage"] is not None and report["total"]["turns"] == 1
    without_key = await teambridge("usage", "--config", CONFIG, "--json", cwd=tmp_path,
                                   env={"TEAMBRIDGE_DB": str(tmp_path / "teambridge.db")})
    assert json.loads(without_key.out)["vector_storage"] is None
