"""What each backend type offers, declared once: config checks and attachment routing read this table.

Nothing here imports an SDK, so `teambridge check` can ask without building a client.
"""
from __future__ import annotations

from dataclasses import replace

from core.model import HOSTED_TOOLS, Capabilities

# OpenAI's Responses API with Conversations: the server keeps the history, runs the hosted tools and takes
# uploads. The other two types talk to servers that keep no state (Ollama, vLLM, llama.cpp, LM Studio,
# OpenRouter, LiteLLM; Anthropic's and Gemini's compatible endpoints for Chat Completions) and host no tools
# (docs/backends.md, ../shared/docs/platform-openai.md §6).
BY_TYPE: dict[str, Capabilities] = {
    # deferred_conversations: a new thread's first turn goes with `store: true` and no conversation when no spare
    # is ready; the conversation is made from that stored response after the answer (core/backends/openai/first_turn.py)
    "openai": Capabilities(hosted_tools=HOSTED_TOOLS, server_history=True, vision=True, file_uploads=True,
                           deferred_conversations=True),
    "responses": Capabilities(server_history=False, vision=True),
    "chat_completions": Capabilities(server_history=False, vision=True),
}


DOCUMENT_SHARE = 2   # a document's text may fill at most 1/DOCUMENT_SHARE of context_tokens


def capabilities_of(backend_type: str, *, vision: bool = True, context_tokens: int | None = None) -> Capabilities:
    """The capabilities of one configured backend: its type's, narrowed by its own `vision` switch; a backend
    without hosted file tools takes documents as text, as much as half its window holds."""
    caps = BY_TYPE[backend_type]
    if not vision and caps.vision:
        caps = replace(caps, vision=False)
    if context_tokens and "file_search" not in caps.hosted_tools:
        caps = replace(caps, document_tokens=context_tokens // DOCUMENT_SHARE)
    return caps
