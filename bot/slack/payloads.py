"""The parts of Slack's payloads airlock reads, parsed and checked.

Two layers. At the door (:func:`payload_problem`, run by a middleware before any listener)
every signed payload of a kind airlock handles must have the shape Slack gives it: an event
its id, type and, for the events listened to, who and where; a command its user and channel;
a click its user and actions; a modal submission its view. Then each listener parses what it
uses (:class:`ApprovalClick`, :class:`ViewSubmission`), so a button or a modal naming
anything but an approval id fails before anything is looked up or changed. Either way the
request costs one log line (see :mod:`bot.slack.app`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Json, ValidationError

__all__ = [
    "APPROVAL_ID",
    "ApprovalClick",
    "ButtonClick",
    "ModalPlace",
    "ViewSubmission",
    "payload_problem",
]

APPROVAL_ID = r"^apr_[0-9a-f]{12}$"
"""What an approval id looks like; a button or a modal naming anything else is malformed."""

_Id = Annotated[str, Field(min_length=1, max_length=255)]
_Text = Annotated[str, Field(max_length=100_000)]


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
    form: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$")
    """The Edit form's digest of its boxes (None: the plain JSON modal)."""


class _Selected(_Wire):
    value: str = Field(max_length=150)


class _Input(_Wire):
    value: str | None = Field(default=None, max_length=100_000)
    selected_option: _Selected | None = None


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

    def boxes(self, prefix: str, action: str) -> dict[str, str | None]:
        """What came back in each input whose block id starts with ``prefix`` (an option
        chosen counts as its value), by block id."""
        found = {}
        for block, inputs in self.view.state.values.items():
            if block.startswith(prefix) and action in inputs:
                given = inputs[action]
                chosen = given.selected_option.value if given.selected_option else None
                found[block] = given.value if given.value is not None else chosen
        return found


# --- the door: the shape of each kind of payload airlock handles ----------------------------


class _Mention(_Wire):
    user: _Id
    channel: _Id
    ts: _Id
    text: _Text | None = None
    thread_ts: _Id | None = None


class _Message(_Wire):
    channel: _Id
    user: _Id | None = None
    ts: _Id | None = None
    text: _Text | None = None
    thread_ts: _Id | None = None
    subtype: _Id | None = None
    bot_id: _Id | None = None
    channel_type: _Id | None = None
    client_msg_id: _Id | None = None


class _HomeOpened(_Wire):
    user: _Id
    tab: _Id | None = None


_EVENTS: dict[str, type[_Wire]] = {
    "app_mention": _Mention,
    "message": _Message,
    "app_home_opened": _HomeOpened,
}


class _Event(_Wire):
    type: _Id


class _EventCallback(_Wire):
    type: Literal["event_callback"]
    event_id: _Id
    team_id: _Id | None = None
    api_app_id: _Id | None = None
    event: _Event
    authorizations: list[dict[str, Any]] | None = None


class _Command(_Wire):
    command: _Id
    user_id: _Id
    channel_id: _Id
    text: _Text = ""
    trigger_id: _Id | None = None


class _BlockActions(_Wire):
    user: _User
    actions: list[_Action] = Field(min_length=1)
    container: dict[str, Any] | None = None
    channel: _Channel | None = None
    trigger_id: _Id | None = None


class _AnyView(_Wire):
    callback_id: str = Field(max_length=255)
    private_metadata: str = Field(default="", max_length=3000)
    state: _State


class _ViewSubmitted(_Wire):
    user: _User
    view: _AnyView


_KINDS: dict[str, type[_Wire]] = {
    "event_callback": _EventCallback,
    "block_actions": _BlockActions,
    "view_submission": _ViewSubmitted,
}


def payload_problem(body: dict[str, Any]) -> str | None:
    """What is wrong with the shape of ``body`` for airlock; None when it is fine, or of a
    kind airlock does not handle (which is acknowledged and left alone)."""
    kind = body.get("type")
    model = _Command if kind is None and "command" in body else _KINDS.get(str(kind))
    try:
        if model is not None:
            model.model_validate(body)
        event = body.get("event")
        if model is _EventCallback and isinstance(event, dict) and event.get("type") in _EVENTS:
            _EVENTS[event["type"]].model_validate(event)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        return f"{kind or 'command'}: {where}: {first['msg']}"[:200]
    return None
