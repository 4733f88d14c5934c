"""The OpenAI stand-in's storage: files, vector stores (their files and batches) and containers with their
files, as routes of FakeOpenAI (bots/standins/openai_server.py), which holds the state they share."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import web

from openai.types import FileObject
from openai.types.containers.file_list_response import FileListResponse as ContainerFile
from openai.types.vector_store import VectorStore
from openai.types.vector_stores import VectorStoreFile, VectorStoreFileBatch

from bots.standins import openai_events as E
from bots.standins.http import JSON_BODY as _JSON, RecordedRequest, error as _err


@dataclass
class StoredFile:
    obj: dict[str, Any]
    data: bytes


@dataclass
class Container:
    id: str
    files: dict[str, tuple[dict[str, Any], bytes]] = field(default_factory=dict)
    expired: bool = False


def page(data: list[dict[str, Any]], has_more: bool = False) -> dict[str, Any]:
    """A list in OpenAI's shape."""
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": has_more}


def paged(items: list[dict[str, Any]], query: Any) -> dict[str, Any]:
    """A page of `items` (oldest first) as a list route serves it: newest first unless `order=asc`, after the
    id `after`, at most `limit` (20 by default)."""
    items = list(items)
    if query.get("order", "desc") == "desc":
        items.reverse()
    after = query.get("after")
    if after:
        ids = [i["id"] for i in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    limit = int(query.get("limit", "20"))
    return page(items[:limit], has_more=len(items) > limit)


class StorageRoutes:
    """The handlers. The state is FakeOpenAI's (files, vector_stores, vector_store_files, batches, containers,
    poll_steps, _failing_files, _polls), as are `requests` and `_now`."""

    files: dict[str, StoredFile]
    vector_stores: dict[str, dict[str, Any]]
    vector_store_files: dict[str, dict[str, dict[str, Any]]]
    batches: dict[str, dict[str, Any]]
    containers: dict[str, Container]
    poll_steps: int
    requests: list[RecordedRequest]
    _failing_files: dict[str, tuple[str, str]]
    _polls: dict[tuple[str, str], int]
    _now: Callable[[], int]

    def _add_storage_routes(self, r: web.UrlDispatcher) -> None:
        r.add_post("/v1/files", self._upload_file)
        r.add_get("/v1/files", self._list_files)
        r.add_get("/v1/files/{fid}", self._get_file)
        r.add_delete("/v1/files/{fid}", self._delete_file)
        r.add_get("/v1/files/{fid}/content", self._file_content)
        r.add_post("/v1/vector_stores", self._create_vs)
        r.add_get("/v1/vector_stores", self._list_vs)
        r.add_get("/v1/vector_stores/{vid}", self._get_vs)
        r.add_delete("/v1/vector_stores/{vid}", self._delete_vs)
        r.add_post("/v1/vector_stores/{vid}/files", self._add_vs_file)
        r.add_get("/v1/vector_stores/{vid}/files", self._list_vs_files)
        r.add_get("/v1/vector_stores/{vid}/files/{fid}", self._get_vs_file)
        r.add_delete("/v1/vector_stores/{vid}/files/{fid}", self._delete_vs_file)
        r.add_post("/v1/vector_stores/{vid}/file_batches", self._create_batch)
        r.add_get("/v1/vector_stores/{vid}/file_batches/{bid}", self._get_batch)
        r.add_get("/v1/vector_stores/{vid}/file_batches/{bid}/files", self._list_batch_files)
        r.add_get("/v1/containers/{cid}/files", self._list_container_files)
        r.add_get("/v1/containers/{cid}/files/{fid}", self._get_container_file)
        r.add_get("/v1/containers/{cid}/files/{fid}/content", self._container_file_content)

    # ---- files ----
    async def _upload_file(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        purpose = str(form.get("purpose", ""))
        self.requests[-1] = RecordedRequest(request.method, request.path,
                                            {"purpose": purpose, "filename": getattr(upload, "filename", None)})
        if upload is None or not hasattr(upload, "file"):
            return _err(400, "Missing required parameter: 'file'.", param="file")
        if purpose not in {"assistants", "batch", "fine-tune", "vision", "user_data", "evals"}:
            return _err(400, f"Invalid value for 'purpose': '{purpose}'.", param="purpose")
        data = upload.file.read()
        fid = E.new_id("file")
        obj = E.dump(FileObject(id=fid, object="file", bytes=len(data), created_at=self._now(),
                                filename=upload.filename, purpose=purpose, status="processed"))
        self.files[fid] = StoredFile(obj, data)
        return web.json_response(obj)

    async def _list_files(self, request: web.Request) -> web.Response:
        data = [f.obj for f in self.files.values()]
        return web.json_response(page(data))

    def _file_or_404(self, request: web.Request) -> tuple[str, web.Response | None]:
        fid = request.match_info["fid"]
        if fid not in self.files:
            return fid, _err(404, f"No such File object: {fid}", param="id")
        return fid, None

    async def _get_file(self, request: web.Request) -> web.Response:
        fid, missing = self._file_or_404(request)
        return missing or web.json_response(self.files[fid].obj)

    async def _delete_file(self, request: web.Request) -> web.Response:
        fid, missing = self._file_or_404(request)
        if missing:
            return missing
        del self.files[fid]
        return web.json_response({"id": fid, "object": "file", "deleted": True})

    async def _file_content(self, request: web.Request) -> web.Response:
        fid, missing = self._file_or_404(request)
        return missing or web.Response(body=self.files[fid].data, content_type="application/octet-stream")

    # ---- vector stores ----
    async def _create_vs(self, request: web.Request) -> web.Response:
        body = request[_JSON] or {}
        vid = E.new_id("vs")
        obj = E.dump(VectorStore(id=vid, object="vector_store", created_at=self._now(), name=body.get("name") or "",
                                 metadata=body.get("metadata") or {}, status="completed", usage_bytes=0,
                                 last_active_at=self._now(), expires_at=None,
                                 **({"expires_after": body["expires_after"]} if body.get("expires_after") else {}),
                                 file_counts={"cancelled": 0, "completed": 0, "failed": 0, "in_progress": 0,
                                              "total": 0}))
        self.vector_stores[vid] = obj
        self.vector_store_files[vid] = {}
        for fid in body.get("file_ids") or []:
            self._attach(vid, fid, {})
        return web.json_response(self._vs(vid))

    def _vs(self, vid: str) -> dict[str, Any]:
        files = self.vector_store_files[vid].values()
        counts = {s: sum(1 for f in files if f["status"] == s) for s in ("cancelled", "completed", "failed",
                                                                          "in_progress")}
        counts["total"] = len(files)
        # Like the real service: a store's size is what its processed files take up.
        used = sum(f.get("usage_bytes") or 0 for f in files if f["status"] == "completed")
        return dict(self.vector_stores[vid], file_counts=counts, usage_bytes=used)

    def _vs_or_404(self, request: web.Request) -> tuple[str, web.Response | None]:
        vid = request.match_info["vid"]
        if vid not in self.vector_stores:
            return vid, _err(404, f"No vector store found with id '{vid}'.")
        return vid, None

    async def _list_vs(self, request: web.Request) -> web.Response:
        return web.json_response(page([self._vs(v) for v in self.vector_stores]))

    async def _get_vs(self, request: web.Request) -> web.Response:
        vid, missing = self._vs_or_404(request)
        return missing or web.json_response(self._vs(vid))

    async def _delete_vs(self, request: web.Request) -> web.Response:
        vid, missing = self._vs_or_404(request)
        if missing:
            return missing
        del self.vector_stores[vid]
        del self.vector_store_files[vid]
        return web.json_response({"id": vid, "object": "vector_store.deleted", "deleted": True})

    def _attach(self, vid: str, fid: str, attributes: dict[str, Any]) -> dict[str, Any]:
        obj = E.dump(VectorStoreFile(id=fid, object="vector_store.file", created_at=self._now(),
                                     vector_store_id=vid, status="in_progress", last_error=None,
                                     usage_bytes=0, attributes=attributes or None))
        self.vector_store_files[vid][fid] = obj
        self._polls[(vid, fid)] = 0
        return obj

    def _advance(self, vid: str, fid: str) -> dict[str, Any]:
        """Files report in_progress for `poll_steps` retrievals, then completed (or failed, see fail_file)."""
        obj = self.vector_store_files[vid][fid]
        if obj["status"] == "in_progress":
            self._polls[(vid, fid)] += 1
            if self._polls[(vid, fid)] > self.poll_steps:
                if fid in self._failing_files:
                    code, message = self._failing_files[fid]
                    obj = dict(obj, status="failed", last_error={"code": code, "message": message})
                else:
                    size = len(self.files[fid].data) if fid in self.files else 0
                    obj = dict(obj, status="completed", usage_bytes=size)
                self.vector_store_files[vid][fid] = obj
        return obj

    async def _add_vs_file(self, request: web.Request) -> web.Response:
        vid, missing = self._vs_or_404(request)
        if missing:
            return missing
        body = request[_JSON] or {}
        fid = body.get("file_id")
        if fid not in self.files:
            return _err(404, f"No such File object: {fid}", param="file_id")
        return web.json_response(self._attach(vid, fid, body.get("attributes") or {}), headers=self._poll_headers())

    @staticmethod
    def _poll_headers() -> dict[str, str]:
        # The SDK's pollers sleep for openai-poll-after-ms between retrievals (default 1 s): keep tests fast.
        return {"openai-poll-after-ms": "5"}

    async def _get_vs_file(self, request: web.Request) -> web.Response:
        vid, missing = self._vs_or_404(request)
        if missing:
            return missing
        fid = request.match_info["fid"]
        if fid not in self.vector_store_files[vid]:
            return _err(404, f"No file found with id '{fid}' in vector store '{vid}'.")
        return web.json_response(self._advance(vid, fid), headers=self._poll_headers())

    async def _list_vs_files(self, request: web.Request) -> web.Response:
        vid, missing = self._vs_or_404(request)
        if missing:
            return missing
        data = [self._advance(vid, f) for f in list(self.vector_store_files[vid])]
        status = request.query.get("filter")
        if status:
            data = [d for d in data if d["status"] == status]
        return web.json_response(page(data))

    async def _delete_vs_file(self, request: web.Request) -> web.Response:
        vid, missing = self._vs_or_404(request)
        if missing:
            return missing
        fid = request.match_info["fid"]
        self.vector_store_files[vid].pop(fid, None)
        return web.json_response({"id": fid, "object": "vector_store.file.deleted", "deleted": True})

    async def _create_batch(self, request: web.Request) -> web.Response:
        vid, missing = self._vs_or_404(request)
        if missing:
            return missing
        body = request[_JSON] or {}
        entries = [{"file_id": f} for f in body.get("file_ids") or []] + list(body.get("files") or [])
        for e in entries:
            if e.get("file_id") not in self.files:
                return _err(404, f"No such File object: {e.get('file_id')}", param="file_ids")
        for e in entries:
            self._attach(vid, e["file_id"], e.get("attributes") or body.get("attributes") or {})
        bid = E.new_id("vsfb")
        self.batches[bid] = {"id": bid, "vector_store_id": vid, "file_ids": [e["file_id"] for e in entries],
                             "created_at": self._now()}
        return web.json_response(self._batch(bid), headers=self._poll_headers())

    def _batch(self, bid: str) -> dict[str, Any]:
        b = self.batches[bid]
        files = [self._advance(b["vector_store_id"], f) for f in b["file_ids"]]
        counts = {s: sum(1 for f in files if f["status"] == s) for s in ("cancelled", "completed", "failed",
                                                                          "in_progress")}
        counts["total"] = len(files)
        status = "in_progress" if counts["in_progress"] else ("failed" if counts["failed"] == len(files) and files
                                                              else "completed")
        return E.dump(VectorStoreFileBatch(id=bid, object="vector_store.files_batch", created_at=b["created_at"],
                                           vector_store_id=b["vector_store_id"], status=status, file_counts=counts))

    def _batch_or_404(self, request: web.Request) -> tuple[str, web.Response | None]:
        bid = request.match_info["bid"]
        if bid not in self.batches:
            return bid, _err(404, f"No file batch found with id '{bid}'.")
        return bid, None

    async def _get_batch(self, request: web.Request) -> web.Response:
        bid, missing = self._batch_or_404(request)
        return missing or web.json_response(self._batch(bid), headers=self._poll_headers())

    async def _list_batch_files(self, request: web.Request) -> web.Response:
        bid, missing = self._batch_or_404(request)
        if missing:
            return missing
        b = self.batches[bid]
        data = [self.vector_store_files[b["vector_store_id"]][f] for f in b["file_ids"]
                if f in self.vector_store_files.get(b["vector_store_id"], {})]
        status = request.query.get("filter")
        if status:
            data = [d for d in data if d["status"] == status]
        return web.json_response(page(data))

    # ---- containers ----
    def _container_for(self, body: dict[str, Any]) -> Container:
        tool = next((t for t in body.get("tools") or [] if t.get("type") == "code_interpreter"), None)
        spec = (tool or {}).get("container")
        if isinstance(spec, str) and spec in self.containers:
            return self.containers[spec]
        container = Container(id=E.new_id("cntr"))
        self.containers[container.id] = container
        for fid in (spec or {}).get("file_ids", []) if isinstance(spec, dict) else []:
            stored = self.files.get(fid)
            if stored is None:
                continue
            cfid = E.new_id("cfile")
            obj = E.dump(ContainerFile(id=cfid, object="container.file", bytes=len(stored.data),
                                       container_id=container.id, created_at=self._now(),
                                       path=f"/mnt/data/{stored.obj['filename']}", source="user"))
            container.files[cfid] = (obj, stored.data)
        return container

    def _container_or_404(self, request: web.Request) -> tuple[Container | None, web.Response | None]:
        cid = request.match_info["cid"]
        c = self.containers.get(cid)
        if c is None or c.expired:
            # Containers expire after ~20 minutes idle; their files are gone with them.
            return None, _err(404, f"Container with id '{cid}' not found.", code="container_expired" if c else None)
        return c, None

    async def _list_container_files(self, request: web.Request) -> web.Response:
        c, missing = self._container_or_404(request)
        if missing:
            return missing
        return web.json_response(page([obj for obj, _ in c.files.values()]))

    def _container_file(self, request: web.Request) -> tuple[dict[str, Any], bytes] | web.Response:
        c, missing = self._container_or_404(request)
        if missing:
            return missing
        fid = request.match_info["fid"]
        if fid not in c.files:
            return _err(404, f"File '{fid}' not found in container.")
        return c.files[fid]

    async def _get_container_file(self, request: web.Request) -> web.Response:
        got = self._container_file(request)
        return got if isinstance(got, web.Response) else web.json_response(got[0])

    async def _container_file_content(self, request: web.Request) -> web.Response:
        got = self._container_file(request)
        return got if isinstance(got, web.Response) else web.Response(body=got[1],
                                                                      content_type="application/octet-stream")
