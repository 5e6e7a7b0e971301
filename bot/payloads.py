"""The parts of Slack's payloads the approval listeners read, parsed and checked.

A button or a modal naming anything but an approval id, or lacking who clicked, fails here
with a ``pydantic.ValidationError`` before anything is looked up or changed.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Json

__all__ = [
    "APPROVAL_ID",
    "ApprovalClick",
    "ButtonClick",
    "ModalPlace",
    "ViewSubmission",
]

APPROVAL_ID = r"^apr_[0-9a-f]{12}$"
"""What an approval id looks like; a button or a modal naming anything else is malformed."""

_Id = Annotated[str, Field(min_length=1, max_length=255)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _User(_Wire):
    id: _Id


class _Action(_Wire):
    action_id: _Id
    value: str | None = Field(default=None, max_length=2000)


class _Container(_Wire):
    channel_id: _Id | None = None
    thread_ts: _Id | None = None


class _Channel(_Wire):
    id: _Id


class ButtonClick(_Wire):
    """A ``block_actions`` payload: who clicked which button, and where."""

    user: _User
    actions: list[_Action] = Field(min_length=1)
    container: _Container = Field(default_factory=_Container)
    channel: _Channel | None = None
    trigger_id: str | None = None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> ButtonClick:
        """``body`` checked; raises ``pydantic.ValidationError`` when it is not a click."""
        return cls.model_validate(body)

    @property
    def action(self) -> _Action:
        """The button clicked."""
        return self.actions[0]

    @property
    def where(self) -> str | None:
        """The channel of the clicked message; None for a button in App Home."""
        return self.container.channel_id or (self.channel.id if self.channel else None)


class _ApprovalAction(_Action):
    value: str = Field(pattern=APPROVAL_ID)


class ApprovalClick(ButtonClick):
    """A click on one of an approval card's buttons, whose value is the approval id."""

    actions: list[_ApprovalAction] = Field(min_length=1)  # type: ignore[assignment]

    @classmethod
    def parse(cls, body: dict[str, Any]) -> ApprovalClick:
        """``body`` checked; raises ``pydantic.ValidationError`` when it is not such a click."""
        return cls.model_validate(body)

    @property
    def approval_id(self) -> str:
        """The approval the clicked button decides."""
        return self.actions[0].value


class ModalPlace(_Wire):
    """What a modal remembers (its ``private_metadata``): which approval, where to answer."""

    approval: str = Field(pattern=APPROVAL_ID)
    channel: _Id | None = None
    thread: _Id | None = None


class _Input(_Wire):
    value: str | None = Field(default=None, max_length=100_000)


class _State(_Wire):
    values: dict[str, dict[str, _Input]]


class _View(_Wire):
    private_metadata: Json[ModalPlace]
    state: _State


class ViewSubmission(_Wire):
    """A ``view_submission`` of one of airlock's modals."""

    user: _User
    view: _View

    @classmethod
    def parse(cls, body: dict[str, Any]) -> ViewSubmission:
        """``body`` checked; raises ``pydantic.ValidationError`` when it is not one of ours."""
        return cls.model_validate(body)

    def value(self, block: str) -> str | None:
        """What was typed in the input ``block`` (whose action id is the same)."""
        return self.view.state.values.get(block, {}).get(block, _Input()).value
