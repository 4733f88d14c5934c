"""What is said about attachments that could not be used: a notice for the person, a note for the model.

A message is never dropped because of its attachment (issue 15): the file is left out, the person is told
which and why, and the text is answered. The model is told too, so that "summarise this" is not answered as if
the file were there.
"""
from __future__ import annotations

from typing import Sequence

from core.files.attachments import Refused


def refusal_notice(refused: Sequence[Refused], *, answering: bool = True) -> str:
    """For the person: one line per file left out, then what happens with the rest of the message."""
    lines = [r.reason for r in refused]
    if answering:
        lines.append("Answering your message without " + ("it." if len(refused) == 1 else "them."))
    return "\n".join(lines)


def model_notes(refused: Sequence[Refused]) -> tuple[str, ...]:
    """For the model, after the user's text: which files it does not get (the person has been told)."""
    return tuple(f"[Attachment “{r.name}” could not be given to you: {r.reason} The user has been told.]"
                 for r in refused)


def not_supported(names: Sequence[str]) -> tuple[Refused, ...]:
    """Every file, where this service has no way to take files at all."""
    return tuple(Refused(name, f"{name}: files can't be used here.") for name in names)
