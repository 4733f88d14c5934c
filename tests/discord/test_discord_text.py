"""What Discord shows for Markdown it can't render itself: tables, deep headings, inline images."""
from __future__ import annotations

from hypothesis import given, strategies as st

from bots.discord.text import MAX_CHARS, to_discord

WEATHER = """Here is the weather:

| City | Temp | Condition |
|------|-----:|-----------|
| 上海 | 25 | **Sunny** |
| 北京 | 19 | Rainy |
| Zürich | 7 | Windy |

Enjoy your day."""


def test_a_pipe_table_becomes_aligned_columns_in_a_code_block():
    assert to_discord(WEATHER) == """Here is the weather:

```
City   | Temp | Condition
-------+------+----------
上海   |   25 | Sunny
北京   |   19 | Rainy
Zürich |    7 | Windy
```

Enjoy your day."""


def test_tables_inside_code_blocks_and_lone_pipes_are_left_alone():
    code = "```\n| a | b |\n|---|---|\n| 1 | 2 |\n```"
    assert to_discord(code) == code
    prose = "Use a | b to pipe output.\nNext line | with a pipe."
    assert to_discord(prose) == prose


def test_table_without_outer_pipes_and_short_rows():
    text = "a | b | c\n--- | :---: | ---\n1 | 2\n"
    assert to_discord(text) == "```\na | b | c\n--+---+--\n1 | 2\n```\n"


def test_deep_headings_and_images():
    assert to_discord("#### Notes\n![chart](https://x/c.png)") == "**Notes**\n[chart](https://x/c.png)"


def test_near_the_limit_the_table_is_fenced_without_padding_or_left_as_it_was():
    rows = "\n".join(f"| {'x' * (i % 7)} | {i} |" for i in range(250))
    text = f"| name | n |\n|---|---|\n| {'long name ' * 6} | 0 |\n" + rows  # padding every row to 60 won't fit
    assert len(text) > MAX_CHARS
    out = to_discord(text[: MAX_CHARS - 10])
    assert len(out) <= MAX_CHARS
    assert out.startswith("```\n| name | n |")  # fenced, raw rows (padding would not fit)
    assert to_discord(text[: MAX_CHARS - 2]) == text[: MAX_CHARS - 2]  # no room even for the fences: unchanged, nothing lost


@given(st.text(alphabet="ab |-:\n`#", max_size=300))
def test_never_longer_than_the_limit_unless_the_input_was(text):
    out = to_discord(text, limit=120)
    assert len(out) <= max(120, len(text))
