"""Who may see and do what through Slack, attacked through the real `airlock serve`.

Every request is signed as Slack signs it and built from Slack's recorded payloads; the
bot runs as its own process on SQLite with default settings (an admin and an approver),
against the Slack and Anthropic stand-ins.
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from agent_core.models import (
    Approval,
    ApprovalStatus,
    HaltState,
    RiskLevel,
    Run,
    RunStatus,
    ToolCallSubject,
)
from agent_core.testing.anthropic_server import (
    RecordedRequest,
    Reply,
    text_reply,
    tool_use_reply,
)
from agent_core.testing.slack_server import RESPONSE_URL, SlackCall
from tests.attacks.harness import (
    ADMIN,
    APPROVAL_CHANNEL,
    APPROVER,
    CHANNEL,
    OUTSIDER,
    REQUESTER,
    SUBMISSION,
    Served,
    has_buttons,
    parked_plan,
    says,
    serve_bot,
)
from tests.support import eventually

DM_USER, DM_CHANNEL = "W0DMUSER", "D0DMUSER"
SHOWN = ("chat.postMessage", "chat.update", "chat.postEphemeral", "views.publish", "views.open")


def audience(call: SlackCall) -> str:
    """Who sees what ``call`` shows: a channel id, or a user id for private views."""
    if call.method == "chat.postEphemeral":
        return f"user:{call.args['user']}"
    if call.method == "views.publish":
        return f"user:{call.args['user_id']}"
    if call.method == "views.open":
        return "modal"
    channel = str(call.args.get("channel"))
    return f"user:{channel}" if channel[:1] in "UW" else channel  # a DM to that person


def shown_outside(bot: Served, text: str, *, allowed: set[str]) -> list[tuple[str, str]]:
    """(method, audience) of every Slack call showing ``text`` to someone not ``allowed``."""
    return [
        (c.method, audience(c))
        for c in bot.slack.calls
        if c.method in SHOWN and text in json.dumps(c.args) and audience(c) not in allowed
    ]


async def open_home(bot: Served, user: str) -> str:
    """``user`` opens App Home; the published view, as text."""
    body = copy.deepcopy(bot.message_body("", user=user, channel=f"D{user[1:]}"))
    body["event"] = {"type": "app_home_opened", "user": user, "channel": f"D{user[1:]}",
                     "tab": "home", "event_ts": body["event"]["ts"]}  # fmt: skip
    since = len(bot.slack.calls)
    assert await bot.send(bot.signer.event(body)) == 200
    view = await bot.slack.wait_for_call(
        "views.publish", lambda c: c.args["user_id"] == user, since=since, timeout=30
    )
    return json.dumps(view.args["view"])


async def card_in(bot: Served, channel: str) -> SlackCall:
    """The first approval card posted in ``channel``."""
    return await bot.slack.wait_for_call(
        "chat.postMessage", lambda c: has_buttons(c) and c.args["channel"] == channel, timeout=30
    )


async def test_status_home_and_approval_copies_show_each_person_only_what_is_theirs(
    tmp_path: Path,
) -> None:
    async with serve_bot(tmp_path, AIRLOCK_APPROVAL_CHANNEL=APPROVAL_CHANNEL) as bot:
        bot.anthropic.enqueue(parked_plan("look at CHANNELSTEP disks"))
        thread = await bot.mention("CHANNELGOAL check the disks")
        await card_in(bot, CHANNEL)
        bot.anthropic.enqueue(parked_plan("DMSTEP rotate it"))
        await bot.message("DMSECRET rotate the payroll key", user=DM_USER, channel=DM_CHANNEL,
                          channel_type="im")  # fmt: skip
        await card_in(bot, DM_CHANNEL)
        runs = {r.requester: r for r in await bot.store.list_runs()}
        mine, theirs = runs[REQUESTER], runs[DM_USER]

        outsider = await bot.agent("status", OUTSIDER)
        assert "0 active run(s)" in outsider
        for seen in (mine.id, theirs.id, "CHANNELGOAL", "DMSECRET"):
            assert seen not in outsider
        own = await bot.agent("status", REQUESTER)
        assert mine.id in own and "CHANNELGOAL" in own
        assert theirs.id not in own and "DMSECRET" not in own
        admin = await bot.agent("status", ADMIN)
        assert mine.id in admin and theirs.id in admin and "CHANNELGOAL" in admin
        assert "DMSECRET" not in admin and "private conversation" in admin
        assert "DMSECRET" in await bot.agent("status", DM_USER, channel=DM_CHANNEL)

        admin_home = await open_home(bot, ADMIN)
        assert theirs.id in admin_home and "DMSECRET" not in admin_home
        assert "CHANNELGOAL" in admin_home
        approver_home = await open_home(bot, APPROVER)
        # The approver decides the DM's plan where only they see it: their own Home.
        assert "DMSTEP" in approver_home and "DMSECRET" not in approver_home

        copies = [c for c in bot.slack.calls_to("chat.postMessage")
                  if c.args["channel"] == APPROVAL_CHANNEL]  # fmt: skip
        assert any("CHANNELSTEP" in json.dumps(c.args) for c in copies)
        assert any(theirs.id in json.dumps(c.args) for c in copies)  # approvers are told
        # Who may decide sees the plan (in their own Home): approvers and admins, no one else.
        in_dm = {DM_CHANNEL, f"user:{DM_USER}"}
        assert (
            shown_outside(bot, "DMSTEP", allowed=in_dm | {f"user:{APPROVER}", f"user:{ADMIN}"})
            == []
        )
        assert shown_outside(bot, "DMSECRET", allowed=in_dm) == []
        # The approvers asked in their DMs read what a channel's run is for.
        in_channel = {CHANNEL, APPROVAL_CHANNEL, f"user:{REQUESTER}", f"user:{ADMIN}",
                      f"user:{APPROVER}"}  # fmt: skip
        assert shown_outside(bot, "CHANNELGOAL", allowed=in_channel) == []
        assert thread


async def pending(
    bot: Served, *, requester: str = REQUESTER, channel: str = CHANNEL, live: bool = False
) -> Approval:
    """A HIGH tool call waiting for a decision, asked for by ``requester``; with ``live`` its
    run exists too, parked (a decided approval of a run that does not exist wakes nothing)."""
    run_id = "run_0000000000ff"
    if live:
        run = await bot.store.create_run(Run(goal="deploy", requester=requester, channel=channel,
                                             thread_ts="1595926230.009600",
                                             status=RunStatus.AWAITING_APPROVAL))  # fmt: skip
        run_id = run.id
    subject = ToolCallSubject(subtask_id="s1", tool="write_file",
                              arguments={"path": "x.txt", "content": "x"})  # fmt: skip
    return await bot.store.create_approval(
        Approval(run_id=run_id, subject=subject, risk=RiskLevel.HIGH, requester=requester)
    )


def public_posts(bot: Served, since: int) -> list[SlackCall]:
    return [c for c in bot.slack.calls[since:] if c.method == "chat.postMessage"]


async def test_typed_decisions_are_answered_privately_and_cannot_spam_a_thread(
    bot: Served,
) -> None:
    approval = await pending(bot)
    since = len(bot.slack.calls)
    for verb in ("approve", "reject", "approve", "reject", "approve"):
        await bot.message(f"{verb} {approval.id} because", user=OUTSIDER, channel=CHANNEL,
                          thread_ts="1595926230.009600")  # fmt: skip
    await eventually(lambda: _count(bot, "chat.postEphemeral", since, 5), timeout=30)
    assert public_posts(bot, since) == []
    assert {c.args["user"] for c in bot.slack.calls[since:]
            if c.method == "chat.postEphemeral"} == {OUTSIDER}  # fmt: skip
    assert (await bot.store.get_approval(approval.id)).status is ApprovalStatus.PENDING

    await bot.message(f"approve {approval.id}", user=APPROVER, channel=CHANNEL,
                      thread_ts="1595926230.009600")  # fmt: skip

    async def approved() -> bool:
        return (await bot.store.get_approval(approval.id)).status is ApprovalStatus.APPROVED

    await eventually(approved, timeout=30)
    late = len(bot.slack.calls)
    await bot.message(f"reject {approval.id} too late", user=APPROVER, channel=CHANNEL,
                      thread_ts="1595926230.009600")  # fmt: skip
    told = await bot.slack.wait_for_call("chat.postEphemeral", since=late, timeout=30)
    assert told.args["user"] == APPROVER and "Already approved" in told.args["text"]
    assert public_posts(bot, since) == []


async def _count(bot: Served, method: str, since: int, n: int) -> bool:
    return sum(1 for c in bot.slack.calls[since:] if c.method == method) >= n


async def test_non_approvers_are_refused_in_every_way_and_told_privately(bot: Served) -> None:
    approval = await pending(bot)
    before = await bot.snapshot()
    thread = {"channel": CHANNEL, "thread_ts": "1595926230.009600"}
    since = len(bot.slack.calls)
    for action in ("airlock_approve", "airlock_reject", "airlock_approve_for_run",
                   "airlock_reject_reason", "airlock_edit"):  # fmt: skip
        assert await bot.click(action, approval.id, user=OUTSIDER) == 200
    for view, value in (("airlock_reject_view", "no"), ("airlock_edit_view", '{"path": "y"}')):
        body = copy.deepcopy(SUBMISSION)
        body["user"]["id"] = OUTSIDER
        meta = json.dumps({"approval": approval.id, "channel": CHANNEL, "thread": None})
        body["view"].update(callback_id=view, private_metadata=meta, state={"values": {
            "field": {"field": {"type": "plain_text_input", "value": value}}}})  # fmt: skip
        assert await bot.send(bot.signer.interaction(body)) == 200
    await bot.message(f"approve {approval.id}", user=OUTSIDER, **thread)
    await bot.message(f"reject {approval.id} no", user=OUTSIDER, **thread)
    assert "Not accepted" in await bot.agent(f"approve {approval.id}", OUTSIDER)
    assert "Not accepted" in await bot.agent(f"reject {approval.id} nope", OUTSIDER)

    await eventually(lambda: _refusals(bot, approval.run_id, 9), timeout=30)
    await _quiet(bot)
    after = await bot.snapshot()
    assert after["approvals"] == before["approvals"] and after["runs"] == before["runs"]
    # The two modals open (what they show is on the card already); submitting them is refused.
    assert len(bot.slack.calls_to("views.open")) == 2
    assert public_posts(bot, since) == []
    told = {c.args.get("user") for c in shown(bot, since) if c.method.startswith("chat.")}
    assert told == {OUTSIDER}  # each refusal went to the clicker alone


async def _refusals(bot: Served, run_id: str, n: int) -> bool:
    kinds = [e.kind for e in await bot.store.list_audit(run_id)]
    return kinds.count("decision_refused") >= n


async def test_the_requester_may_not_approve_their_own_risky_call(bot: Served) -> None:
    approval = await pending(bot, requester=APPROVER)  # an approver asking for their own run
    assert await bot.click("airlock_approve", approval.id, user=APPROVER) == 200
    told = await bot.slack.wait_for_call("chat.postEphemeral", timeout=30)
    assert "requesters may not approve" in told.args["text"]
    assert (await bot.store.get_approval(approval.id)).status is ApprovalStatus.PENDING


async def test_a_replayed_click_decides_nothing_and_says_nothing(bot: Served) -> None:
    approval = await pending(bot)
    click = bot.signer.interaction(bot.click_body("airlock_approve", approval.id, user=APPROVER))
    assert await bot.send(click) == 200

    async def approved() -> bool:
        return (await bot.store.get_approval(approval.id)).status is ApprovalStatus.APPROVED

    await eventually(approved, timeout=30, load_scaled=True)
    since = len(bot.slack.calls)
    for _ in range(3):
        assert await bot.send(click) == 200  # the same signed request, delivered again
    await _quiet(bot)
    assert shown(bot, since) == []
    assert len((await bot.store.get_approval(approval.id)).decisions) == 1


MARKER = "W0MARKER"


async def _quiet(bot: Served) -> None:
    """Let what earlier requests started finish: a marker command is answered after them."""
    await bot.agent("help", MARKER)


def shown(bot: Served, since: int) -> list[SlackCall]:
    """Slack calls since ``since`` that show something, the marker's answers left out."""
    return [c for c in bot.slack.calls[since:]
            if c.method in SHOWN and c.args.get("user") != MARKER]  # fmt: skip


