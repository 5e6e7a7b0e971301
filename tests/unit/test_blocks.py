"""Block Kit messages: harmless text, buttons only while an approval is open."""

from __future__ import annotations

from datetime import UTC, datetime

from agent_core.decisions import apply_decision
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
from bot.blocks import approval_blocks, mention, safe, settled_blocks


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
    from bot.terminal import approval_panel

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
    assert "… [cut: " in text and "more characters]" in text and "x" * 5000 not in text
