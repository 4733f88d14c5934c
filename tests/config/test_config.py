"""An admin edits config.yaml and runs `teambridge check`: what they see for good and bad files."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from core.config.schema import CodeInterpreterTool, Config, FileSearchTool, FunctionTool
from core.errors import ConfigError
from core.config.checks import check_summary
from core.config.load import load_config
from core.config.files import resolve_files

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parents[1] / "data"

MINIMAL = """\
default_assistant: food
assistants:
  food:
    model: gpt-4.1-mini
"""


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def errors_of(path: Path | str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == "\n".join(info.value.errors)
    return info.value.errors


# ---- the shipped config ---------------------------------------------------------------------------


def test_shipped_config_has_the_four_tutorial_assistants(monkeypatch):
    monkeypatch.chdir(REPO / "knowledge")  # the docs glob is relative to config.yaml, not to the cwd
    config = load_config(REPO / "config.yaml")

    assert list(config.assistants) == ["food", "math", "weather", "docs"]
    assert config.default_assistant == "food"
    assert config.base_dir == REPO
    food, math, weather, docs = (config.assistants[n] for n in ("food", "math", "weather", "docs"))
    assert [a.name for a in (food, math, weather, docs)] == ["food", "math", "weather", "docs"]
    assert food.tools == [] and food.instructions
    assert [type(t) for t in math.tools] == [CodeInterpreterTool]
    assert [(type(t), t.function) for t in weather.tools] == [(FunctionTool, "core.tools.weather:query_weather")]
    assert [type(t) for t in docs.tools] == [FileSearchTool]
    assert resolve_files(config, docs.tools[0]) == [REPO / "knowledge" / "teambridge-handbook.md"]
    for a in config.assistants.values():
        assert a.model.startswith("gpt-")
    assert config.slack.enabled and config.slack.mode == "socket" and config.slack.default_assistant == "food"
    assert config.discord.enabled and config.discord.default_assistant == "food"

    assert check_summary(config) == [
        "food: gpt-4.1-mini, tools: none, scope thread",
        "math: gpt-4.1-mini, tools: code_interpreter, scope thread",
        "weather: gpt-4.1-mini, tools: function query_weather, scope thread",
        "docs: gpt-4.1-mini, tools: file_search (1 file pattern), scope thread",
    ]


def test_shipped_handbook_has_the_distinctive_facts():
    text = (REPO / "knowledge" / "teambridge-handbook.md").read_text(encoding="utf-8")
    assert "Teambridge Coffee Co." in text
    assert "The office espresso machine is called Bertha" in text
    assert "Expense reports are due on the 5th of each month" in text


def test_shipped_config_comments_show_channel_routes():
    text = (REPO / "config.yaml").read_text(encoding="utf-8")
    assert "# channels:" in text and "#     assistant:" in text


# ---- good files ------------------------------------------------------------------------------------


def test_minimal_config_gets_defaults_name_and_base_dir(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    assert isinstance(config, Config)
    assert config.assistants["food"].name == "food"
    assert config.assistants["food"].scope == "thread"
    assert config.base_dir == tmp_path.resolve()
    assert list(config.backends) == ["openai"]


def test_discord_shards_this_process_runs_and_the_one_that_gets_dms(tmp_path):
    plain = load_config(write(tmp_path, MINIMAL))
    assert plain.discord.shard_count is None and plain.discord.runs_shard_zero
    every = load_config(write(tmp_path, MINIMAL + "discord: {shard_count: 4}\n"))
    assert every.discord.shard_ids is None and every.discord.runs_shard_zero
    later = load_config(write(tmp_path, MINIMAL + "discord: {shard_count: 4, shard_ids: [2, 3]}\n"))
    assert later.discord.shard_ids == [2, 3] and not later.discord.runs_shard_zero
    for bad, says in (("{shard_ids: [0]}", "shard_ids needs shard_count"),
                      ("{shard_count: 2, shard_ids: [2]}", "shard_ids [2] are not shards of shard_count 2 (0 to 1)"),
                      ("{shard_count: 2, shard_ids: [1, 1]}", "lists a shard twice"),
                      ("{shard_count: 0}", "shard_count")):
        [error] = errors_of(write(tmp_path, MINIMAL + f"discord: {bad}\n"))
        assert says in error and "discord" in error, error


def test_unquoted_discord_ids_are_read_as_strings(tmp_path):
    config = load_config(write(tmp_path, MINIMAL + """\
