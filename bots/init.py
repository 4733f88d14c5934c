"""`teambridge init`: write the example config.yaml, .env.example and the sample knowledge file into a folder.

The examples ship inside the wheel (bots/examples, package data), so a `pip install teambridge` can start from
them; tests/app/test_packaging.py keeps them identical to the repository's own config.yaml and .env.example.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

# (file inside bots/examples, where it goes in the folder)
EXAMPLES = (("config.yaml", "config.yaml"), ("env.example", ".env.example"),
            ("knowledge/teambridge-handbook.md", "knowledge/teambridge-handbook.md"))


def write_examples(folder: Path, *, force: bool = False) -> tuple[list[Path], list[Path]]:
    """(written, skipped because they exist). Existing files are kept unless `force`."""
    root = resources.files("bots.examples")
    written, skipped = [], []
    for source, target in EXAMPLES:
        path = folder / target
        if path.exists() and not force:
            skipped.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(root.joinpath(source).read_bytes())
        written.append(path)
    return written, skipped
