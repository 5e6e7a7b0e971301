"""The secret detector: what it masks, what it leaves, and that its prefilter changes nothing."""

from __future__ import annotations

import json
import random
import string
from urllib.parse import quote

import pytest
from detect_secrets.plugins.private_key import PrivateKeyDetector

from agent_core.secrets import (
    MASK,
    contains_secret,
    find_secrets,
    redact,
    redact_value,
    register_secrets,
)
from agent_core.secrets._catalogue import CATALOGUE
from agent_core.secrets._plugins import AwsSecretKeyDetector, SpanDetector
from agent_core.testing.secret_samples import (
    ORDINARY,
    SAMPLES,
    ordinary_text,
    secret_dense_text,
)


def _noise(seed: int, size: int = 4000) -> str:
    """Random text made of the characters secrets are made of, and keyword fragments."""
    pick = random.Random(seed)
    words = ["aws", "key=", "token:", "://", "@", "xox", "sk-", "eyJ", "AKIA", "-----BEGIN",
             "PRIVATE KEY", "password ", "Bearer ", "\\n", "\n", '"', "'", " "]  # fmt: skip
    alphabet = string.ascii_letters + string.digits + "+/=_-.:%"
    parts = []
    while sum(map(len, parts)) < size:
        if pick.random() < 0.2:
            parts.append(pick.choice(words))
        else:
            parts.append("".join(pick.choice(alphabet) for _ in range(pick.randint(1, 60))))
    return "".join(parts)


def corpus() -> list[str]:
    texts = [s.text for s in SAMPLES] + list(ORDINARY)
    texts += [json.dumps({"text": s.text}) for s in SAMPLES] + [repr(s.text) for s in SAMPLES]
    texts += [secret_dense_text(3000), ordinary_text(3000)]
    # One long line (a JSON document, a minified log): windows end mid-line there.
    texts += [json.dumps([s.text for s in SAMPLES]), "".join(s.text for s in SAMPLES)]
    texts += [" ".join(s.text for s in SAMPLES).replace("\n", "\\n") * 3]
    return texts + [_noise(seed) for seed in range(60)] + [_noise(99, size=40_000)]


def test_the_keyword_prefilter_changes_nothing_but_the_time() -> None:
    for text in corpus():
        assert find_secrets(text) == find_secrets(text, prefilter=False), text[:200]


def test_masking_twice_is_masking_once() -> None:
    for text in corpus():
        once = redact(text)
        assert redact(once) == once, text[:200]


def test_the_kind_of_a_token_stays_readable() -> None:
    assert redact("xoxb-1234-5678-abcdEFGH and xoxc-99-Ab12Cd34") == (
        "xoxb-[redacted] and xoxc-[redacted]"
    )
    assert redact("AKIAZ7Q4LMN2P8R6T3VX") == "AKIA[redacted]"
    assert redact("ghp_R7nT2kQ9wL4xZ8vB3mC6pD1sF5hJ0gK2aY4e") == "ghp_[redacted]"
    assert redact("key sk-ant-api03-abcDEF123456") == "key sk-ant-[redacted]"


def test_a_private_key_is_masked_from_its_header_to_its_end() -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\nAAAA\n-----END OPENSSH PRIVATE KEY-----"
    assert redact(f"key:\n{key}\nnext line") == (
        "key:\n-----BEGIN OPENSSH PRIVATE KEY-----[redacted]-----END OPENSSH PRIVATE KEY-----"
        "\nnext line"
    )
    assert redact("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBbh") == (
        "-----BEGIN EC PRIVATE KEY-----[redacted]"  # cut short: masked to the end
    )


@pytest.mark.parametrize("header", [p.pattern for p in PrivateKeyDetector.denylist])
def test_every_key_header_the_library_knows_masks_a_block(header: str) -> None:
    if header.startswith("BEGIN"):
        text = f"-----{header}-----\nQp9Ko8Jn7Im6Hl5Gk4Fj3Ei2\n-----END {header[6:]}-----"
        if "SSH2" in header:
            end = "---- END SSH2 ENCRYPTED PRIVATE KEY ----"
            text = f"---- {header} ----\nQp9Ko8Jn7Im6Hl5Gk4Fj3Ei2\n{end}"
    else:
        text = f"{header}: ssh-rsa\nPrivate-Lines: 1\nQp9Ko8Jn7Im6Hl5Gk4Fj3Ei2\nPrivate-MAC: 0a1b"
    assert "Qp9Ko8Jn7Im6Hl5Gk4Fj3Ei2" not in redact(text), header


