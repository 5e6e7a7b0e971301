"""Which detectors run, and where in a text each one needs to look.

Every match of a detector contains one of its keywords, at most ``before`` characters after
the match starts; so a detector runs only in windows around its keywords' occurrences (all
found in one Aho-Corasick pass, far cheaper than any pattern), clipped to the line for
patterns that never cross one, and only where a cheap check (``near``) passes. A keyword
with a capital letter is looked for as it is, one in lower case in the lower-cased text;
``needs`` is a second keyword the text must hold somewhere; no keywords: the detector reads
the whole text. The windows are an optimisation only: ``tests/unit/test_secrets.py`` checks
that they find exactly what running every detector on the whole text finds.

detect-secrets' plugins are used for what they cover well; the high-entropy plugins are
left out (they mask git SHAs, UUIDs and digests, which audit trails and approval cards
need), the keyword plugin too (it needs quotes outside source files it recognises), and
PrivateKeyDetector gives way to :class:`PrivateKeyBlockDetector`, which masks the key's body.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from detect_secrets.plugins.artifactory import ArtifactoryDetector
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.cloudant import CloudantDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.ibm_cloud_iam import IbmCloudIamDetector
from detect_secrets.plugins.ibm_cos_hmac import IbmCosHmacDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.softlayer import SoftlayerDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

from agent_core.secrets._plugins import (
    AnthropicKeyDetector,
    AuthorizationDetector,
    AwsSecretKeyDetector,
    AzureKeyDetector,
    GitHubAnyTokenDetector,
    GoogleKeyDetector,
    NamedCredentialDetector,
    NpmTokenDetector,
    OpenAIKeyDetector,
    PrivateKeyBlockDetector,
    PrivateKeyBodyDetector,
    SlackAnyTokenDetector,
    SlackWebhookDetector,
    SpanDetector,
    StripeAnyKeyDetector,
    TruncatedTokenDetector,
    UrlPasswordDetector,
)

__all__ = ["CATALOGUE", "Entry"]

_TOKEN = re.compile(r"[A-Za-z0-9_-]*")
_JWT = re.compile(r"[A-Za-z0-9_.+/=-]*")
_SLACK = re.compile(r"[A-Za-z0-9_%+/=-]*")
# Some patterns take the character before or after a secret (a space, a quote) with it.
_EDGES = " \t\r\n\"'=:"


def _followed_by(pattern: str) -> Callable[[str, int], bool]:
    """A check that ``pattern`` matches right at a keyword's occurrence."""
    compiled = re.compile(pattern)
    return lambda text, at: compiled.match(text, at) is not None


# After a credential's name (the rest of it, a closing quote or bracket, spaces): an
# assignment; or, for a command-line flag, a dash shortly before the name.
_ASSIGNED = re.compile(r"(?i)[a-z_.-]{0,16}(?:\\{0,3}[\"'])?\]?[ \t]*(?::=|=>|=|:)")


def _named(text: str, at: int) -> bool:
    return _ASSIGNED.match(text, at) is not None or "-" in text[max(0, at - 16) : at]


def _assigned(secret: str) -> Callable[[str, int], bool]:
    """detect-secrets' assignment patterns: the rest of the name, an assignment, ``secret``."""
    return _followed_by(rf"(?i)[a-z]{{0,8}}[\"']?\]? *(?:=|:|:=|=>| +|::) *[\"']?{secret}")


def _telegram(text: str, at: int) -> bool:
    return text[max(0, at - 8) : at].isdigit() and _TELEGRAM.match(text, at) is not None


_TELEGRAM = re.compile(r":[0-9A-Za-z_-]{35}")


def _at_the_end(text: str, at: int) -> bool:
    """Close enough to the end of the text for a token cut there to start here."""
    return at >= len(text) - 1100


