"""Block Kit messages: harmless text, buttons only while an approval is open."""

from __future__ import annotations

from datetime import UTC, datetime

from agent_core.approvals.rule import apply_decision
from agent_core.models import (
    Approval,
    ApprovalStatus,
    Decision,
    DecisionKind,
    Plan,
    PlanSubject,
    RiskLevel,
    Subtask,
    ToolCallSubject,
)
from bot.slack.blocks import approval_blocks, mention, safe, settled_blocks


def call(**arguments: object) -> Approval:
    subject = ToolCallSubject(subtask_id="s1", tool="run_command", arguments=arguments,
                              preview="rm -rf /tmp/cache")  # fmt: skip
    return Approval(run_id="run_a", subject=subject, risk=RiskLevel.CRITICAL, requester="U0REQ",
                    required_approvals=2)  # fmt: skip


def test_model_text_cannot_ping_link_or_leak() -> None:
    text = "done <!channel> <@U123> <https://evil.example|click> & xoxb-1234-5678-secret"
    cleaned = safe(text)
    assert "<" not in cleaned and ">" not in cleaned
    assert "&lt;!channel&gt;" in cleaned and "&amp;" in cleaned
    assert "secret" not in cleaned


def test_an_open_request_has_buttons_and_says_what_it_would_do() -> None:
    blocks = [b.to_dict() for b in approval_blocks(call(command="echo <!here>"))]
    actions = next(b for b in blocks if b["type"] == "actions")
    assert [e["action_id"] for e in actions["elements"]] == [
        "airlock_approve", "airlock_reject", "airlock_reject_reason", "airlock_edit",
    ]  # fmt: skip
    reject = actions["elements"][1]
    assert reject["style"] == "danger" and reject["confirm"]["confirm"]["text"] == "Reject"
    text = str(blocks)
    assert "<!here>" not in text and "&lt;!here&gt;" in text
    assert "rm -rf /tmp/cache" in text and "needs 2 of: approvers, or an admin" in text
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in blocks)


def test_a_plan_cannot_be_edited_and_long_arguments_are_cut() -> None:
    plan = Plan(subtasks=[Subtask(id="s1", description="look")])
    approval = Approval(run_id="run_a", subject=PlanSubject(plan=plan), risk=RiskLevel.HIGH)
    actions = next(b.to_dict() for b in approval_blocks(approval) if b.type == "actions")
    assert "airlock_edit" not in str(actions)
    long = [b.to_dict() for b in approval_blocks(call(blob="x" * 10_000))]
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in long)


def test_a_settled_request_has_no_buttons_and_says_who_and_when() -> None:
    decided = call(command="ls").model_copy(update={
        "status": ApprovalStatus.REJECTED, "decided_by": "U0BOB",
        "decided_at": datetime(2026, 11, 26, 18, 0, tzinfo=UTC),
        "decisions": [Decision(kind=DecisionKind.REJECT, by="U0BOB", reason="use <!everyone>")],
    })  # fmt: skip
    blocks = [b.to_dict() for b in settled_blocks(decided)]
    assert all(b["type"] != "actions" for b in blocks)
    assert "rejected by <@U0BOB> <!date^1795716000^" in str(blocks)
    assert "|2026-11-26 18:00 UTC>: use &lt;!everyone&gt;" in str(blocks)


def test_mentions() -> None:
    assert (mention("U0A"), mention("S0TEAM"), mention("local:alice")) == (
        "<@U0A>", "<!subteam^S0TEAM>", "`local:alice`")  # fmt: skip


def test_approve_for_this_run_is_offered_below_critical_only() -> None:
    high = call(command="ls").model_copy(
        update={"risk": RiskLevel.HIGH, "required_approvals": 1, "grantable": True}
    )
    ids = [e["action_id"] for b in approval_blocks(high) if b.type == "actions"
           for e in b.to_dict()["elements"]]  # fmt: skip
    assert ids[-1] == "airlock_approve_for_run"
    critical = call(command="ls").model_copy(update={"grantable": True})
    assert "airlock_approve_for_run" not in str([b.to_dict() for b in approval_blocks(critical)])


def test_approve_for_this_run_is_offered_only_where_the_tool_allows_it() -> None:
    high = call(command="ls").model_copy(update={"risk": RiskLevel.HIGH, "required_approvals": 1})
    assert not high.grantable
    assert "airlock_approve_for_run" not in str([b.to_dict() for b in approval_blocks(high)])


