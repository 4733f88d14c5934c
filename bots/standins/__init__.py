"""Stand-in servers for the platforms and APIs teambridge talks to: Slack (Web API + Socket Mode), Discord
(REST + gateway), OpenAI (Responses, Conversations, Files, vector stores) and Chat Completions.

Each is an aiohttp app on 127.0.0.1 (ephemeral port) whose payloads are built from the SDKs' own types and
checked against the official specs kept here as package data (`specs/`). The tests drive the real SDKs against
them, and so does the benchmark (`python -m bench`), which is why they live in the package and not in tests/.
They are never used when teambridge runs for real.
"""
from __future__ import annotations

from pathlib import Path

SPECS = Path(__file__).resolve().parent / "specs"
"""The official API shapes the stand-ins are built from: slack/ (java-slack-sdk samples), discord/openapi.json,
openai/components.json (see openai/extract.py for provenance)."""
