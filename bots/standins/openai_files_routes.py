"""Extra stand-in controls for the files/knowledge tests, on top of bots/standins/openai_server.FakeOpenAI.

FakeOpenAI.fail_file() needs a file id, which a test only learns after the code under test uploaded the
file. FakeOpenAIFiles lets a test say "vector-store processing of any file named X fails" up front.
"""
from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from bots.standins.openai_server import FakeOpenAI


class FakeOpenAIFiles(FakeOpenAI):
    def __init__(self) -> None:
        super().__init__()
        self._failing_names: dict[str, tuple[str, str]] = {}

    def fail_filename(self, filename: str, *, code: str = "unsupported_file",
                      message: str = "The file type is not supported.") -> None:
        """Files uploaded under this name end vector-store processing as 'failed' with last_error."""
        self._failing_names[filename] = (code, message)

    def stop_failing(self, filename: str) -> None:
        """Files uploaded under this name from now on process normally."""
        self._failing_names.pop(filename, None)

    def uploads(self) -> list[dict[str, Any]]:
        """{purpose, filename} of every POST /v1/files, in order."""
        return [r.body for r in self.requests if r.method == "POST" and r.path == "/v1/files"]

    def file_names(self) -> list[str]:
        return sorted(f.obj["filename"] for f in self.files.values())

    async def _upload_file(self, request: web.Request) -> web.Response:
        response = await super()._upload_file(request)
        if response.status == 200:
            obj = json.loads(response.body)
            failing = self._failing_names.get(obj["filename"])
            if failing:
                self.fail_file(obj["id"], code=failing[0], message=failing[1])
        return response