def test_precedent_is_shown_on_the_card_and_in_the_terminal() -> None:
    from datetime import timedelta

    from rich.console import Console

    from agent_core.models import Precedent
    from bot.cli.terminal import approval_panel

    approval = call(command="kubectl rollout restart deploy/web --context prod")
    approval.precedents = [
        Precedent(outcome="rejected", tool="run_command", by="U0ANA",
                  call='run_command {"command":"kubectl ... --context prod"}',
                  at=approval.requested_at - timedelta(days=3), reason="wrong <!here> env"),
        Precedent(outcome="approved", tool="run_command", by=None, call="run_command {}",
                  at=approval.requested_at - timedelta(minutes=5)),
    ]  # fmt: skip
    text = str([b.to_dict() for b in approval_blocks(approval)])
    assert "Similar decisions here before" in text
    assert "rejected by <@U0ANA> 3 days ago: _wrong &lt;!here&gt; env_" in text
    assert "approved by nobody 5 minutes ago" in text
    console = Console(record=True, width=200)
    console.print(approval_panel(approval))
    shown = console.export_text()
    assert "Similar decisions before" in shown and "rejected by U0ANA 3 days ago" in shown
    assert "wrong <!here> env" in shown


def test_a_settled_edit_says_who_edited_and_what_it_was() -> None:
    asked = call(command="echo harmless <!channel>").model_copy(
        update={"risk": RiskLevel.HIGH, "required_approvals": 1}
    )
    edit = Decision(kind=DecisionKind.EDIT, by="U0ALICE", edited_risk=RiskLevel.CRITICAL,
                    edited_arguments={"command": "rm -rf /srv"})  # fmt: skip
    superseded, _ = apply_decision(asked, edit)
    shown = str([b.to_dict() for b in settled_blocks(superseded)])
    assert "Superseded: high risk" in shown and "edited by <@U0ALICE>" in shown
    assert 'was: `{"command": "echo harmless &lt;!channel&gt;"}`' in shown
    assert "the edited call is critical risk and is asked again as a new request" in shown
    assert "rm -rf /srv" in shown  # the body shows the call as edited

    long = call(command="x" * 5000).model_copy(update={"risk": RiskLevel.HIGH})
    edited, _ = apply_decision(long, edit.model_copy(update={"edited_risk": RiskLevel.HIGH}))
    text = str([b.to_dict() for b in settled_blocks(edited)])
    assert "more characters" in text and "x" * 5000 not in text


# -- no card can be unbuildable, none lets markup through ------------------------------------

from typing import Any  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from agent_core.models import Precedent  # noqa: E402
from agent_core.testing.slack_limits import message_error, view_error  # noqa: E402
from bot.slack.blocks import (  # noqa: E402
    approval_text,
    edit_modal,
    fallback_blocks,
    settled_fallback_blocks,
)
from bot.slack.full_call import full_view  # noqa: E402
from bot.slack.render import hidden  # noqa: E402
from tests.unit.test_render import MARKUP, hostile  # noqa: E402

long_hostile = st.tuples(hostile, st.sampled_from([1, 1, 3, 40, 400])).map(lambda t: t[0] * t[1])
risks = st.sampled_from(list(RiskLevel))


