"""The model calls a function tool: what it is told about the tool, and what it gets back — also when things go wrong."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import jsonschema
import pytest
from pydantic import BaseModel
from openai.types.responses import FunctionTool as SDKFunctionTool

from core.errors import ConfigError
from core.config.load import load_config
from core.tools import FunctionToolSpec, ToolRegistry, import_function
from core.tools.weather import query_weather

DATA = Path(__file__).resolve().parents[1] / "data"
REPO = DATA.parent.parent
SPEC_SCHEMA = json.loads((DATA / "openai_function_tool.schema.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def config():
    return load_config(DATA / "tools.yaml")


@pytest.fixture(scope="module")
def registry(config):
    return ToolRegistry.from_config(config)


@pytest.fixture
def specs(registry, config):
    return {s.name: s for s in registry.specs_for(config.assistants["helper"])}


async def call(registry: ToolRegistry, name: str, arguments: object) -> object:
    text = await registry.call(name, arguments if isinstance(arguments, str) else json.dumps(arguments))
    assert isinstance(text, str)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


# ---- what the model is told -------------------------------------------------------------------------


def test_schema_and_description_come_from_type_hints_and_docstring(specs):
    spec = specs["convert_temperature"]
    assert spec.description == "Convert a temperature between Celsius and Fahrenheit."
    assert spec.parameters == {
        "type": "object",
        "properties": {
            "value": {"type": "number", "description": "The temperature to convert."},
            "unit": {"type": "string", "enum": ["C", "F"],
                     "description": "The unit `value` is in; the answer is in the other one."},
            "precision": {"type": "integer", "default": 1, "description": "Digits after the decimal point."},
        },
        "required": ["value", "unit"],
        "additionalProperties": False,
    }
    assert spec.timeout == 30.0
    # An optional parameter is not allowed in OpenAI's strict mode.
    assert spec.to_openai()["strict"] is False


def test_sphinx_docstring_and_strict_mode(specs):
    spec = specs["lookup_order"]
    assert spec.description == "Look up a coffee order by its number."
    assert spec.parameters["properties"]["order_id"] == {"type": "integer",
                                                          "description": "The order number printed on the receipt."}
    assert spec.parameters["required"] == ["order_id", "include_items"]
    assert spec.to_openai() == {"type": "function", "name": "lookup_order",
                                "description": "Look up a coffee order by its number.",
                                "parameters": spec.parameters, "strict": True}


def test_explicit_schema_name_and_description_from_yaml_win(specs):
    spec = specs["loud"]
    assert spec.description == "Make text loud."
    assert spec.parameters["properties"] == {"text": {"type": "string", "description": "What to shout."}}
    assert spec.to_openai()["strict"] is True


def test_untyped_parameters_are_described_as_anything(specs):
    assert specs["set_volume"].parameters["properties"] == {"level": {}}
    assert specs["set_volume"].parameters["required"] == ["level"]


def test_declarations_match_the_openai_spec_and_sdk_types(registry, config):
    for assistant in config.assistants.values():
        for spec in registry.specs_for(assistant):
            declaration = spec.to_openai()
            jsonschema.validate(declaration, SPEC_SCHEMA)
            SDKFunctionTool.model_validate(declaration)
            jsonschema.Draft202012Validator.check_schema(declaration["parameters"])


def test_specs_follow_each_assistants_config_order(registry, config):
    assert [s.name for s in registry.specs_for(config.assistants["helper"])] == [
        "convert_temperature", "lookup_order", "loud", "broken", "hang", "sync_hang", "own_timeout", "make_receipt",
        "set_volume"]
    assert [s.name for s in registry.specs_for(config.assistants["weather"])] == ["query_weather"]


def test_strict_needs_every_nested_object_closed():
    open_nested = {"type": "object", "additionalProperties": False, "required": ["a"],
                   "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}}}}
    assert FunctionToolSpec("f", "", open_nested, 1.0).to_openai()["strict"] is False
    open_nested["properties"]["a"].update(required=["b"], additionalProperties=False)
    assert FunctionToolSpec("f", "", open_nested, 1.0).to_openai()["strict"] is True


class Item(BaseModel):
    sku: str
    quantity: int


def test_nested_models_in_hints_become_defs():
    def order(items: list[Item]) -> str:
        """Place an order."""
        return f"{len(items)} lines"

    spec = ToolRegistry().register(order)
    item_schema = spec.parameters["$defs"]["Item"]
    assert item_schema["required"] == ["sku", "quantity"]
    assert "title" not in item_schema
    assert spec.parameters["properties"]["items"] == {"type": "array", "items": {"$ref": "#/$defs/Item"}}


def test_numpy_docstring():
    def brew(grams: int, style: str) -> str:
        """Brew some coffee.

        Parameters
        ----------
        grams : int
            How much ground coffee to use.
        style : str
            espresso or filter.

        Returns
        -------
        str
        """
        return "ok"

    spec = ToolRegistry().register(brew)
    assert spec.description == "Brew some coffee."
    assert spec.parameters["properties"]["grams"]["description"] == "How much ground coffee to use."
    assert spec.parameters["properties"]["style"]["description"] == "espresso or filter."


def test_functions_that_cannot_be_described_are_refused():
    def anything(*args, **kwargs):
        return None

    with pytest.raises(ConfigError, match=r"\*args / \*\*args cannot be described"):
        ToolRegistry().register(anything)


# ---- calling ---------------------------------------------------------------------------------------


async def test_sync_tool_result_is_json_text(registry):
    assert await call(registry, "convert_temperature", {"value": 100, "unit": "C"}) == {"value": 212.0, "unit": "F"}
    # pydantic's lax mode: "37.5" is a fine number for a float parameter.
    assert await call(registry, "convert_temperature", {"value": "98.6", "unit": "F", "precision": 0}) == {
        "value": 37.0, "unit": "C"}


async def test_async_tool(registry):
    assert await registry.call("lookup_order", '{"order_id": 17, "include_items": true}') == (
        "Order 17: ready for pickup (1× Harbour Fog, 250 g)")


async def test_string_results_are_returned_as_they_are(registry):
    assert await registry.call("loud", '{"text": "more coffee"}') == "MORE COFFEE"


async def test_objects_are_serialised_without_escaping_unicode(registry):
    text = await registry.call("make_receipt", '{"total": 3.5}')
    assert text == '{"total": 3.5, "currency": "EUR", "note": "café"}'


async def test_bad_arguments_become_an_error_for_the_model(registry, caplog):
    caplog.set_level(logging.WARNING, logger="teambridge.tools")
    result = await call(registry, "convert_temperature", {"value": "warm", "unit": "K", "colour": "red"})
    message = result["error"]
    assert message.startswith("invalid arguments for tool convert_temperature: ")
    assert "value: Input should be a valid number" in message
    assert "unit: Input should be 'C' or 'F'" in message
    assert "colour: unexpected argument" in message
    assert any("convert_temperature" in r.getMessage() for r in caplog.records)

    assert await call(registry, "lookup_order", {"include_items": False}) == {
        "error": "invalid arguments for tool lookup_order: order_id: missing required argument"}


async def test_arguments_that_are_not_json(registry):
    result = await call(registry, "loud", '{"text": "unterminated')
    assert result["error"].startswith("arguments for tool loud are not valid JSON: ")
    assert await call(registry, "loud", '["a list"]') == {
        "error": "arguments for tool loud must be a JSON object, not list"}


async def test_empty_arguments_mean_no_arguments(registry):
    assert await call(registry, "set_volume", "") == {
        "error": "invalid arguments for tool set_volume: level: missing required argument"}


async def test_tool_that_raises(registry, caplog):
    caplog.set_level(logging.ERROR, logger="teambridge.tools")
    assert await call(registry, "broken", {"text": "beans"}) == {
        "error": "tool broken failed: RuntimeError: the grinder jammed on 'beans'"}
    [record] = [r for r in caplog.records if r.name == "teambridge.tools"]
    assert "broken" in record.getMessage() and record.exc_info is not None


async def test_a_result_that_is_not_json_becomes_an_error_for_the_model(caplog):
    class Opaque:
        def __init__(self) -> None:
            self.me = self   # nothing pydantic can turn into JSON

    def opaque() -> object:
        """Returns something that is not JSON."""
        return Opaque()

    registry = ToolRegistry()
    registry.register(opaque)
    caplog.set_level(logging.ERROR, logger="teambridge.tools")
    answer = await call(registry, "opaque", {})
    assert answer["error"].startswith("tool opaque returned a Opaque that cannot be turned into JSON")


async def test_async_tool_past_its_timeout(registry):
    assert await call(registry, "hang", {}) == {"error": "tool hang timed out after 0.2s"}


async def test_sync_tool_past_its_timeout(registry):
    import tb_fixture_tools  # imported by the registry from tests/data

    try:
        assert await call(registry, "sync_hang", {}) == {"error": "tool sync_hang timed out after 0.2s"}
    finally:
        tb_fixture_tools.release_sync_hang.set()  # let the worker thread finish


async def test_a_timeout_raised_by_the_tool_itself_is_a_failure_not_our_deadline(registry):
    assert await call(registry, "own_timeout", {}) == {"error": "tool own_timeout failed: TimeoutError"}


async def test_unknown_tool(registry):
    result = await call(registry, "launch_rocket", {})
    assert result["error"].startswith("unknown tool 'launch_rocket'; available tools: broken, convert_temperature")


async def test_weather_answers_for_the_tutorial_cities(registry):
    assert await registry.call("query_weather", '{"city": "上海"}') == (
        '{"city": "上海", "temperature": 25, "condition": "Sunny"}')
    assert await call(registry, "query_weather", {"city": "北京"}) == {
        "city": "北京", "temperature": 19, "condition": "Rainy"}
    assert await call(registry, "query_weather", {"city": "Rotterdam"}) == {
        "city": "Rotterdam", "temperature": 20, "condition": "Windy"}


def test_weather_function_directly():
    assert json.loads(query_weather("上海")) == {"city": "上海", "temperature": 25, "condition": "Sunny"}
    assert "上海" in query_weather("上海")  # ensure_ascii=False: the model sees the characters
    assert query_weather.__doc__ and "weather" in query_weather.__doc__


def test_shipped_weather_tool_declaration():
    config = load_config(REPO / "config.yaml")
    [spec] = ToolRegistry.from_config(config).specs_for(config.assistants["weather"])
    assert spec.to_openai() == {
        "type": "function", "name": "query_weather",
        "description": spec.description,
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": (
            "The city's name as the user wrote it, e.g. 上海 or 北京.")}},
            "required": ["city"], "additionalProperties": False},
        "strict": True}
    assert "weather" in spec.description


# ---- building the registry ---------------------------------------------------------------------------


def test_import_function_errors_are_readable(tmp_path):
    with pytest.raises(ConfigError, match="no module named 'tb_nowhere'"):
        import_function("tb_nowhere:f", tmp_path)
    with pytest.raises(ConfigError, match="must look like 'package.module:function'"):
        import_function("core.tools.weather.query_weather", tmp_path)
    assert import_function("core.tools.weather:query_weather") is query_weather


def test_from_config_reports_tools_that_stopped_importing(tmp_path, config):
    # The config was valid when loaded; the module disappeared before the registry was built.
    (tmp_path / "tb_reg_vanishing.py").write_text("def f() -> str:\n    return 'x'\n", encoding="utf-8")
    (tmp_path / "config.yaml").write_text(
        "default_assistant: a\nassistants:\n  a:\n    model: m\n    tools:\n"
        "      - {type: function, function: 'tb_reg_vanishing:g'}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "config.yaml")
    assert "has no attribute 'g'" in str(info.value)
    bad = config.model_copy(update={"base_dir": tmp_path, "assistants": {
        "a": config.assistants["weather"].model_copy(update={"name": "a", "tools": [
            config.assistants["weather"].tools[0].model_copy(update={"function": "tb_reg_vanishing:g"})]})}})
    with pytest.raises(ConfigError) as info:
        ToolRegistry.from_config(bad)
    assert info.value.errors == ["assistants.a: cannot import 'tb_reg_vanishing:g': module 'tb_reg_vanishing' has "
                                 "no attribute 'g'"]


def test_one_name_for_two_functions_is_refused():
    def a() -> str:
        return "a"

    def b() -> str:
        return "b"

    registry = ToolRegistry()
    registry.register(a, name="same")
    with pytest.raises(ConfigError, match="tool name 'same' is used for two functions"):
        registry.register(b, name="same")


def test_specs_for_an_unknown_assistant(registry, config):
    other = config.assistants["weather"].model_copy(update={"name": "stranger"})
    with pytest.raises(KeyError, match="stranger"):
        registry.specs_for(other)
