"""The sampled log of refused requests: a flood costs a bounded number of short lines."""

from __future__ import annotations

import logging

import pytest

from bot.slack.request_log import OneLineErrors, SampledLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_is_cut_to_the_burst_and_the_next_line_says_how_much_was_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    sampled = SampledLog(logger=logging.getLogger("test.sampled"), burst=3, window_seconds=10,
                         clock=clock)  # fmt: skip
    with caplog.at_level(logging.INFO, logger="test.sampled"):
        for n in range(100):
            sampled.log(logging.WARNING, "refused", n=n)
        clock.now = 10.0
        sampled.log(logging.WARNING, "refused", n=100)
    assert [r.n for r in caplog.records] == [0, 1, 2, 100]  # type: ignore[attr-defined]
    assert caplog.records[-1].left_out == 97  # type: ignore[attr-defined]


def test_a_library_stack_trace_becomes_one_line(caplog: pytest.LogCaptureFixture) -> None:
    library = logging.getLogger("test.library")
    library.addFilter(OneLineErrors(SampledLog(logger=library, burst=2)))
    with caplog.at_level(logging.INFO, logger="test.library"):
        for _ in range(5):
            try:
                raise ValueError("bad frame\nwith a second line")
            except ValueError:
                library.exception("failed to process a message")
        library.warning("reconnecting")
    texts = [r.getMessage() for r in caplog.records]
    assert texts == ["failed to process a message"] * 2 + ["reconnecting"]
    assert all(r.exc_info is None for r in caplog.records)
    assert caplog.records[0].error == "ValueError"  # type: ignore[attr-defined]
    assert "Traceback" not in caplog.text
