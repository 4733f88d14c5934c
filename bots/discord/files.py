"""Discord attachments -> core Attachment (download from the CDN on demand, size checked first)."""
from __future__ import annotations

import discord

from core.model import Attachment, UserFacingError


def to_attachment(att: discord.Attachment, *, max_bytes: int) -> Attachment:
    async def read() -> bytes:
        # Discord tells us the size up front: refuse before downloading anything.
        if att.size > max_bytes:
            raise UserFacingError(
                f"“{att.filename}” is {att.size / 1_048_576:.1f} MB; files up to "
                f"{max_bytes / 1_048_576:.0f} MB are accepted here.")
        return await att.read()

    return Attachment(name=att.filename, size=att.size, content_type=att.content_type, read=read)


def max_bytes(max_file_mb: float) -> int:
    return int(max_file_mb * 1024 * 1024)
