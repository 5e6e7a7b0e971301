"""What a card says a call is for, how a run's end names its decider, and counts of things."""

from __future__ import annotations

import pytest

from agent_core.models import RunStatus
from bot.slack.card_context import CardContext, context_text, thread_link
from bot.slack.progress import finished_text
from bot.slack.render import plural

GOOD = "https://acme.slack.com/archives/C0123ABCD/p1595926230009600"


@pytest.mark.parametrize("link", [
    GOOD,
    f"{GOOD}?thread_ts=1595926230.009600&cid=C0123ABCD",
])  # fmt: skip
def test_slack_permalinks_are_shown(link: str) -> None:
    assert thread_link(link) == link


@pytest.mark.parametrize("link", [
    None, 42, "", "http://acme.slack.com/archives/C0123ABCD/p1595926230009600",
    "https://acme.slack.com.evil.example/archives/C0123ABCD/p1",
    f"{GOOD}|click here", f"{GOOD}> <!channel", f"{GOOD}?next=https://evil.example",
    "https://evil.example/archives/C0123ABCD/p1595926230009600",
])  # fmt: skip
def test_anything_else_is_never_a_link(link: object) -> None:
    assert thread_link(link) is None


def test_the_context_is_inert_and_the_requester_a_mention_built_from_an_id() -> None:
    text = context_text(CardContext(goal="<!here> go", step_id="s`1", step="<@U0EVIL> x",
                                    requester="W111", thread=GOOD))  # fmt: skip
    assert text == ("*For step* `sˋ1`: &lt;@U0EVIL&gt; x\n*Goal:* &lt;!here&gt; go\n"
                    f"*Asked by* <@W111> · <{GOOD}|Open the run's thread>")  # fmt: skip
    hidden = context_text(CardContext(requester="not an id <@U1>"))
    assert "<@U1>" not in hidden and "_(goal asked in a private conversation)_" in hidden


def test_a_long_goal_is_cut_visibly() -> None:
    text = context_text(CardContext(goal="x" * 5000))
    assert "more characters" in text and len(text) < 700


def test_only_the_decider_the_gate_names_becomes_a_mention() -> None:
    ended = finished_text(RunStatus.REJECTED, "plan rejected by W111: ask <@U0EVIL> by W999")
    assert ended == "plan rejected by <@W111>: ask &lt;@U0EVIL&gt; by W999"
    assert finished_text(RunStatus.COMPLETED, "plan rejected by W111") == "plan rejected by W111"
    assert finished_text(RunStatus.REJECTED, "the plan rejected by W111") == (
        "the plan rejected by W111"
    )


def test_plurals() -> None:
    assert [plural(n, "step") for n in (0, 1, 2, 1000)] == [
        "0 steps", "1 step", "2 steps", "1,000 steps"]  # fmt: skip
    assert plural(1, "more approval") == "1 more approval"