def texts(value: Any) -> list[str]:
    """The strings of a block's JSON, but the Edit box's: it holds exact JSON, not mrkdwn."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() if k != "initial_value" for s in (k, *texts(v))]
    if isinstance(value, list):
        return [s for v in value for s in texts(v)]
    return []


def assert_accepted(text: str, blocks: list[Any]) -> None:
    """slack_sdk's models accept every block and Slack (the stand-in's limits) the message."""
    dicts = [b.to_dict() for b in blocks]
    assert message_error({"text": text, "blocks": dicts}) is None, message_error(
        {"text": text, "blocks": dicts}
    )
    assert_inert(dicts)


def assert_inert(value: Any) -> None:
    for string in texts(value):
        assert not any(m in string for m in MARKUP), string
        assert not any(hidden(c) for c in string), string
        assert string.count("```") % 2 == 0, string


def assert_view(view: Any) -> None:
    shown = view.to_dict()
    assert view_error(shown) is None, view_error(shown)
    assert_inert(shown.get("blocks"))


@st.composite
def approvals(draw: st.DrawFn) -> Approval:
    if draw(st.booleans()):
        steps = [Subtask(id=draw(hostile.filter(lambda t: 0 < len(t) <= 64)) or f"s{i}",
                         description=draw(long_hostile) or "x", risk_level=draw(risks))
                 for i in range(draw(st.integers(1, 70)))]  # fmt: skip
        subject: Any = PlanSubject(plan=Plan(subtasks=steps))
    else:
        arguments = draw(st.dictionaries(hostile, long_hostile, max_size=4))
        subject = ToolCallSubject(subtask_id=draw(hostile), tool=draw(long_hostile) or "t",
                                  arguments=arguments, preview=draw(st.none() | long_hostile),
                                  possibly_partial=draw(st.booleans()))  # fmt: skip
    at = datetime(2026, 1, 1, tzinfo=UTC)
    precedents = [Precedent(outcome=draw(hostile), tool="t", call=draw(long_hostile),
                            by=draw(st.none() | hostile), at=at, reason=draw(long_hostile))
                  for _ in range(draw(st.integers(0, 3)))]  # fmt: skip
    return Approval(run_id=draw(hostile) or "run", subject=subject, risk=draw(risks),
                    requester=draw(hostile), requested_at=at, deadline=at,
                    approvers=draw(st.none() | st.lists(hostile, max_size=40)),
                    required_approvals=draw(st.integers(1, 3)), precedents=precedents)  # fmt: skip


@settings(max_examples=150, deadline=None, database=None)
@given(approval=approvals(), reason=long_hostile, status=st.sampled_from(list(ApprovalStatus)))
def test_every_card_and_view_from_hostile_text_is_one_slack_accepts(
    approval: Approval, reason: str, status: ApprovalStatus
) -> None:
    text = approval_text(approval)
    assert_accepted(text, approval_blocks(approval))
    assert_accepted(text, fallback_blocks(approval, reason))
    settled = approval.model_copy(update={
        "status": status, "decided_by": reason or None, "decided_at": approval.requested_at,
        "decisions": [Decision(kind=DecisionKind.REJECT, by="U0BOB", reason=reason or None)],
    })  # fmt: skip
    assert_accepted(text, settled_blocks(settled))
    assert_accepted(text, settled_fallback_blocks(settled))
    assert_view(edit_modal(approval, '{"approval": "x"}'))
    first = full_view(approval, 0)
    pages = int(str(first.blocks[-1 if first.blocks[-1].type == "context" else -2].to_dict())
                .split(" of ")[1].split("'")[0])  # fmt: skip
    for page in range(pages):
        assert_view(full_view(approval, page))


def test_a_sixty_step_plan_of_long_steps_fits_one_card_and_all_of_it_the_modal() -> None:
    steps = [Subtask(id=f"s{i}", description=f"step {i} " + "x" * 170 + f" END{i:02d}",
                     risk_level=RiskLevel.HIGH) for i in range(60)]  # fmt: skip
    approval = Approval(run_id="run_a", subject=PlanSubject(plan=Plan(subtasks=steps)),
                        risk=RiskLevel.HIGH)  # fmt: skip
    blocks = approval_blocks(approval)
    assert_accepted(approval_text(approval), blocks)
    assert "more steps are not shown here" in str([b.to_dict() for b in blocks])
    whole = "".join(str(full_view(approval, p).to_dict()) for p in range(3))
    assert all(f"END{i:02d}" in whole for i in range(60))


def test_a_64_character_tool_fits_its_button_and_the_confirm_names_it() -> None:
    tool = "deployments_and_releases_prod__deploy_the_web_tier_to_pro_1a2b3c4d"
    high = call(command="ls").model_copy(update={
        "risk": RiskLevel.HIGH, "grantable": True,
        "subject": ToolCallSubject(subtask_id="s1", tool=tool,
                                                            arguments={"a": 1})})  # fmt: skip
    actions = next(b.to_dict() for b in approval_blocks(high) if b.type == "actions")
    grant = actions["elements"][-1]
    assert len(grant["text"]["text"]) <= 75 and grant["text"]["text"].endswith("… for this run")
    assert tool in grant["confirm"]["text"]["text"]
    critical = next(b.to_dict() for b in approval_blocks(call(command="rm -rf /"))
                    if b.type == "actions")  # fmt: skip
    assert "run_command" in critical["elements"][0]["confirm"]["text"]["text"]


def test_200_kb_of_arguments_show_head_tail_and_how_much_was_cut() -> None:
    blob = "".join(f"line {i:06d}\n" for i in range(20_000)) + "THE-END"
    approval = call(content=blob)
    blocks = approval_blocks(approval)
    assert_accepted(approval_text(approval), blocks)
    shown = str([b.to_dict() for b in blocks])
    assert "line 000000" in shown and "THE-END" in shown and "more characters" in shown
    assert "View full call" in shown
    assert "too large to edit" in str(edit_modal(approval, "{}").to_dict())