def test_a_bare_aws_secret_key_is_masked_only_near_aws() -> None:
    secret = "Pz4Xc7Vb1Nm5Lk8Jh2Gf6Ds9Aq3Wr7Et1Yu5Io8P"
    assert redact(f"AKIAQ3W5E7R9T2Y4U6I8 {secret}") == "AKIA[redacted] [redacted]"
    assert redact(f"the AWS backup job uses {secret}") == "the AWS backup job uses [redacted]"
    assert redact(f"cache nonce {secret}") == f"cache nonce {secret}"  # no AWS near it
    sha = "9fceb02d0ae598e95dc970b74767f19372d61af8"
    assert redact(f"aws-cli at commit {sha}") == f"aws-cli at commit {sha}"  # one case only
    far = f"AKIAQ3W5E7R9T2Y4U6I8{' ' * AwsSecretKeyDetector.reach}x {secret}"
    assert secret in redact(far)


def test_configured_secrets_are_masked_whole_however_they_are_spelled() -> None:
    value = 'conf!gured "signing" secret/42'
    register_secrets(value, "short", None)
    for spelled in (value, json.dumps(value), repr(value), quote(value, safe="")):
        assert value not in redact(spelled) and MASK in redact(spelled), spelled
    assert redact("a short word stays") == "a short word stays"
    register_secrets("xoxb-configured-token-0001")
    assert redact("bot xoxb-configured-token-0001.") == "bot [redacted]."  # whole, no prefix


def test_values_named_as_credentials_are_masked_whole_in_structures() -> None:
    value = {
        "headers": {"Authorization": "Bearer abc", "x-api-key": "k", "Accept": "json"},
        "password": "pw", "GITHUB_TOKEN": "plain", "max_tokens": 4096, "token_budget": "10",
        "args": ("password=hunter2hunter2", 3),
    }  # fmt: skip
    assert redact_value(value) == {
        "headers": {"Authorization": MASK, "x-api-key": MASK, "Accept": "json"},
        "password": MASK, "GITHUB_TOKEN": MASK, "max_tokens": 4096, "token_budget": "10",
        "args": ["password=[redacted]", 3],
    }  # fmt: skip


def test_finds_are_merged_and_in_order() -> None:
    text = "a postgres://u:Pq8Wz3Xr5Tn1@h b AKIAZ7Q4LMN2P8R6T3VX c"
    found = find_secrets(text)
    assert [text[s.start : s.end] for s in found] == ["Pq8Wz3Xr5Tn1", "AKIAZ7Q4LMN2P8R6T3VX"]
    assert contains_secret(text) and not contains_secret("a b c")


def test_airlocks_own_detectors_work_as_detect_secrets_plugins() -> None:
    ours = [e.detector for e in CATALOGUE if isinstance(e.detector, SpanDetector)]
    assert len(ours) >= 14
    for plugin in ours:
        found = [v for s in SAMPLES for v in plugin.analyze_string(s.text)]
        assert found, type(plugin).__name__


def test_a_token_cut_short_at_the_end_of_a_text_is_masked() -> None:
    """Audit events and memories are cut to a length; the cut's last token is still a token."""
    for token in ("ghp_R7nT2kQ9w", "xoxb-2047381925-73", "sk-ant-api03-Rf8k", "AKIAZ7Q4"):
        assert redact(f"the output was cut here: {token}").endswith("[redacted]"), token
        assert token[6:] not in redact(f"cut: {token}")
    assert redact("ghp_R7nT2kQ9w and more") == "ghp_R7nT2kQ9w and more"  # not a token, not cut


def test_each_header_of_json_escaped_lines_is_masked_on_its_own() -> None:
    # In JSON a newline is "\n": a header's value must stop there, or it swallows the next
    # line's "Authorization:" and leaves that line's credential in clear.
    lines = "Authorization: Bearer Zk4Xm8Nq2Pw6Rt0Vy3Bs7Dh1\nAuthorization: Basic YWRtaW46U3VwM3J="
    assert redact(json.dumps(lines)) == json.dumps(
        "Authorization: Bearer [redacted]\nAuthorization: Basic [redacted]"
    )
