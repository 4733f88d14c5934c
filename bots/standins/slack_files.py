"""The stand-in Slack's files: files people shared (`add_file`, downloads from url_private with the bot token,
Slack's sign-in page without it), and the bot's uploads (files.getUploadURLExternal, the upload itself,
files.completeUploadExternal), and files.info. Methods of FakeSlack (bots/standins/slack_server.py), which holds
the state."""
from __future__ import annotations

import json
import time

from aiohttp import web

from bots.standins.slack_shapes import Message, prune, sample


class FileMethods:
    """Methods of FakeSlack: files, file_bytes, downloads, file_redirects, uploads are its state."""

    def add_file(self, name: str, data: bytes, mimetype: str, *, filetype: str = "",
                 size: int | None = None, user: str = "U1") -> dict:
        """A file a user uploaded, shaped like MessageFileSharePayload's files[0]."""
        fid = f"F{next(self._ids):08d}"
        base = sample("events", "MessageFileSharePayload")["event"]["files"][0]
        f = prune(base)
        f.update(id=fid, created=int(time.time()), timestamp=int(time.time()), name=name, title=name,
                 mimetype=mimetype, filetype=filetype or name.rsplit(".", 1)[-1], pretty_type=filetype or name,
                 user=user, mode="hosted", size=len(data) if size is None else size, is_external=False,
                 url_private=f"{self.base}/files-pri/{self.team_id}-{fid}/{name}",
                 url_private_download=f"{self.base}/files-pri/{self.team_id}-{fid}/{name}?download=1",
                 permalink=f"https://teambridge-test.slack.com/files/{user}/{fid}/{name}")
        self.files[fid] = f
        self.file_bytes[fid] = data
        return f

    async def _url_private(self, request: web.Request) -> web.StreamResponse:
        fid = request.match_info["team_file"].split("-", 1)[-1]
        authorized = request.headers.get("Authorization") == f"Bearer {self.bot_token}"
        self.downloads.append((fid, authorized))
        await self._notify()
        if fid in self.file_redirects:
            raise web.HTTPFound(self.file_redirects[fid])
        if not authorized or not self.files_read_scope:
            # What Slack does without files:read (or without a token): a 200 with its sign-in page.
            return web.Response(text="<!DOCTYPE html><html><head><title>Slack</title></head>"
                                     "<body>Sign in to Slack</body></html>", content_type="text/html")
        if fid not in self.file_bytes:
            return web.Response(status=404, text="file not found")
        return web.Response(body=self.file_bytes[fid], content_type=self.files[fid]["mimetype"])

    async def _m_files_info(self, a: dict) -> dict:
        f = self.files.get(a.get("file", ""))
        return {"ok": True, "file": f} if f else self._err("file_not_found")

    async def _m_files_getUploadURLExternal(self, a: dict) -> dict:
        if not a.get("filename") or not a.get("length"):
            return self._err("invalid_arguments")
        fid = f"F{next(self._ids):08d}"
        self.uploads[fid] = {"name": a["filename"], "length": int(a["length"]), "data": None, "completed": False}
        r = prune(sample("api", "files.getUploadURLExternal"))
        r.update(ok=True, upload_url=f"{self.base}/upload/{fid}", file_id=fid)
        for k in ("error", "warning", "needed", "provided", "response_metadata"):
            r.pop(k, None)
        return r

    async def _upload(self, request: web.Request) -> web.Response:
        fid = request.match_info["file_id"]
        if fid not in self.uploads:
            return web.Response(status=404, text="unknown upload")
        data = await request.read()
        self.uploads[fid]["data"] = data
        await self._notify()
        return web.Response(text=f"OK - {len(data)}")

    async def _m_files_completeUploadExternal(self, a: dict) -> dict:
        files = json.loads(a.get("files", "[]"))
        out = []
        for item in files:
            up = self.uploads.get(item.get("id", ""))
            if up is None or up["data"] is None:
                return self._err("file_not_found" if up is None else "file_upload_not_complete")
            if len(up["data"]) != up["length"]:
                return self._err("file_size_mismatch")
            up["completed"] = True
            up["title"] = item.get("title") or up["name"]
            up["channel"], up["thread_ts"] = a.get("channel_id"), a.get("thread_ts")
            f = prune(sample("api", "files.completeUploadExternal"))["files"][0]
            f.update(id=item["id"], name=up["name"], title=up["title"], size=len(up["data"]),
                     permalink=f"https://teambridge-test.slack.com/files/{self.bot_user_id}/{item['id']}/{up['name']}")
            up["permalink"] = f["permalink"]
            out.append(f)
        if a.get("channel_id"):
            m = Message(channel=a["channel_id"], ts=self._new_ts(), user=self.bot_user_id,
                        text=a.get("initial_comment", ""), thread_ts=a.get("thread_ts") or None, is_bot=True,
                        files=[{"id": f["id"], "name": f["name"]} for f in out], api_calls=1)
            self.messages.append(m)
        return {"ok": True, "files": out}
