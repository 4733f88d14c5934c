"""core.reply.splitting: long answers become several messages; nothing is lost and code blocks stay code blocks."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from core.reply.splitting import MIN_LIMIT, is_fence_line, open_fence, split_message, unsplit


def fence_count(chunk: str) -> int:
    return sum(1 for line in chunk.split("\n") if is_fence_line(line))


# Texts the way models write them: prose, paragraphs, code blocks with and without a language, inline
# backticks, indented fences, very long "words" (URLs, base64), CJK and emoji, Windows line ends.
_fragment = st.one_of(
    st.sampled_from([
        "```", "```python\n", "\n```\n", "```\n", "\n", "\n\n", " ", "  ```js\n", "    ```not a fence\n",
        "`", "``", "see ```inline``` here", "\r\n", "上海 25°C ☀️ ", "👩‍💻", "- item\n", "# Heading\n",
        "```a-very-long-info-string-that-goes-on-and-on-and-on\n",
    ]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.text(alphabet="abc`\n ", max_size=80),
    st.integers(min_value=60, max_value=2500).map(lambda n: "x" * n),      # a word longer than a line
    st.integers(min_value=1, max_value=30).map(lambda n: "lorem ipsum dolor sit amet " * n),
)
texts = st.lists(_fragment, max_size=60).map("".join)
limits = st.one_of(st.integers(MIN_LIMIT, 200), st.integers(MIN_LIMIT, 4000))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, limit=limits)
def test_split_loses_nothing_and_fits(text: str, limit: int) -> None:
    chunks = split_message(text, limit)
    assert unsplit(chunks) == text
    assert all(0 < len(c) <= limit for c in chunks)
    # every message but the last shows balanced code blocks; the last is as balanced as the answer
    assert all(fence_count(c) % 2 == 0 for c in chunks[:-1])
    if chunks:
        assert (fence_count(chunks[-1]) % 2 == 0) == (open_fence(text) is None)


@settings(max_examples=100, deadline=None)
@given(text=texts)
def test_text_that_fits_is_one_unchanged_message(text: str) -> None:
    assert split_message(text, max(len(text), MIN_LIMIT)) == ([text] if text else [])


def test_splits_after_paragraph_break_first() -> None:
    first = "First paragraph, quite a few words in it.\nSecond line of it."
    second = "Second paragraph with more words in it."
    chunks = split_message(first + "\n\n" + second, 80)
    assert chunks == [first + "\n\n", second]


def test_splits_after_line_break_then_space_then_hard() -> None:
    lines = "alpha beta gamma delta\n" * 5
    assert split_message(lines, 70) == ["alpha beta gamma delta\n" * 3, "alpha beta gamma delta\n" * 2]
    words = "word " * 30
    chunks = split_message(words, 64)
    assert all(c.endswith(" ") for c in chunks) and "".join(chunks) == words
    long_word = "x" * 150
    assert split_message(long_word, 64) == ["x" * 64, "x" * 64, "x" * 22]


def test_code_block_split_is_closed_and_reopened_with_its_language() -> None:
    code = "".join(f"print({i})\n" for i in range(20))
    text = "Here is the code:\n\n```python\n" + code + "```\n\nThat prints 0 to 19."
    chunks = split_message(text, 100)
    assert len(chunks) > 2
    assert chunks[0].startswith("Here is the code:")
    for middle in chunks[1:-1]:
        assert middle.startswith("```python\n")
    for chunk in chunks:
        assert fence_count(chunk) % 2 == 0
    inside = [c for c in chunks[:-1] if open_fence(c[: -len("\n```")]) is not None]
    assert inside and all(c.endswith("\n```") for c in inside)
    assert unsplit(chunks) == text


def test_inline_triple_backticks_are_not_cut_into_a_fence() -> None:
    text = "word " * 10 + "see ```x``` " * 20
    for limit in range(64, 120):
        chunks = split_message(text, limit)
        assert unsplit(chunks) == text
        # no chunk starts a code block that the text did not have
        assert all(not c.startswith("```") for c in chunks)


def test_open_fence() -> None:
    assert open_fence("plain") is None
    assert open_fence("a\n```python\nx = 1") == "```python"
    assert open_fence("a\n```python\nx = 1\n```\n") is None
    assert open_fence("   ```js\n") == "   ```js"
    assert open_fence("    ```indented is code, not a fence") is None
    assert open_fence("inline ```x``` only") is None


def test_limit_below_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 64"):
        split_message("hello", 10)
