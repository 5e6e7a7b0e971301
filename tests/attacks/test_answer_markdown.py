"""Attacks on answers shown as standard Markdown (Slack's ``markdown`` block).

A model's answer keeps its headings, bold, lists, tables and code, but nothing in it may act:
no ping, no link that hides where it goes, no hidden character, no secret, and a cut that
says what it cut.
"""

from __future__ import annotations

import re

import pytest

from agent_core.testing.secret_samples import SAMPLES, SecretSample
from bot.slack.fit import ANSWER_TEXT, cut_markdown, size
from bot.slack.render import inert_markdown

PINGS = ["<!channel>", "<!here>", "<!everyone>", "<@U012AB3CD>", "<!subteam^S0123ABC>",
         "<#C0123ABC>", "<https://evil.example|https://good.example>"]  # fmt: skip


@pytest.mark.parametrize("ping", PINGS)
@pytest.mark.parametrize("where", ["{}", "**{}**", "`{}`", "```\n{}\n```", "> {}", "| {} |"])
def test_no_ping_or_slack_link_forms_anywhere(ping: str, where: str) -> None:
    shown = inert_markdown(where.format(ping))
    assert "<" not in shown and ">" not in shown.replace("> ", "", 1)
    assert "&lt;" in shown


@pytest.mark.parametrize(
    ("attack", "real"),
    [
        ("[https://good.example](https://evil.example/x)", "https://evil.example/x"),
        ("[good.example/login](https://evil.example)", "https://evil.example"),
        ("[www.good.example](http://evil.example)", "http://evil.example"),
        (r"[https://good.example\]](https://evil.example)", "https://evil.example"),
        ("![https://good.example](https://evil.example/pixel)", "https://evil.example/pixel"),
        ('[https://good.example](https://evil.example "Good")', "https://evil.example"),
        ("[https://good.example][1]\n\n[1]: https://evil.example", "https://evil.example"),
    ],
)
def test_a_link_whose_text_is_another_address_shows_its_real_target(attack: str, real: str) -> None:
    shown = inert_markdown(attack)
    labels = [m.group(1) for m in re.finditer(r"\[([^\]]*)\]\(", shown)]
    assert labels, shown
    for label in labels:  # every link that is left is labelled with its own target
        assert label.replace("&amp;", "&") in (real, "https://evil.example"), shown
    assert real in shown


def test_honest_links_and_formatting_are_kept() -> None:
    answer = ("# Disk report\n\n**/var** is *92%* full; see [the runbook](https://wiki.example/"
              "disk) or [https://wiki.example/disk](https://wiki.example/disk).\n\n| mount | "
              "use |\n|---|---|\n| /var | 92% |\n\n- one\n- two\n\n> quoted\n")  # fmt: skip
    shown = inert_markdown(answer)
    assert "[the runbook](https://wiki.example/disk)" in shown
    assert "[https://wiki.example/disk](https://wiki.example/disk)" in shown
    assert shown.startswith("# Disk report\n\n**/var** is *92%* full")
    assert "| /var | 92% |" in shown and "\n> quoted" in shown


@pytest.mark.parametrize("scheme", ["javascript:alert(1)", "slack://open", "data:text/html,x",
                                    "file:///etc/passwd"])  # fmt: skip
def test_only_web_and_mail_links_are_links(scheme: str) -> None:
    shown = inert_markdown(f"[click me]({scheme})")
    assert "](" not in shown and "click me" in shown


def test_a_stray_bracket_pair_never_becomes_a_link_this_parser_missed() -> None:
    # Balanced brackets inside a label: CommonMark takes it for a link; the regex does not.
    shown = inert_markdown("[https://good.example [docs]](https://evil.example)")
    assert "](https://evil.example)" not in shown and "https://evil.example" in shown


@pytest.mark.parametrize("secret", SAMPLES, ids=lambda s: s.kind)
def test_hidden_characters_show_and_secrets_are_masked(secret: SecretSample) -> None:
    text, needle = secret.text, secret.needle
    shown = inert_markdown(f"ok\u202egnp.exe\x00 **{text}** [x](https://a.example/?k={text})")
    assert "⟨U+202E⟩" in shown and "⟨U+0000⟩" in shown
    assert needle not in shown
    assert "\u202e" not in shown and "\x00" not in shown


def test_code_stays_code_but_still_cannot_ping() -> None:
    shown = inert_markdown("```python\nif a < b and c > d: print('[x](y)')\n```\n`<!here>`")
    assert "[x](y)" in shown  # code shows as written ...
    assert "&lt; b" in shown and "`&lt;!here&gt;`" in shown  # ... and still cannot act


def test_a_long_answer_is_cut_visibly_and_a_code_block_closed() -> None:
    answer = inert_markdown("intro\n```\n" + "\n".join(f"row {i} <!here>" for i in range(3000)))
    cut, hidden = cut_markdown(answer)
    assert size(cut) <= ANSWER_TEXT and hidden > 0
    assert cut.endswith(f"_… {hidden:,} more characters_")
    assert cut.count("```") % 2 == 0  # the marker is outside the code block
    assert cut_markdown("short") == ("short", 0)
