"""Backends declare what they offer; attachment routing reads the declaration instead of assuming OpenAI."""
from __future__ import annotations

from core.backends.capabilities import BY_TYPE, capabilities_of
from core.config.schema import AssistantConfig
from core.files.attachments import ROUTE_CODE, ROUTE_SEARCH, ROUTE_VISION, accepts_text, routes_for

ALL = AssistantConfig(name="all", model="m", tools=[{"type": "code_interpreter"}, {"type": "file_search"}])


def test_each_type_declares_where_history_lives_and_which_tools_it_hosts():
    assert BY_TYPE["openai"].server_history and {"code_interpreter", "file_search"} <= BY_TYPE["openai"].hosted_tools
    for kind in ("responses", "chat_completions"):
        assert not BY_TYPE[kind].server_history and not BY_TYPE[kind].hosted_tools


def test_a_backend_can_switch_vision_off():
    assert capabilities_of("responses").vision and not capabilities_of("responses", vision=False).vision


def test_routing_follows_the_backend_not_the_assistant_alone():
    assert routes_for(ALL, "csv", BY_TYPE["openai"]) == [ROUTE_CODE]
    assert routes_for(ALL, "pdf", BY_TYPE["openai"]) == [ROUTE_SEARCH, ROUTE_CODE]
    assert routes_for(ALL, "png", BY_TYPE["openai"]) == [ROUTE_VISION, ROUTE_CODE]
    # the same assistant on a server that hosts no tools: images still go as vision input, nothing to a tool
    assert routes_for(ALL, "csv", BY_TYPE["responses"]) == []
    assert routes_for(ALL, "png", BY_TYPE["responses"]) == [ROUTE_VISION]
    assert routes_for(ALL, "png", capabilities_of("chat_completions", vision=False)) == []
    assert "code" not in accepts_text(ALL, BY_TYPE["responses"])


def test_documents_go_as_text_where_no_hosted_tool_reads_them():
    from core.files.attachments import ROUTE_TEXT
    local = capabilities_of("responses", context_tokens=8000)
    assert local.document_tokens == 4000 and capabilities_of("openai", context_tokens=8000).document_tokens == 0
    assert routes_for(ALL, "pdf", local) == [ROUTE_TEXT] and routes_for(ALL, "csv", local) == [ROUTE_TEXT]
    assert routes_for(ALL, "xlsx", local) == []                       # no text to extract here: refused clearly
    assert "read as text" in accepts_text(ALL, local)
