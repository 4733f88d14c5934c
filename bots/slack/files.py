"""Files users share in Slack -> core Attachments whose read() downloads url_private with the bot token."""
from __future__ import annotations

import logging
from typing import Callable
from urllib.parse import urljoin, urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.model import Attachment, UserFacingError

log = logging.getLogger(__name__)

MB = 1024 * 1024

SCOPE_HINT = ("Slack sent its sign-in page instead of the file {name!r}: the Slack app needs the "
              "files:read scope (add it, then reinstall the app to the workspace).")


FILE_HOST = "files.slack.com"
# Hosts Slack itself may redirect a download to: fetched (over https) but never sent the token.
SLACK_DOMAINS = (".slack.com", ".slack-edge.com", ".slack-files.com")
FOREIGN = ("{name!r} is not on Slack's file servers ({host}), so I did not download it. "
           "Share the file by uploading it to Slack.")


class FileHosts:
    """Where a file download may go. The bot token reads every file in every channel the bot is in, so it goes
    only to Slack's file host (https) and the host of SLACK_API_URL (a stand-in in tests, plain http allowed
    there only because that is how SLACK_API_URL names it). A URL elsewhere is never requested."""

    def __init__(self, api_url: str) -> None:
        api = urlsplit(api_url)
        self._api = (api.scheme, api.netloc.lower())

    def gets_token(self, url: str) -> bool:
        u = urlsplit(url)
        if (u.scheme, u.netloc.lower()) == self._api:
            return True
        return u.scheme == "https" and (u.hostname or "") == FILE_HOST and u.port in (None, 443)

    def may_fetch(self, url: str) -> bool:
        """Also Slack's own hosts a download may be redirected to (fetched without the token)."""
        if self.gets_token(url):
            return True
        u = urlsplit(url)
        host = (u.hostname or "").lower()
        return u.scheme == "https" and u.port in (None, 443) and any(host.endswith(d) for d in SLACK_DOMAINS)


class SlackFiles:
    """Downloads shared files. `session` is created by the adapter (one per process, closed on stop)."""

    def __init__(self, *, token: str, client: AsyncWebClient, session: Callable[[], aiohttp.ClientSession],
                 api_url: str = "https://slack.com/api/") -> None:
        self._token = token
        self._client = client
        self._session = session
        self.hosts = FileHosts(api_url)

    async def details(self, f: dict) -> dict:
        """The file as shared, looked up with files.info when the event carries only its id (Slack Connect
        channels send `file_access: "check_file_info"`): name, type and size decide where core routes it."""
        if f.get("file_access") != "check_file_info" and (f.get("url_private_download") or f.get("url_private")):
            return f
        try:
            info = (await self._client.files_info(file=f["id"]))["file"]
        except SlackApiError as e:
            log.warning("files.info failed for %s (%s)", f.get("id"), e.response.get("error"))
            raise UserFacingError(f"Could not read a file you shared from Slack ({e.response.get('error')}).") from e
        return {**f, **info}

    async def attachments(self, files: list[dict], *, max_mb: float) -> tuple[Attachment, ...]:
        """The shared files as core Attachments. A file whose details cannot be looked up still becomes one, whose
        read() says why: core then leaves that file out and answers the rest of the message."""
        out = []
        for f in files:
            try:
                out.append(self.attachment(await self.details(f), max_mb=max_mb))
            except UserFacingError as exc:
                out.append(_unreadable(f.get("name") or f.get("title") or f["id"], exc))
        return tuple(out)

    def attachment(self, f: dict, *, max_mb: float) -> Attachment:
        name = f.get("name") or f.get("title") or f.get("id", "file")
        size = f.get("size")

        async def read() -> bytes:
            return await self.download(f, max_mb=max_mb)

        return Attachment(name=name, size=int(size) if size is not None else None,
                          content_type=f.get("mimetype") or None, read=read)

    async def download(self, f: dict, *, max_mb: float) -> bytes:
        name = f.get("name") or f.get("id", "file")
        limit = int(max_mb * MB)
        f = await self.details(f)  # a no-op for files the adapter looked up already
        size = f.get("size")
        if size is not None and int(size) > limit:
            raise UserFacingError(f"{name} is {int(size) / MB:.1f} MB; files up to {max_mb:g} MB can be used here.")
        url = f.get("url_private_download") or f.get("url_private")
        if not isinstance(url, str) or not url:
            raise UserFacingError(f"Slack did not say where to download {name}.")
        for _ in range(5):
            if not self.hosts.may_fetch(url):
                log.warning("file %s not downloaded: %s is not a Slack file host", f.get("id"), urlsplit(url).netloc)
                raise UserFacingError(FOREIGN.format(name=name, host=urlsplit(url).hostname or url[:60]))
            # the token only to Slack's file host, on redirects too
            headers = {"Authorization": f"Bearer {self._token}"} if self.hosts.gets_token(url) else {}
            async with self._session().get(url, headers=headers, allow_redirects=False) as r:
                if r.status in (301, 302, 303, 307, 308) and "Location" in r.headers:
                    url = urljoin(url, r.headers["Location"])
                    continue
                if r.status != 200:
                    raise UserFacingError(f"Could not download {name} from Slack (HTTP {r.status}).")
                ctype = r.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if ctype == "text/html" and (f.get("mimetype") or "") != "text/html":
                    # Without files:read (or added without reinstalling) Slack answers 200 with a login page.
                    raise UserFacingError(SCOPE_HINT.format(name=name))
                data = bytearray()
                async for chunk in r.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > limit:
                        raise UserFacingError(f"{name} is larger than {max_mb:g} MB; files up to that size "
                                              "can be used here.")
                return bytes(data)
        raise UserFacingError(f"Could not download {name} from Slack (too many redirects).")


def _unreadable(name: str, error: UserFacingError) -> Attachment:
    async def read() -> bytes:
        raise error

    return Attachment(name=name, size=None, content_type=None, read=read)