discord:
  guilds: [123456789012345678]
  channels:
    123456789012345678:
      assistant: food
admins: [42]
"""))
    assert config.discord.guilds == ["123456789012345678"]
    assert list(config.discord.channels) == ["123456789012345678"]
    assert config.admins == ["42"]


def test_token_counts_are_not_mistaken_for_secrets(tmp_path):
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    config = load_config(write(tmp_path, MINIMAL + """\
    max_output_tokens: 500
    tools:
      - type: file_search
        files: [notes.txt]
        chunking: {max_chunk_size_tokens: 600, chunk_overlap_tokens: 100}
"""))
    assert config.assistants["food"].max_output_tokens == 500


def test_file_search_globs_resolve_relative_to_the_config(tmp_path, monkeypatch):
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "a.md").write_text("a", encoding="utf-8")
    (tmp_path / "kb" / "b.md").write_text("b", encoding="utf-8")
    monkeypatch.chdir(REPO)
    config = load_config(write(tmp_path, MINIMAL + """\
    tools:
      - type: file_search
        files: ["kb/*.md", "kb/a.md"]
"""))
    assert resolve_files(config, config.assistants["food"].tools[0]) == [tmp_path.resolve() / "kb" / "a.md",
                                                                         tmp_path.resolve() / "kb" / "b.md"]


def test_function_tool_module_next_to_the_config_is_importable(tmp_path, monkeypatch):
    (tmp_path / "tb_cfg_local_tools.py").write_text("def ping() -> str:\n    return 'pong'\n", encoding="utf-8")
    monkeypatch.chdir(REPO)
    config = load_config(write(tmp_path, MINIMAL + """\
    tools:
      - type: function
        function: tb_cfg_local_tools:ping
"""))
    assert config.assistants["food"].tools[0].function == "tb_cfg_local_tools:ping"


# ---- bad files: every problem with its file and line -------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert errors_of(path) == [f"{path}: file not found"]


def test_broken_yaml_reports_the_line():
    [error] = errors_of(DATA / "broken.yaml")
    assert error.startswith(f"{DATA / 'broken.yaml'}:8: yaml: ")
    assert "quoted scalar that starts on line 5" in error


def test_yaml_syntax_error_in_the_middle(tmp_path):
    path = write(tmp_path, """\
    default_assistant: food
    assistants:
      food:
        model: gpt-4.1-mini
       instructions: misaligned
    """)
    [error] = errors_of(path)
    assert error.startswith(f"{path}:5: yaml: ")


def test_empty_file(tmp_path):
    path = write(tmp_path, "# nothing yet\n")
    [error] = errors_of(path)
    assert error.startswith(f"{path}:1: <root>: the file is empty")


def test_top_level_list(tmp_path):
    path = write(tmp_path, "- food\n- math\n")
    assert errors_of(path) == [f"{path}:1: <root>: must be a mapping of keys to values"]


def test_unknown_key_points_at_the_key_and_suggests_the_right_one(tmp_path):
    path = write(tmp_path, MINIMAL + "    temprature: 0.5\n")
    assert errors_of(path) == [
        f"{path}:5: assistants.food.temprature: unknown key 'temprature' (did you mean 'temperature'?)"]


def test_unknown_top_level_key_lists_the_allowed_ones(tmp_path):
    path = write(tmp_path, "colour: blue\n" + MINIMAL)
    [error] = errors_of(path)
    assert error.startswith(f"{path}:1: colour: unknown key 'colour'; allowed here: admins, approvals, assistants, backends")


def test_wrong_type(tmp_path):
    path = write(tmp_path, MINIMAL + "    temperature: hot\n    max_tool_rounds: 0\n")
    assert errors_of(path) == [
        f"{path}:5: assistants.food.temperature: must be a valid number, unable to parse string as a number "
        "(got 'hot')",
        f"{path}:6: assistants.food.max_tool_rounds: must be greater than or equal to 1 (got 0)",
    ]


def test_section_that_should_be_a_mapping(tmp_path):
    path = write(tmp_path, MINIMAL + "slack: yes\n")
    assert errors_of(path) == [f"{path}:5: slack: must be a mapping of keys to values, not bool True"]


def test_missing_required_key_points_at_the_parent(tmp_path):
    path = write(tmp_path, """\
    default_assistant: food
    assistants:
      food:
        instructions: Talk about food.
    """)
    assert errors_of(path) == [f"{path}:3: assistants.food.model: required key 'model' is missing"]


def test_unknown_tool_type(tmp_path):
    path = write(tmp_path, MINIMAL + """\
    tools:
      - type: calculator