async def test_a_replayed_slash_command_posts_nothing_twice(bot: Served) -> None:
    bot.anthropic.enqueue(parked_plan("look"))
    goal = bot.signer.command(bot.command_form("check the queue", user=REQUESTER))
    halt = bot.signer.command(bot.command_form("halt freeze", user=ADMIN))
    for _ in range(3):
        assert await bot.send(goal) == 200
    await card_in(bot, CHANNEL)
    for _ in range(3):
        assert await bot.send(halt) == 200
    await bot.slack.wait_for_call(RESPONSE_URL, says("Halted"), timeout=30)
    await _quiet(bot)
    asked = [c for c in bot.slack.calls_to("chat.postMessage") if "asked:" in c.args["text"]]
    assert len(asked) == 1 and len(await bot.store.list_runs()) == 1
    assert len([c for c in bot.slack.calls_to(RESPONSE_URL) if "Halted" in
                c.args["text"]]) == 1  # fmt: skip
    halts = [e for e in await bot.store.list_audit("_global") if e.kind == "halt"]
    assert len(halts) == 1


async def test_four_deliveries_of_one_event_start_one_run(bot: Served) -> None:
    bot.anthropic.enqueue(parked_plan("look"))
    body = copy.deepcopy(bot.message_body("x", user=REQUESTER, channel=CHANNEL))
    mention = {**body, "event": {**body["event"], "type": "app_mention",
                                 "text": "<@W111> check the disks"}}  # fmt: skip
    assert await bot.send(bot.signer.event(mention)) == 200
    for attempt in (1, 2, 3):
        retry = bot.signer.event(mention, retry_num=attempt, retry_reason="http_timeout")
        assert await bot.send(retry) == 200
    await card_in(bot, CHANNEL)
    await _quiet(bot)
    assert len(await bot.store.list_runs()) == 1
    assert len([c for c in bot.slack.calls_to("chat.postMessage")
                if "planning" in c.args["text"]]) == 1  # fmt: skip


