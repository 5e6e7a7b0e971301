"""A run's answer in its thread: standard Markdown, streamed where Slack allows, with feedback.

The answer is the model's text, made inert by :func:`bot.slack.render.inert_markdown` and shown
in a ``markdown`` block, so headings, bold, links and tables render instead of showing as
``**`` and ``[text](url)``. Where the workspace streams (``chat.startStream`` /
``appendStream`` / ``stopStream``) it appears as it is written; where a stream method fails
(an app or workspace without streaming, a thread it will not stream into, a stream Slack
closed early) the answer is posted and edited in place instead (``chat.postMessage`` then
``chat.update``), so it always arrives whole. What is longer than a message holds is cut
with a visible marker and the whole of it is attached as a file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import (
    Block,
    ContextActionsBlock,
    FeedbackButtonObject,
    FeedbackButtonsElement,
    MarkdownBlock,
)
from slack_sdk.web.async_client import AsyncWebClient

from agent_core import Run, RunStatus, redact
from bot.slack.fit import ANSWER_TEXT, MESSAGE_TEXT, cut, cut_markdown, split
from bot.slack.progress import finished_text
from bot.slack.render import inert_markdown, visible

__all__ = ["FEEDBACK", "AnswerPoster", "answer_markdown", "feedback_block", "markdown_blocks"]

logger = logging.getLogger(__name__)

FEEDBACK = "airlock_answer_feedback"
"""action_id of an answer's feedback buttons; a button's value: ``positive|negative <run id>``."""
_CHUNK = 600
"""Characters a stream call adds: a few calls for a usual answer, well inside Tier 4."""
_ATTACHED = "\n\n_The whole answer is attached below._"
_QUIET: dict[str, Any] = {"unfurl_links": False, "unfurl_media": False}


def answer_markdown(run: Run, status: RunStatus, result: str) -> tuple[str, int]:
    """The answer as Markdown for one message, and how many characters were cut from it."""
    mark = ":tada:" if status is RunStatus.COMPLETED else ":no_entry:"
    text = finished_text(status, result, inert_markdown)
    body, hidden = cut_markdown(text, ANSWER_TEXT - len(_ATTACHED) - 100)
    return f"{mark} **{status.value}**\n\n{body}" + (_ATTACHED if hidden else ""), hidden


def markdown_blocks(markdown: str) -> list[dict[str, Any]]:
    """``markdown`` (rendered, fitted) as the blocks of a message."""
    return [MarkdownBlock(text=markdown or " ").to_dict()]


def feedback_block(run_id: str) -> Block:
    """Thumbs up and down under an answer (a ``context_actions`` block)."""
    return ContextActionsBlock(
        elements=[
            FeedbackButtonsElement(
                action_id=FEEDBACK,
                positive_button=FeedbackButtonObject(
                    text="👍", value=f"positive {run_id}", accessibility_label="This helped"
                ),
                negative_button=FeedbackButtonObject(
                    text="👎", value=f"negative {run_id}", accessibility_label="This did not help"
                ),
            )
        ]
    )


@dataclass(kw_only=True)
class AnswerPoster:
    """Posts answers in run threads: streamed, or posted and edited, whole either way."""

    client: AsyncWebClient
    _team: str | None = None

    async def post(self, run: Run, status: RunStatus, result: str) -> None:
        """Show ``result`` as ``run``'s answer in its thread; attach it whole if it was cut."""
        if run.channel is None:
            return
        markdown, hidden = answer_markdown(run, status, result)
        pieces = split(markdown, _CHUNK)
        notice = cut(f"{status.value}: {finished_text(status, result)}", MESSAGE_TEXT)
        feedback = [feedback_block(run.id).to_dict()]
        try:
            streamed = await self._stream(run, pieces, feedback, notice)
        except SlackApiError as error:
            logger.info("answer not streamed; posting it", extra={"run_id": run.id,
                        "error": error.response.get("error")})  # fmt: skip
            streamed = None
        if streamed is None:
            try:
                await self._post_and_update(run, pieces, feedback, notice)
            except SlackApiError as error:  # the blocks refused: the plain text still says it
                logger.warning("answer refused; posting it plain", extra={"run_id": run.id,
                               "error": error.response.get("error")})  # fmt: skip
                await self.client.chat_postMessage(channel=str(run.channel), text=notice,
                                                   thread_ts=run.thread_ts, **_QUIET)  # fmt: skip
        if hidden:
            await self._attach(run, result)

    async def _stream(
        self, run: Run, pieces: list[str], feedback: list[dict[str, Any]], notice: str
    ) -> str | None:
        """Stream ``pieces``; the message's ts, or None if no stream could start (raises
        :class:`SlackApiError` then). A stream that breaks later is made whole by an edit."""
        if run.thread_ts is None:
            return None
        started = await self.client.chat_startStream(
            channel=str(run.channel), thread_ts=run.thread_ts, markdown_text=pieces[0],
            recipient_user_id=run.requester, recipient_team_id=await self._team_id(),
        )  # fmt: skip
        channel, ts = started["channel"], started["ts"]
        try:
            for piece in pieces[1:]:
                await self.client.chat_appendStream(channel=channel, ts=ts, markdown_text=piece)
            await self.client.chat_stopStream(channel=channel, ts=ts, blocks=feedback)
        except SlackApiError as error:
            logger.warning("answer stream broke; editing it whole", extra={"run_id": run.id,
                           "error": error.response.get("error")})  # fmt: skip
            whole = markdown_blocks("".join(pieces)) + feedback
            await self.client.chat_update(channel=channel, ts=ts, text=notice, blocks=whole)
        return str(ts)

    async def _post_and_update(
        self, run: Run, pieces: list[str], feedback: list[dict[str, Any]], notice: str
    ) -> None:
        """Post the first piece, then edit the message as the rest arrives."""
        posted = await self.client.chat_postMessage(
            channel=str(run.channel), thread_ts=run.thread_ts, text=notice,
            blocks=markdown_blocks(pieces[0]) + ([] if len(pieces) > 1 else feedback), **_QUIET,
        )  # fmt: skip
        shown = pieces[0]
        for i, piece in enumerate(pieces[1:], start=2):
            shown += piece
            last = feedback if i == len(pieces) else []
            await self.client.chat_update(channel=posted["channel"], ts=posted["ts"], text=notice,
                                          blocks=markdown_blocks(shown) + last)  # fmt: skip

    async def _team_id(self) -> str:
        """The workspace's id (``auth.test``): Slack streams to a user of a team."""
        if self._team is None:
            self._team = str((await self.client.auth_test())["team_id"])
        return self._team

    async def _attach(self, run: Run, result: str) -> None:
        try:
            await self.client.files_upload_v2(
                channel=run.channel, thread_ts=run.thread_ts, content=visible(redact(result)),
                filename=f"{run.id}-result.md", title=f"Result of {run.id}",
            )  # fmt: skip
        except SlackApiError as error:
            logger.warning("slack upload failed", extra={"run_id": run.id,
                           "error": error.response.get("error")})  # fmt: skip
            await self.client.chat_postMessage(
                channel=str(run.channel), thread_ts=run.thread_ts,
                text="_The whole answer could not be attached._",
            )  # fmt: skip