""")
    assert errors_of(path) == [
        f"{path}:6: assistants.food.tools.0.type: unknown tool type 'calculator'; expected one of "
        "'code_interpreter', 'file_search', 'function', 'image_generation', 'mcp', 'web_search'"]


def test_tool_written_as_a_bare_word(tmp_path):
    path = write(tmp_path, MINIMAL + "    tools: [code_interpreter]\n")
    assert errors_of(path) == [f"{path}:5: assistants.food.tools.0: must be a mapping of keys to values, not str "
                               "'code_interpreter' (write `- type: code_interpreter`)"]


def test_error_inside_a_tool_skips_the_union_tag_in_the_path(tmp_path):
    path = write(tmp_path, MINIMAL + """\
    tools:
      - type: function
        function: core.tools.weather:query_weather
        timeout: soon
""")
    [error] = errors_of(path)
    assert error.startswith(f"{path}:8: assistants.food.tools.0.timeout: must be a valid number")


def test_many_problems_are_reported_together_in_file_order():
    path = DATA / "many_errors.yaml"
    assert errors_of(path) == [
        f"{path}:1: default_assistant: unknown assistant 'chef'; assistants: food, math",
        f"{path}:5: assistants.food.temprature: unknown key 'temprature' (did you mean 'temperature'?)",
        f"{path}:6: assistants.food.backend: unknown backend 'azure'; backends: openai",
        f"{path}:9: assistants.math.scope: must be 'thread', 'channel', 'user' or 'channel_user' (got 'forever')",
        f"{path}:11: assistants.math.tools.0.type: unknown tool type 'calculator'; expected one of "
        "'code_interpreter', 'file_search', 'function', 'image_generation', 'mcp', 'web_search'",
        f"{path}:16: slack.channels.C0123.assistant: unknown assistant 'maths'; did you mean 'math'? "
        "assistants: food, math",
        f"{path}:18: discord.dm_assistant: unknown assistant 'nobody'; assistants: food, math",
    ]


def test_unknown_assistant_references(tmp_path):
    path = write(tmp_path, MINIMAL + """\
slack:
  dm_assistant: food
  default_assistant: fod
discord:
  channels:
    "123":
      assistant: weather
console:
  assistant: math
""")
    assert errors_of(path) == [
        f"{path}:7: slack.default_assistant: unknown assistant 'fod'; did you mean 'food'? assistants: food",
        f"{path}:11: discord.channels.123.assistant: unknown assistant 'weather'; assistants: food",
        f"{path}:13: console.assistant: unknown assistant 'math'; assistants: food",
    ]


def test_unknown_backend(tmp_path):
    path = write(tmp_path, """\
    default_assistant: food
    backends:
      local:
        base_url: http://127.0.0.1:11434/v1
    assistants:
      food:
        model: gpt-4.1-mini
      math:
        model: gpt-4.1-mini
        backend: local
    """)
    assert errors_of(path) == [f"{path}:6: assistants.food: unknown backend 'openai'; backends: local"]


def test_function_tool_not_importable(tmp_path):
    path = write(tmp_path, MINIMAL + """\
    tools:
      - type: function
        function: tb_no_such_module:query
      - type: function
        function: core.tools.weather:no_such_function
      - type: function
        function: core.tools.weather:_KNOWN
      - type: function
        function: just_a_name