@dataclass(kw_only=True, frozen=True)
class Entry:
    """One detector in the catalogue: where it looks, and how its matches become spans."""

    detector: RegexBasedDetector
    keywords: tuple[str, ...] = ()
    """Every match contains one of these; none: the detector reads the whole text."""
    needs: tuple[str, ...] = ()
    """The text must also contain one of these, anywhere."""
    before: int = 0
    """Most characters a match may start before its keyword."""
    after: int = 512
    """Window after the keyword; a match that reaches its edge is followed to its end."""
    lines: bool = True
    """Matches never cross a line: windows stop at the line's ends."""
    whole: bool = False
    """A library pattern whose group is not the secret (GitHub's captures "ghp" alone)."""
    extend: re.Pattern[str] | None = _TOKEN
    """What a library match runs on over: many patterns are fixed-length, secrets are not."""
    valid: Callable[[str], bool] | None = None
    patterns: tuple[int, ...] | None = None
    """Which of the library detector's patterns this entry runs (None: all)."""
    near: Callable[[str, int], bool] | None = None
    """A cheap check at a keyword's occurrence (what its patterns need right after it);
    an occurrence that fails it opens no window."""

    def spans(self, text: str, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int]]:
        """Where the secrets this detector finds between ``start`` and ``end`` are."""
        stop = len(text) if end is None else end
        if isinstance(self.detector, SpanDetector):
            yield from self.detector.spans(text, start, stop)
            return
        patterns = list(self.detector.denylist)
        for index in self.patterns or range(len(patterns)):
            for match in patterns[index].finditer(text, start, stop):
                yield from self._span(text, match)

    def _span(self, text: str, match: re.Match[str]) -> Iterator[tuple[int, int]]:
        group = 0
        if not self.whole:
            group = next((g for g in range(1, (match.re.groups or 0) + 1) if match.group(g)), 0)
        start, end = match.span(group)
        if self.valid is not None and not self.valid(text[start:end]):
            return
        if self.extend is not None:
            end = self.extend.match(text, end).end()  # type: ignore[union-attr]
        while start < end and text[start] in _EDGES:
            start += 1
        while end > start and text[end - 1] in _EDGES:
            end -= 1
        if end > start:
            yield start, end


