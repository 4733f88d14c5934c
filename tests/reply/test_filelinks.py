"""`sandbox:` links never reach a reader, however the model's text is cut into deltas (core/reply/filelinks.py)."""
from __future__ import annotations

import itertools

import pytest

from core.reply.filelinks import HOLD_CHARS, FileLinks

ANSWER = "The mean is 22.5 °C.\n\n[Download the chart](sandbox:/mnt/data/chart.png)\n\nAsk for another plot anytime."
PERMALINK = "https://team.slack.com/files/UBOT/F1/chart.png"


def stream(deltas, *, post_after: int | None = None, url: str | None = PERMALINK, name: str = "chart.png"):
    """Feeds the deltas; the file is posted after delta `post_after`. Returns every piece released, in order."""
    links, shown = FileLinks(), []
    for i, delta in enumerate(deltas):
        shown.append(links.text(delta))
        if i == post_after:
            shown.append(links.posted(name, url))
    shown.append(links.flush())
    return shown


def splits(text: str, pieces: int):
    for cuts in itertools.combinations(range(1, len(text)), pieces - 1):
        bounds = (0, *cuts, len(text))
        yield [text[a:b] for a, b in zip(bounds, bounds[1:])]


@pytest.mark.parametrize("pieces", [1, 2, 3])
def test_the_link_becomes_the_permalink_whatever_the_deltas_and_never_flashes(pieces):
    expected = ANSWER.replace("sandbox:/mnt/data/chart.png", PERMALINK)
    for deltas in splits(ANSWER, pieces) if pieces < 3 else itertools.islice(splits(ANSWER, 3), 0, None, 23):
        shown = stream(deltas, post_after=len(deltas) - 1)
        assert "".join(shown) == expected, deltas
        seen = ""
        for piece in shown:   # what a reader sees after each update: never any part of the sandbox address
            seen += piece
            assert "sandbox" not in seen and "](sand" not in seen and "(sandb" not in seen, (deltas, seen)


def test_a_link_to_a_file_never_posted_keeps_only_its_label():
    assert "".join(stream([ANSWER])) == ANSWER.replace("[Download the chart](sandbox:/mnt/data/chart.png)",
                                                       "Download the chart")


def test_a_file_posted_without_an_address_is_shown_right_there_so_the_link_goes():
    shown = stream([ANSWER[:40], ANSWER[40:]], post_after=1, url=None)
    assert "".join(shown) == ANSWER.replace("[Download the chart](sandbox:/mnt/data/chart.png)", "Download the chart")


def test_a_file_posted_before_the_text_links_at_once():
    links = FileLinks()
    assert links.posted("chart.png", "/home/alice/received/chart.png") == ""
    assert links.text("See [the chart](sandbox:/mnt/data/chart.png).") == "See [the chart](/home/alice/received/chart.png)."


def test_text_after_an_unresolved_link_waits_only_so_long():
    links = FileLinks()
    assert links.text("Intro. [chart](sandbox:/mnt/data/chart.png)") == "Intro. "
    released = links.text(" " + "x" * HOLD_CHARS)
    assert released == "chart " + "x" * HOLD_CHARS


def test_images_bare_paths_and_spaces():
    links = FileLinks()
    links.posted("my chart.png", "https://cdn.example/att/my chart.png")
    assert links.text("![plot](sandbox:/mnt/data/my chart.png) and sandbox:/mnt/data/my%20chart.png ok") == \
        "[plot](https://cdn.example/att/my%20chart.png) and https://cdn.example/att/my%20chart.png ok"


def test_an_answer_ending_inside_a_link_shows_the_label():
    assert "".join(stream(["Here: [Download the chart](sandbox:/mnt/da"])) == "Here: Download the chart"


def test_ordinary_brackets_and_links_pass_unchanged():
    text = "a[0] = b[i]; see [the docs](https://example.com) or [x] (y). The sandbox is fun."
    assert "".join(stream(list(text))) == text


@pytest.mark.parametrize("ending", ["see [1](s", "see [1](sand", "see [the docs](", "see [x]"])
def test_an_answer_ending_in_what_only_might_have_become_a_link_keeps_every_character(ending):
    assert "".join(stream(list(ending))) == ending