""")
    errors = errors_of(path)
    assert errors[0] == (f"{path}:7: assistants.food.tools.0.function: cannot import 'tb_no_such_module:query': "
                         "no module named 'tb_no_such_module' (searched the config's directory, the working "
                         "directory and installed packages)")
    assert errors[1] == (f"{path}:9: assistants.food.tools.1.function: cannot import "
                         "'core.tools.weather:no_such_function': module 'core.tools.weather' has no attribute "
                         "'no_such_function'")
    assert errors[2] == (f"{path}:11: assistants.food.tools.2.function: 'core.tools.weather:_KNOWN' is a dict, "
                         "not a function")
    assert errors[3] == (f"{path}:13: assistants.food.tools.3.function: must look like 'package.module:function' "
                         "(got 'just_a_name')")
    assert len(errors) == 4


def test_function_tool_module_in_the_working_directory(monkeypatch, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "tb_cfg_cwd_tools.py").write_text("VERSION = 3\ndef ping() -> str:\n    return 'pong'\n",
                                                 encoding="utf-8")
    monkeypatch.chdir(workdir)  # the working directory is searched as well as the config's
    path = write(tmp_path, MINIMAL + """\
    tools:
      - type: function
        function: tb_cfg_cwd_tools:ping
      - type: function
        function: tb_cfg_cwd_tools:VERSION
""")
    assert errors_of(path) == [f"{path}:9: assistants.food.tools.1.function: 'tb_cfg_cwd_tools:VERSION' "
                               "is an int, not a function"]


def test_function_tool_module_that_fails_to_import(tmp_path):
    (tmp_path / "tb_cfg_broken_tools.py").write_text("import tb_missing_dependency\n", encoding="utf-8")
    path = write(tmp_path, MINIMAL + """\
    tools:
      - type: function
        function: tb_cfg_broken_tools:anything
""")
    assert errors_of(path) == [f"{path}:7: assistants.food.tools.0.function: cannot import "
                               "'tb_cfg_broken_tools:anything': ModuleNotFoundError: No module named "
                               "'tb_missing_dependency'"]


def test_duplicate_tool_names(tmp_path):
    path = write(tmp_path, MINIMAL + """\
    tools:
      - type: function
        function: core.tools.weather:query_weather
      - type: code_interpreter
      - type: function
        function: core.tools.weather:query_weather
        name: query_weather