def _library() -> list[Entry]:
    """detect-secrets' plugins, with the keywords each of their patterns needs."""
    aws_ids = ("AKIA", "ASIA", "ABIA", "ACCA", "A3T")
    gitlab = ("glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "gr1348941", "glcbt-", "glimt-")
    secret_words = ("key", "pwd", "pw", "pass", "token")
    cloudant, softlayer = CloudantDetector(), SoftlayerDetector()
    return [
        Entry(detector=AWSKeyDetector(), keywords=(*aws_ids, "aws")),
        Entry(detector=SlackDetector(), keywords=("xox", "hooks.slack.com"), before=8,
              extend=_SLACK),
        Entry(detector=StripeDetector(), keywords=("k_live_",), before=1),
        Entry(detector=GitHubTokenDetector(), keywords=("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
              whole=True),
        Entry(detector=GitLabTokenDetector(), keywords=(*gitlab, "glptt-", "glagent-", "gloas-"),
              whole=True),
        Entry(detector=JwtTokenDetector(), keywords=("eyJ",), whole=True, extend=_JWT,
              valid=JwtTokenDetector.is_formally_valid),
        Entry(detector=BasicAuthDetector(), keywords=("://",), needs=("@",), extend=None),
        Entry(detector=TwilioKeyDetector(), keywords=("AC", "SK"),
              near=_followed_by(r"(?:AC|SK)[a-z0-9]{32}")),
        Entry(detector=SendGridDetector(), keywords=("SG.",)),
        Entry(detector=NpmDetector(), keywords=("/:_authToken",), before=4096, extend=None),
        Entry(detector=AzureStorageKeyDetector(), keywords=("AccountKey=",), extend=None),
        Entry(detector=OpenAIDetector(), keywords=("T3BlbkFJ",), before=512),
        Entry(detector=DiscordBotTokenDetector()),
        Entry(detector=MailchimpDetector(), keywords=("-us",), before=32),
        Entry(detector=ArtifactoryDetector(), keywords=("AKC", "AP"), before=1, extend=None,
              near=_followed_by(r"AKC[a-zA-Z0-9]{10}|AP[\dABCDEF][a-zA-Z0-9]{8}")),
        Entry(detector=IbmCloudIamDetector(), keywords=secret_words, before=24, extend=None,
              near=_assigned(r"[a-zA-Z0-9_\-]{44}")),
        Entry(detector=IbmCosHmacDetector(), keywords=("secret",), needs=("key",), before=16,
              extend=None, near=_followed_by(r"(?i)secret[-_]?(?:access)?[-_]?key")),
        Entry(detector=cloudant, patterns=(0, 1), keywords=secret_words, needs=("cl",),
              before=16, extend=None, near=_assigned(r"(?:[0-9a-f]{64}|[a-z]{24})")),
        Entry(detector=cloudant, patterns=(2, 3), keywords=("cloudant.com",), before=512,
              extend=None),
        Entry(detector=softlayer, patterns=(0,), keywords=secret_words, needs=("sl",),
              before=20, extend=None, near=_assigned(r"[a-z0-9]{64}")),
        Entry(detector=softlayer, patterns=(1,), keywords=("api.softlayer.com",), before=8,
              extend=None),
        Entry(detector=SquareOAuthDetector(), keywords=("sq0csp-",)),
        Entry(detector=PypiTokenDetector(), keywords=("pypi-age",)),
        Entry(detector=TelegramBotTokenDetector(), keywords=(":",), before=10, after=40,
              near=_telegram),
    ]  # fmt: skip


def _ours() -> list[Entry]:
    """airlock's detectors (``_plugins``), for what the library misses."""
    aws_ids = ("AKIA", "ASIA", "ABIA", "ACCA", "A3T")
    key_bodies = ("MII", "MIG", "MIH", "MHcCAQEE", "MC4CAQAwBQYDK2Vw", "b3BlbnNzaC1rZXktdjE")
    reach = AwsSecretKeyDetector.reach + 60
    return [
        Entry(detector=SlackAnyTokenDetector(), keywords=("xox", "xapp-")),
        Entry(detector=SlackWebhookDetector(), keywords=("hooks.slack.com",), before=8),
        Entry(detector=AnthropicKeyDetector(), keywords=("sk-ant-",)),
        Entry(detector=OpenAIKeyDetector(), keywords=("sk-",)),
        Entry(detector=StripeAnyKeyDetector(), keywords=("k_live_", "k_test_", "whsec_"),
              before=1),
        Entry(detector=GitHubAnyTokenDetector(),
              keywords=("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")),
        Entry(detector=GoogleKeyDetector(), keywords=("AIza", "GOCSPX-", "ya29.")),
        Entry(detector=NpmTokenDetector(), keywords=("npm_",)),
        Entry(detector=AzureKeyDetector(), before=1,
              keywords=("accountkey=", "sharedaccesskey=", "sharedaccesssignature=", "sig=")),
        Entry(detector=UrlPasswordDetector(), keywords=("://",), needs=("@",)),
        Entry(detector=AuthorizationDetector(), keywords=("authorization", "bearer", "-u"),
              before=6),
        Entry(detector=NamedCredentialDetector(), before=24, near=_named,
              keywords=("pass", "pwd", "secret", "token", "key", "credential")),
        Entry(detector=AwsSecretKeyDetector(), keywords=(*aws_ids, "aws", "amazon", "secret"),
              before=reach, after=reach, lines=False),
        Entry(detector=PrivateKeyBlockDetector(), before=48,
              keywords=("PRIVATE KEY", "PuTTY-User-Key-File", "Private-MAC:")),
        Entry(detector=PrivateKeyBodyDetector(), keywords=key_bodies, after=8192, lines=False),
        Entry(detector=TruncatedTokenDetector(), after=1100, lines=False, near=_at_the_end,
              keywords=("xox", "xapp-", "sk-", "k_live_", "k_test_", "ghp_", "gho_", "ghu_",
                        "ghs_", "ghr_", "github_pat_", "glpat-", "npm_", "AIza", "SG.", "AKIA",
                        "ASIA")),
    ]  # fmt: skip


CATALOGUE: tuple[Entry, ...] = (*_library(), *_ours())
"""Every detector redaction runs (where its keywords are in the text)."""
