"""Knowledge file patterns (file_search `files:`): paths or globs, relative to the config file's directory."""
from __future__ import annotations

import glob
import os
from pathlib import Path

from core.config.schema import Config, FileSearchTool


def matching_files(pattern: str, base_dir: Path) -> list[str]:
    full = pattern if os.path.isabs(pattern) else os.path.join(base_dir, pattern)
    return [p for p in glob.glob(full, recursive=True) if os.path.isfile(p)]


def resolve_files(config: Config, tool: FileSearchTool) -> list[Path]:
    """The existing files a file_search tool names (globs expanded, relative to the config's directory), sorted."""
    found: set[str] = set()
    for pattern in tool.files:
        found.update(matching_files(pattern, config.base_dir))
    return sorted(Path(p) for p in found)