""")
    assert errors_of(path) == [f"{path}:9: assistants.food.tools.2: duplicate tool name 'query_weather' "
                               "(also tools.0); give one of them another name"]


def test_file_search_glob_matching_nothing(tmp_path):
    (tmp_path / "kb").mkdir()
    path = write(tmp_path, MINIMAL + """\
    tools:
      - type: file_search
        files:
          - kb/*.md
""")
    assert errors_of(path) == [f"{path}:8: assistants.food.tools.0.files.0: no file matches 'kb/*.md' "
                               f"(relative to {tmp_path.resolve()})"]


@pytest.mark.parametrize(("yaml_text", "line", "where", "variable"), [
    ("backends:\n  openai:\n    api_key: sk-live-123\n", 7, "backends.openai.api_key", "OPENAI_API_KEY"),
    ("slack:\n  bot_token: xoxb-test\n", 6, "slack.bot_token", "SLACK_BOT_TOKEN"),
    ("slack:\n  app_token: xapp-test\n", 6, "slack.app_token", "SLACK_APP_TOKEN"),
    ("slack:\n  signing_secret: abc\n", 6, "slack.signing_secret", "SLACK_SIGNING_SECRET"),
    ("discord:\n  token: test-token\n", 6, "discord.token", "DISCORD_BOT_TOKEN"),
    ("openai_api_key: sk-test\n", 5, "openai_api_key", "OPENAI_API_KEY"),
])
def test_secrets_in_yaml_are_refused(tmp_path, yaml_text, line, where, variable):
    path = write(tmp_path, MINIMAL + yaml_text)
    assert errors_of(path) == [f"{path}:{line}: {where}: secrets never go in the config file: remove it and set "
                               f"the environment variable {variable} instead"]


def test_secret_inside_an_assistant_is_refused_too(tmp_path):
    path = write(tmp_path, MINIMAL + "    api_key: sk-test\n")
    [error] = errors_of(path)
    assert error.startswith(f"{path}:5: assistants.food.api_key: secrets never go in the config file")


def test_a_tool_parameter_called_token_is_not_a_secret(tmp_path):
    (tmp_path / "tb_cfg_token_tools.py").write_text("def check(token: str) -> str:\n    return token\n",
                                                    encoding="utf-8")
    config = load_config(write(tmp_path, MINIMAL + """\
    tools:
      - type: function
        function: tb_cfg_token_tools:check
        parameters:
          type: object
          properties:
            token: {type: string}
"""))
    assert config.assistants["food"].tools[0].parameters["properties"] == {"token": {"type": "string"}}


def test_base_dir_cannot_be_set_in_yaml(tmp_path):
    path = write(tmp_path, MINIMAL + "base_dir: /etc\n")
    assert errors_of(path) == [f"{path}:5: base_dir: is set by the loader to the config file's directory; "
                               "remove it"]


def test_assistant_name_comes_from_its_key(tmp_path):
    path = write(tmp_path, MINIMAL + "    name: chef\n")
    assert errors_of(path) == [f"{path}:5: assistants.food.name: an assistant's name is its key under assistants "
                               "('food'); remove it"]


def test_duplicate_keys_are_reported(tmp_path):
    path = write(tmp_path, MINIMAL + "    model: gpt-4.1\n")
    assert errors_of(path) == [f"{path}:5: assistants.food.model: duplicate key (first set on line 4); the last "
                               "one wins, remove one"]


def test_explicit_parameters_must_be_an_object_schema(tmp_path):
    path = write(tmp_path, MINIMAL + """\
    tools:
      - type: function
        function: core.tools.weather:query_weather
        name: "weather lookup"
        parameters: {type: string}
""")
    assert errors_of(path) == [
        f"{path}:8: assistants.food.tools.0.name: must be 1-64 letters, digits, '_' or '-' (got 'weather lookup')",
        f"{path}:9: assistants.food.tools.0.parameters: must be a JSON schema with type: object",
    ]


def test_config_error_takes_a_single_message():
    assert ConfigError("x.yaml: file not found").errors == ["x.yaml: file not found"]


def test_explicit_parameters_must_match_the_function(tmp_path):
    path = write(tmp_path, MINIMAL + """\
    tools:
      - type: function
        function: core.tools.weather:query_weather
        parameters:
          type: object
          properties:
            town: {type: string}
""")
    assert errors_of(path) == [
        f"{path}:7: assistants.food.tools.0.function: 'core.tools.weather:query_weather': parameters names "
        "'town', which the function does not take; parameters leaves out 'city', which the function requires"]


def test_function_whose_arguments_cannot_be_described(tmp_path):
    (tmp_path / "tb_cfg_varargs_tools.py").write_text("def f(*args):\n    return args\n", encoding="utf-8")
    path = write(tmp_path, MINIMAL + """\
    tools:
      - type: function
        function: tb_cfg_varargs_tools:f
""")
    [error] = errors_of(path)
    assert error.startswith(f"{path}:7: assistants.food.tools.0.function: 'tb_cfg_varargs_tools:f': *args")


def test_yaml_anchors_share_settings_between_assistants(tmp_path):
    config = load_config(write(tmp_path, """\
    default_assistant: food
    assistants:
      food: &chat
        model: gpt-4.1-mini
        temperature: 0.3
      snacks: *chat
      drinks:
        <<: *chat
        temperature: 0.9
    """))
    assert [(a.name, a.model, a.temperature) for a in config.assistants.values()] == [
        ("food", "gpt-4.1-mini", 0.3), ("snacks", "gpt-4.1-mini", 0.3), ("drinks", "gpt-4.1-mini", 0.9)]
