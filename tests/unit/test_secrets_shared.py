"""redact_value_or_same: redact_value's answer, without copying what holds no secret.

The stores decide "nothing to mask" by identity (``masked is plain``) instead of comparing
a copy, so every way a secret can hide in a structure must still come back changed.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from agent_core.secrets import (
    MASK,
    redact,
    redact_value,
    redact_value_or_same,
    register_secrets,
    secret_name,
)
from agent_core.testing.secret_samples import ORDINARY, SAMPLES


def _structures() -> list[Any]:
    """Clean and dirty structures: secrets as values, as keys, under credential names,
    deep in lists, next to clean siblings."""
    rng = random.Random(17)
    texts = [s.text for s in SAMPLES] + list(ORDINARY)
    out: list[Any] = []
    for _ in range(300):
        a, b, c = rng.choice(texts), rng.choice(texts), rng.choice(ORDINARY)
        out += [
            a,
            {"note": a, "id": "run_1", "n": 3, "ok": True, "none": None},
            {"deep": [{"x": [c, {"y": a}]}, c], "other": {"z": c}},
            {a: c, "password": b, "api_key": "", "token": MASK, "max_tokens": 9},
            [c, [c, [b]], 1.5],
            {"args": (c, a)},
            {1: c, "k": [a]},
        ]
    return out


@pytest.mark.parametrize("value", _structures()[:700:7] + _structures()[1::37])
def test_answers_what_redact_value_answers(value: Any) -> None:
    assert redact_value_or_same(value) == redact_value(value)


def test_every_structure_agrees_and_a_changed_one_is_never_the_same_object() -> None:
    for value in _structures():
        masked = redact_value_or_same(value)
        copied = redact_value(value)
        assert masked == copied
        # Identity must mean "no secret": the stores keep the plain value when it holds.
        assert (masked is value) == (copied == value), value


def test_clean_structures_come_back_as_they_are_and_share_clean_parts() -> None:
    clean = {"a": ["restart web", {"b": "ok"}], "c": {"d": 1}}
    assert redact_value_or_same(clean) is clean
    dirty: dict[str, Any] = {
        "clean": {"d": ["x"]},
        "leak": ["ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"],
    }
    masked = redact_value_or_same(dirty)
    assert masked is not dirty and masked["clean"] is dirty["clean"]
    assert masked["leak"] == ["ghp_[redacted]"] and "a1B2" not in str(masked)
    assert dirty["leak"][0].startswith("ghp_a1B2")  # the given value is never changed


def test_a_secret_deep_inside_a_clean_looking_structure_changes_every_level_above_it() -> None:
    key = "AKIAQ3W5E7R9T2Y4U6I8"
    value = {"l1": [{"l2": {"l3": [1, "plain", f"aws {key}"]}}], "same": "plain"}
    masked = redact_value_or_same(value)
    assert key not in str(masked)
    assert masked is not value and masked["l1"] is not value["l1"]
    assert masked["l1"][0]["l2"]["l3"][:2] == [1, "plain"]


def test_a_string_seen_clean_is_masked_once_it_is_registered_as_a_secret() -> None:
    # The masking cache must not answer "clean" for a value made secret since.
    value = {"note": "deploy with quietmoss-7Hq2-cobalt", "list": ["quietmoss-7Hq2-cobalt"]}
    assert redact_value_or_same(value) is value
    register_secrets("quietmoss-7Hq2-cobalt")
    masked = redact_value_or_same(value)
    assert masked == {"note": f"deploy with {MASK}", "list": [MASK]}
    assert redact("quietmoss-7Hq2-cobalt") == MASK


def test_credential_names_are_still_masked_whole_and_the_name_cache_is_exact() -> None:
    assert redact_value_or_same({"GITHUB_TOKEN": "plain"}) == {"GITHUB_TOKEN": MASK}
    assert redact_value_or_same({"x-api-key": "k", "max_tokens": "10"}) == {
        "x-api-key": MASK,
        "max_tokens": "10",
    }
    for _ in range(2):  # asked twice: the cached answer is the computed one
        assert secret_name("password") and secret_name("Authorization")
        assert not secret_name("max_tokens") and not secret_name("token_budget")
    masked_already = {"password": MASK, "token": ""}
    assert redact_value_or_same(masked_already) is masked_already


def test_an_equal_string_object_is_not_taken_for_a_change() -> None:
    # The cache answers with the first object it saw; an equal one must still count clean.
    first = "".join(["restart ", "web ", "now"])
    second = "".join(["restart ", "web", " now"])
    assert first == second and first is not second
    redact(first)
    value = {"goal": second}
    assert redact_value_or_same(value) is value


def test_an_earlier_clean_value_changes_no_answer() -> None:
    # Given an earlier value found clean, the parts equal to it are compared, not walked: the
    # answer (and whether it is the very value given) must be the one without it.
    values = _structures()
    clean = [v for v in values if redact_value_or_same(v) is v]
    assert clean and len(clean) < len(values)
    rng = random.Random(29)
    for value in values:
        earlier = rng.choice(clean)
        for given in (value, {**earlier, "new": value} if isinstance(earlier, dict) else value):
            masked = redact_value_or_same(given, clean=earlier)
            assert masked == redact_value(given)
            assert (masked is given) == (redact_value_or_same(given) is given), given


def test_what_changed_since_the_clean_value_is_masked() -> None:
    key = "ghp_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"
    earlier = {"turns": [{"text": "restart web"}, {"text": "done"}], "token": "", "n": 1}
    assert redact_value_or_same(earlier) is earlier
    grown = {"turns": [{"text": "restart web"}, {"text": "done"}, {"text": f"key {key}"}],
             "token": "", "n": 1}  # fmt: skip
    assert redact_value_or_same(grown, clean=earlier)["turns"][2] == {"text": "key ghp_[redacted]"}
    named = {**earlier, "token": "plain-now"}  # a credential's name, no longer empty
    assert redact_value_or_same(named, clean=earlier)["token"] == MASK
    same = {"turns": [{"text": "restart web"}, {"text": "done"}], "token": "", "n": 1}
    assert redact_value_or_same(same, clean=earlier) is same