async def test_fifty_mentions_in_two_seconds_are_all_acknowledged(bot: Served) -> None:
    bot.anthropic.set_default(lambda request: parked_plan("look"))
    started = asyncio.get_running_loop().time()
    statuses = await asyncio.gather(*(bot.mention(f"goal {i}") for i in range(50)),
                                    return_exceptions=True)  # fmt: skip
    assert all(s is not None and not isinstance(s, BaseException) for s in statuses), statuses
    assert asyncio.get_running_loop().time() - started < 10  # every one acked, none dropped


# --- ask_human: only the run's requester answers -------------------------------------------


def asks_then_echoes(request: RecordedRequest) -> Reply:
    """Plans one LOW step with ask_human, asks "Which colour?", then says what it was told."""
    if ((request.body or {}).get("tool_choice") or {}).get("name") == "submit_plan":
        step = {"id": "s1", "description": "ask", "required_tools": ["ask_human"],
                "depends_on": [], "risk_level": "low"}  # fmt: skip
        return tool_use_reply("submit_plan", {"subtasks": [step]})
    results = request.tool_results()
    if results:
        return text_reply(f"painted it {json.dumps(results[0].get('content'))}")
    return tool_use_reply("ask_human", {"question": "Which colour?"})


async def _asked(bot: Served) -> str:
    bot.anthropic.set_default(asks_then_echoes)
    thread = await bot.mention("paint the shed")
    await bot.slack.wait_for_call("chat.postMessage", says(":question:"), timeout=30)
    return thread


