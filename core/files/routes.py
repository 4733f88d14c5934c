"""Where a user's file can go for one assistant: the routing tables, the per-route size limits, and the
sentences that say what an assistant takes (used when a file is refused).

Routing is by what the bytes are (core.files.sniff), the assistant's tools and what its backend offers
(core.model.Capabilities: hosted tools, vision, uploads).
"""
from __future__ import annotations

from core.config.schema import AssistantConfig
from core.model import HOSTED_TOOLS, Capabilities
from core.files.extract import EXTRACTABLE

MB = 1024 * 1024


IMAGE_EXTS = frozenset({"png", "jpeg", "gif", "webp"})
# What OpenAI's code interpreter reads (its documented list, plus the data formats pandas opens).
CODE_EXTS = frozenset({
    "csv", "tsv", "xlsx", "xls", "json", "ipynb", "txt", "py", "parquet", "pkl", "xml", "yaml", "sql", "r",
    "js", "ts", "sh", "c", "cpp", "cs", "java", "go", "rb", "php", "css", "tex", "log", "zip", "tar", "gz",
    "md", "html", "pdf", "docx", "pptx", "doc",
    "png", "jpeg", "gif",
})
# What file_search indexes (OpenAI's list).
SEARCH_EXTS = frozenset({
    "pdf", "docx", "doc", "md", "txt", "html", "pptx", "json", "tex", "py", "js", "ts", "sh", "c", "cpp",
    "cs", "css", "java", "go", "rb", "php", "rst",
})
# Documents are for reading, data is for computing: each kind prefers one tool and falls back to the other.
DOC_EXTS = frozenset({"pdf", "docx", "doc", "md", "html", "pptx", "rst", "tex"})

PURPOSE_CODE = "user_data"
PURPOSE_SEARCH = "assistants"
PURPOSE_VISION = "vision"

ROUTE_VISION = "vision"
ROUTE_CODE = "code_interpreter"
ROUTE_SEARCH = "file_search"
ROUTE_TEXT = "text"            # extracted here and sent as text (backends without hosted file tools)



# Without a backend's declaration, the tools the assistant names are taken to be there (`teambridge check`
# refuses a hosted tool its backend lacks, so a loaded config only names tools that exist).
TRUST_CONFIG = Capabilities(hosted_tools=HOSTED_TOOLS, vision=True, file_uploads=True)


def _hosted(assistant: AssistantConfig, caps: Capabilities, tool: str) -> bool:
    return tool in caps.hosted_tools and assistant.tool(tool) is not None


def _vision(assistant: AssistantConfig, caps: Capabilities) -> bool:
    return assistant.vision and caps.vision


def routes_for(assistant: AssistantConfig, ext: str, caps: Capabilities = TRUST_CONFIG) -> list[str]:
    """Routes this assistant (on a backend with `caps`) has for a file kind, best first."""
    code = _hosted(assistant, caps, "code_interpreter")
    search = _hosted(assistant, caps, "file_search")
    out: list[str] = []
    if ext in IMAGE_EXTS:
        if _vision(assistant, caps):
            out.append(ROUTE_VISION)
        if code and ext in CODE_EXTS:
            out.append(ROUTE_CODE)
        return out
    if ext in DOC_EXTS:
        if search and ext in SEARCH_EXTS:
            out.append(ROUTE_SEARCH)
        if code and ext in CODE_EXTS:
            out.append(ROUTE_CODE)
        if not out and caps.document_tokens and ext in EXTRACTABLE:
            out.append(ROUTE_TEXT)
        return out
    # data, code and plain text: txt goes to the code interpreter when there is one, else file search.
    if code and ext in CODE_EXTS:
        out.append(ROUTE_CODE)
    if search and ext in SEARCH_EXTS:
        out.append(ROUTE_SEARCH)
    if not out and caps.document_tokens and ext in EXTRACTABLE:
        out.append(ROUTE_TEXT)
    return out


def limit_mb(assistant: AssistantConfig, route: str) -> float:
    f = assistant.files
    return {ROUTE_VISION: f.max_image_mb, ROUTE_CODE: f.max_code_interpreter_mb,
            ROUTE_SEARCH: f.max_document_mb, ROUTE_TEXT: f.max_document_mb}[route]


def accepts_text(assistant: AssistantConfig, caps: Capabilities = TRUST_CONFIG) -> str:
    """'It accepts ...' sentence for error messages, from what this assistant really has."""
    parts = []
    if _vision(assistant, caps):
        parts.append(f"images (png, jpeg, gif, webp, up to {_fmt_mb(assistant.files.max_image_mb)})")
    if _hosted(assistant, caps, "code_interpreter"):
        parts.append("data files for code (csv, xlsx, json, txt, py, ..., up to "
                     f"{_fmt_mb(assistant.files.max_code_interpreter_mb)})")
    if _hosted(assistant, caps, "file_search"):
        parts.append(f"documents (pdf, docx, md, txt, html, ..., up to {_fmt_mb(assistant.files.max_document_mb)})")
    elif caps.document_tokens:
        parts.append(f"documents and text files read as text (pdf, docx, pptx, txt, md, csv, json, code, ..., "
                     f"up to about {caps.document_tokens:,} tokens of text)")
    if not parts:
        return "It doesn't take file attachments; paste the text into your message instead."
    if len(parts) == 1:
        return f"It accepts {parts[0]}."
    return f"It accepts {', '.join(parts[:-1])} and {parts[-1]}."


def _fmt_mb(mb: float) -> str:
    return f"{mb:g} MB"


def _fmt_size(n: int) -> str:
    if n >= MB:
        return f"{n / MB:.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} bytes"


def routes_for_any(assistant: AssistantConfig, route: str, caps: Capabilities = TRUST_CONFIG) -> bool:
    if route == ROUTE_VISION:
        return _vision(assistant, caps)
    if route == ROUTE_TEXT:
        return caps.document_tokens > 0
    return _hosted(assistant, caps, route)


def too_big(name: str, size: int, route: str | None, limit: float) -> str:
    """The refusal for a file over a route's size limit."""
    what = {ROUTE_VISION: "images", ROUTE_CODE: "data files", ROUTE_SEARCH: "documents",
            ROUTE_TEXT: "documents"}.get(route or "", "files")
    return f"{name} is {_fmt_size(size)}; this assistant takes {what} up to {_fmt_mb(limit)}."
