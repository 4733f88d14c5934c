"""Discord attachments -> core Attachment (download from the CDN on demand, size checked first).

Only Discord's CDN is ever asked for a file: an attachment's `url` comes from a gateway payload, and the
process must not become a way to make requests to any host someone names (internal services included).
discord.py's `Attachment.read()` follows redirects wherever they go, so downloads are our own request with
every redirect checked against the same hosts. The CDN needs no token, and none is sent.
"""
from __future__ import annotations

import logging
from urllib.parse import urljoin, urlsplit

import aiohttp
import discord

from core.model import Attachment, UserFacingError

log = logging.getLogger("teambridge.discord")

CDN_HOSTS = frozenset({"cdn.discordapp.com", "media.discordapp.net"})
DEFAULT_API_URL = "https://discord.com/api/v10"
REDIRECTS = (301, 302, 303, 307, 308)
FOREIGN = "“{name}” is not on Discord's file servers ({host}), so I did not download it."


class CdnFetcher:
    """Downloads attachment URLs from Discord's CDN hosts (https), and from the host of DISCORD_API_URL when
    that points at a stand-in (tests), in its own scheme."""

    def __init__(self, api_url: str = DEFAULT_API_URL) -> None:
        api = urlsplit(api_url)
        host = (api.hostname or "").lower()
        official = host == "discord.com" or host.endswith(".discord.com")
        self._extra = None if official else (api.scheme, api.netloc.lower())

    def allowed(self, url: str) -> bool:
        u = urlsplit(url)
        if self._extra is not None and (u.scheme, u.netloc.lower()) == self._extra:
            return True
        return u.scheme == "https" and (u.hostname or "").lower() in CDN_HOSTS and u.port in (None, 443)

    async def fetch(self, url: str, *, name: str, max_bytes: int) -> bytes:
        async with aiohttp.ClientSession() as session:
            for _ in range(5):
                if not self.allowed(url):
                    log.warning("attachment %r not downloaded: %s is not Discord's CDN", name, urlsplit(url).netloc)
                    raise UserFacingError(FOREIGN.format(name=name, host=urlsplit(url).hostname or url[:60]))
                async with session.get(url, allow_redirects=False) as r:
                    if r.status in REDIRECTS and "Location" in r.headers:
                        url = urljoin(url, r.headers["Location"])
                        continue
                    if r.status != 200:
                        raise UserFacingError(f"Could not download “{name}” from Discord (HTTP {r.status}).")
                    data = bytearray()
                    async for chunk in r.content.iter_chunked(64 * 1024):
                        data += chunk
                        if len(data) > max_bytes:
                            raise UserFacingError(f"“{name}” is larger than {max_bytes / 1_048_576:.0f} MB; "
                                                  "files up to that size are accepted here.")
                    return bytes(data)
        raise UserFacingError(f"Could not download “{name}” from Discord (too many redirects).")


def to_attachment(att: discord.Attachment, *, max_bytes: int, cdn: CdnFetcher | None = None) -> Attachment:
    fetcher = cdn or CdnFetcher()

    async def read() -> bytes:
        # Discord tells us the size up front: refuse before downloading anything.
        if att.size > max_bytes:
            raise UserFacingError(
                f"“{att.filename}” is {att.size / 1_048_576:.1f} MB; files up to "
                f"{max_bytes / 1_048_576:.0f} MB are accepted here.")
        return await fetcher.fetch(att.url, name=att.filename, max_bytes=max_bytes)

    return Attachment(name=att.filename, size=att.size, content_type=att.content_type, read=read)


def max_bytes(max_file_mb: float) -> int:
    return int(max_file_mb * 1024 * 1024)