async def test_only_the_requester_answers_a_question_of_their_run(bot: Served) -> None:
    thread = await _asked(bot)
    where: dict[str, Any] = {"channel": CHANNEL, "thread_ts": thread}
    since = len(bot.slack.calls)
    for text in ("red", "red, really", "blue"):
        await bot.message(text, user=OUTSIDER, **where)
    await bot.message("green", user=ADMIN, **where)
    told = await bot.slack.wait_for_call("chat.postEphemeral", since=since, timeout=30)
    assert told.args["user"] == OUTSIDER and "only" in told.args["text"].lower()
    await _quiet(bot)
    private = [c.args["user"] for c in bot.slack.calls[since:] if c.method == "chat.postEphemeral"]
    assert private.count(OUTSIDER) == 1  # told once, not each time
    [run] = await bot.store.list_runs()
    assert run.status is RunStatus.RUNNING  # still waiting for its requester

    await bot.message("teal, please", user=REQUESTER, **where)
    done = await bot.slack.wait_for_answer("**completed**", timeout=30)
    assert "teal, please" in done
    for other in ("red", "blue", "green"):
        assert other not in done


async def test_approvers_may_answer_when_the_setting_says_so(tmp_path: Path) -> None:
    async with serve_bot(tmp_path, AIRLOCK_APPROVERS_ANSWER_QUESTIONS="true") as bot:
        thread = await _asked(bot)
        await bot.message("mauve", user=OUTSIDER, channel=CHANNEL, thread_ts=thread)
        await bot.message("ochre", user=APPROVER, channel=CHANNEL, thread_ts=thread)
        done = await bot.slack.wait_for_answer("**completed**", timeout=30)
        assert "ochre" in done and "mauve" not in done


