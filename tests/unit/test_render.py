"""The renderer and the fitter: untrusted text is inert and visible, and cuts say what they cut."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.slack.fit import cut, cut_middle, marker, shorten, size, split
from bot.slack.render import BACKTICK, escape, hidden, inert, inert_code, mention, visible

HIDDEN = (
    [chr(c) for c in range(0x20) if chr(c) not in "\n\t"]
    + ["\x7f", "\x85", "\x9b", "\u00ad", "\u061c", "\u180e", "\u2028", "\u2029", "\ufeff"]
    + [chr(c) for c in (*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2066, 0x206A))]
    + ["\U000e0041", "\u3164", "\u115f"]
)
MARKUP = ["<!channel>", "<!here>", "<!everyone>", "<@U0VICTIM>", "<!subteam^S0EVIL>",
          "<https://evil.example|https://good.example>", "<#C0SECRET>",
          "<!date^1700000000^{date}|fake>"]  # fmt: skip
FRAGMENTS = [*MARKUP, *HIDDEN, "```", "`", "*", "_", "~", "&", "&amp;", "⟨U+202E⟩", "😀", "é",
             "\n", "xoxb-1234-5678-abcdefgh", "password=hunter2hunter2",
             "Bearer abcdefghijk"]  # fmt: skip
hostile = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=20)), max_size=40).map(
    "".join
)


def test_every_invisible_or_direction_changing_character_is_shown() -> None:
    for char in HIDDEN:
        assert hidden(char), f"U+{ord(char):04X}"
        assert visible(f"a{char}b") == f"a⟨U+{ord(char):04X}⟩b"
    assert visible("tab\tand\nnewline, é, 😀, 中文") == "tab\tand\nnewline, é, 😀, 中文"


def test_markup_is_inert_and_secrets_masked() -> None:
    text = " ".join(MARKUP) + " & xoxb-1234-5678-secret"
    rendered = inert(text)
    assert "<" not in rendered and ">" not in rendered and "secret" not in rendered
    assert "&lt;!channel&gt;" in rendered and "&amp;" in rendered
    assert escape("a<b>&c") == "a&lt;b&gt;&amp;c"


def test_code_cannot_close_its_block() -> None:
    code = inert_code("echo ```*bold*``` `x`")
    assert "`" not in code and code.count(BACKTICK) == 8


def test_only_ids_become_mentions() -> None:
    assert (mention("U0A12"), mention("W0B34"), mention("S0TEAM")) == (
        "<@U0A12>", "<@W0B34>", "<!subteam^S0TEAM>")  # fmt: skip
    for fake in ("U0A12\n", "<!channel>", "U0A>|x", "local:al`ice", "u0lower", "U"):
        assert mention(fake).startswith("`") and "<" not in mention(fake)


@settings(max_examples=300, deadline=None, database=None)
@given(text=hostile, limit=st.integers(min_value=40, max_value=400))
def test_cuts_fit_say_how_much_and_never_split_an_escape(text: str, limit: int) -> None:
    rendered = inert(text)
    fitted = cut(rendered, limit)
    assert size(fitted) <= limit
    if fitted != rendered:
        found = re.search(r"… ([\d,]+) more characters$", fitted)
        assert found is not None and int(found.group(1).replace(",", "")) > 0
    assert not re.search(r"&(a|am|amp|l|lt|g|gt)?$", fitted.split("…")[0])  # no half escape
    assert "⟨" not in re.sub(r"⟨U\+[0-9A-F]{4,6}⟩", "", fitted)  # no half marker
    assert "".join(split(rendered, 100)) == rendered
    assert all(size(piece) <= 100 for piece in split(rendered, 100))
    assert size(shorten(rendered, 20)) <= 20


@settings(max_examples=200, deadline=None, database=None)
@given(text=hostile.map(lambda t: t * 30))
def test_head_and_tail_keep_both_ends(text: str) -> None:
    rendered = inert(text)
    parts = cut_middle(rendered, 300, 100)
    if parts is None:
        assert size(rendered) <= 400
        return
    head, hidden_count, tail = parts
    assert rendered.startswith(head) and rendered.endswith(tail)
    assert size(head) <= 300 and size(tail) <= 100 and hidden_count > 0


def test_sizes_count_as_slack_counts() -> None:
    assert size("abc") == 3 and size("😀") == 2 and size("é") == 1
    assert marker(2214) == "… 2,214 more characters"
    assert size(cut("😀" * 100, 50)) <= 50


def test_json_shows_control_characters_like_every_hidden_character() -> None:
    from bot.slack.render import json_text

    shown = json_text({"a": "x\x00y\x1b[31m\\u0000\n\u202e"})
    assert shown == '{"a": "x⟨U+0000⟩y⟨U+001B⟩[31m\\\\u0000\\n\u202e"}'
    assert "⟨U+202E⟩" in inert(shown)
