"""A deterministic "model" for the tutorial's scenarios, as a FakeOpenAI responder.

It decides from the request the way a real model would from its tools and the user's words:
Fibonacci -> runs code; a weather question with query_weather available -> calls it; a question with
file_search available -> searches the vector store and cites the first file; otherwise echoes.
"""
from __future__ import annotations

import json
import re
from typing import Any

from bots.standins.openai_server import (CodeRun, FakeOpenAI, FileSearchHit, FunctionCall, GeneratedFile,
                                       ScriptedResponse, default_policy, last_user_text)

FIB_CODE = "a, b = 0, 1\nfor _ in range(20):\n    a, b = b, a + b\nprint(a)"
CHART_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _tool_types(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t.get("name") or t["type"]: t for t in body.get("tools") or []}


def tutorial_brain(fake: FakeOpenAI):
    def respond(body: dict[str, Any]) -> ScriptedResponse:
        tools = _tool_types(body)
        inputs = body.get("input") or []
        if isinstance(inputs, list) and any(i.get("type") == "function_call_output" for i in inputs
                                            if isinstance(i, dict)):
            output = next(i["output"] for i in inputs if i.get("type") == "function_call_output")
            data = json.loads(output)
            if "error" in data:
                return ScriptedResponse(text=f"Sorry, the weather service failed: {data['error']}")
            return ScriptedResponse(text=f"It is {data['temperature']}°C and {data['condition']} in {data['city']}.")
        text = last_user_text(body)
        if "code_interpreter" in tools and re.search(r"fibonacci", text, re.I):
            return ScriptedResponse(code=CodeRun(code=FIB_CODE, logs="6765"),
                                    text="The 20th Fibonacci number is 6765.")
        if "code_interpreter" in tools and re.search(r"chart|plot|analy", text, re.I):
            files = tools["code_interpreter"]["container"].get("file_ids") or []
            return ScriptedResponse(code=CodeRun(code="import pandas as pd\ndf = pd.read_csv(...)",
                                                 logs=f"read {len(files)} file(s)",
                                                 file=GeneratedFile("chart.png", CHART_PNG)),
                                    text="Here is the chart of your data.")
        if "query_weather" in tools:
            city = next((c for c in ("上海", "北京", "Paris", "London") if c in text), None)
            if city:
                return ScriptedResponse(function_calls=(FunctionCall("query_weather",
                                                                     json.dumps({"city": city},
                                                                                ensure_ascii=False)),))
        if "file_search" in tools:
            for vs_id in tools["file_search"].get("vector_store_ids") or []:
                for file_id in fake.vector_store_files.get(vs_id, {}):
                    name = fake.files[file_id].obj.get("filename", file_id) if file_id in fake.files else file_id
                    return ScriptedResponse(file_search=FileSearchHit(file_id=file_id, filename=name, query=text),
                                            text="The office espresso machine is called Bertha.")
        return default_policy(body)

    return respond