# --- admin verbs, each tried by someone who is not an admin --------------------------------

VERBS = {
    "kill": ("kill {run} now", "Not allowed"),
    "kill all": ("kill all", "Not allowed"),
    "halt": ("halt", "Not allowed"),
    "resume": ("resume", "Not allowed"),
    "retry": ("retry {failed}", "Not allowed"),
    "audit": ("audit {run}", "Not allowed"),
    "approve": ("approve {approval}", "Not accepted"),
    "reject": ("reject {approval} no", "Not accepted"),
    "status": ("status", "0 active run(s) of yours"),
}


@pytest.mark.parametrize("verb", [*VERBS, "Home kill button"])
async def test_an_admin_verb_refuses_a_non_admin_and_changes_nothing(
    bot: Served, verb: str
) -> None:
    approval = await pending(bot, live=True)
    failed = await bot.store.create_run(Run(goal="old", requester=REQUESTER, channel=CHANNEL,
                                            status=RunStatus.FAILED))  # fmt: skip
    await bot.store.set_halt(HaltState(halted=verb == "resume", by=ADMIN, reason="freeze"))
    before = await bot.snapshot()
    names = {"run": approval.run_id, "failed": failed.id, "approval": approval.id}
    if verb == "Home kill button":
        kill = bot.click_body("airlock_kill", approval.run_id, user=OUTSIDER)
        del kill["channel"]
        kill["container"] = {"type": "view", "view_id": "V0HOME"}
        assert await bot.send(bot.signer.interaction(kill)) == 200
        await bot.slack.wait_for_call("views.publish", timeout=30)
    else:
        text, refusal = VERBS[verb]
        reply = await bot.agent(text.format(**names), OUTSIDER)
        assert refusal in reply, reply
        assert approval.run_id not in reply or verb in ("kill", "audit")
        assert failed.id not in reply or verb == "retry"
    after = await bot.snapshot()
    assert (after["runs"], after["approvals"], after["halt"]) == (
        before["runs"], before["approvals"], before["halt"])  # fmt: skip
    assert bot.slack.calls_to("chat.postMessage") == []  # nothing said in public


async def test_a_question_asked_by_a_worker_takes_only_the_requesters_reply(
    tmp_path: Path,
) -> None:
    """The reply reaches a front end, the question waits in a worker: the relay checks too."""
    from tests.faults.cluster import Cluster
    from tests.faults.test_scale_out import asks_first

    async with Cluster(tmp_path=tmp_path, front_ends=1, workers=1) as cluster:
        cluster.anthropic.set_default(asks_first)
        goal = await cluster.post_goal(0)
        await cluster.slack.wait_for_call(
            "chat.postMessage", lambda c: ":question:" in c.args.get("text", ""), timeout=30
        )
        since = len(cluster.slack.calls)
        for text in ("crimson", "scarlet"):
            assert await cluster.reply_in_thread(0, goal.thread_ts, text, user=OUTSIDER) == 200
        told = await cluster.slack.wait_for_call("chat.postEphemeral", since=since, timeout=30)
        assert told.args["user"] == OUTSIDER
        assert await cluster.reply_in_thread(0, goal.thread_ts, "teal, please") == 200
        (done,) = await cluster.wait_all_final(1, timeout=30)
        assert done.status is RunStatus.COMPLETED, done.error
        output = done.results["s1"].output
        assert "teal, please" in output and "crimson" not in output and "scarlet" not in output
        private = [c for c in cluster.slack.calls[since:] if c.method == "chat.postEphemeral"]
        assert len(private) == 1  # told once
