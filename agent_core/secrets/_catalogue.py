"""Which detectors run, and the keywords that decide whether each one needs to.

Every detector has keywords that any text it could match must contain (checked with ``in``,
which is far cheaper than running the detector's patterns). A keyword with a capital letter
is looked for as it is, one in lower case in the lower-cased text. Groups are all-of, the
keywords in a group any-of; no groups: the detector always runs. The keywords are a
prefilter only: ``tests/unit/test_secrets.py`` checks that masking with them gives exactly
what masking without them gives.

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
    UrlPasswordDetector,
)

__all__ = ["CATALOGUE", "Entry"]

_TOKEN = re.compile(r"[A-Za-z0-9_-]*")
_JWT = re.compile(r"[A-Za-z0-9_.+/=-]*")
_SLACK = re.compile(r"[A-Za-z0-9_%+/=-]*")
# Some patterns take the character before or after a secret (a space, a quote) with it.
_EDGES = " \t\r\n\"'=:"

Keywords = tuple[tuple[str, ...], ...]


@dataclass(kw_only=True, frozen=True)
class Entry:
    """One detector in the catalogue, and how its matches become spans to mask."""

    detector: RegexBasedDetector
    keywords: Keywords = ()
    whole: bool = False
    """A library pattern whose group is not the secret (GitHub's captures "ghp" alone)."""
    extend: re.Pattern[str] | None = _TOKEN
    """What a library match runs on over: many patterns are fixed-length, secrets are not."""
    valid: Callable[[str], bool] | None = None

    def wanted(self, text: str, lowered: str) -> bool:
        """Whether ``text`` holds what this detector needs to match anything."""
        return all(
            any(word in (lowered if word.islower() else text) for word in group)
            for group in self.keywords
        )

    def spans(self, text: str) -> Iterator[tuple[int, int]]:
        """Where the secrets this detector finds are in ``text``."""
        if isinstance(self.detector, SpanDetector):
            yield from self.detector.spans(text)
            return
        for pattern in self.detector.denylist:
            for match in pattern.finditer(text):
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
    return [
        Entry(detector=AWSKeyDetector(), keywords=((*aws_ids, "aws"),)),
        Entry(detector=SlackDetector(), keywords=(("xox", "hooks.slack.com"),), extend=_SLACK),
        Entry(detector=StripeDetector(), keywords=(("k_live_",),)),
        Entry(
            detector=GitHubTokenDetector(),
            keywords=(("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),),
            whole=True,
        ),
        Entry(
            detector=GitLabTokenDetector(),
            keywords=((*gitlab, "glptt-", "glagent-", "gloas-"),),
            whole=True,
        ),
        Entry(
            detector=JwtTokenDetector(),
            keywords=(("eyJ",),),
            whole=True,
            extend=_JWT,
            valid=JwtTokenDetector.is_formally_valid,
        ),
        Entry(detector=BasicAuthDetector(), keywords=(("://",), ("@",)), extend=None),
        Entry(detector=TwilioKeyDetector(), keywords=(("AC", "SK"),)),
        Entry(detector=SendGridDetector(), keywords=(("SG.",),)),
        Entry(detector=NpmDetector(), keywords=(("_authToken",),), extend=None),
        Entry(detector=AzureStorageKeyDetector(), keywords=(("AccountKey=",),), extend=None),
        Entry(detector=OpenAIDetector(), keywords=(("T3BlbkFJ",),)),
        Entry(detector=DiscordBotTokenDetector()),
        Entry(detector=MailchimpDetector(), keywords=(("-us",),)),
        Entry(detector=ArtifactoryDetector(), keywords=(("AKC", "AP"),), extend=None),
        Entry(detector=IbmCloudIamDetector(), keywords=(secret_words,), extend=None),
        Entry(detector=IbmCosHmacDetector(), keywords=(("secret",), ("key",)), extend=None),
        Entry(
            detector=CloudantDetector(),
            keywords=(("cl",), (*secret_words, "cloudant.com")),
            extend=None,
        ),
        Entry(
            detector=SoftlayerDetector(),
            keywords=(("sl", "softlayer"), (*secret_words, "api.softlayer.com")),
            extend=None,
        ),
        Entry(detector=SquareOAuthDetector(), keywords=(("sq0csp-",),)),
        Entry(detector=PypiTokenDetector(), keywords=(("pypi-age",),)),
        Entry(detector=TelegramBotTokenDetector(), keywords=((":",),)),
    ]


def _ours() -> list[Entry]:
    """airlock's detectors (``_plugins``), for what the library misses."""
    aws_ids = ("AKIA", "ASIA", "ABIA", "ACCA", "A3T")
    key_bodies = ("MII", "MIG", "MIH", "MHcCAQEE", "MC4CAQAwBQYDK2Vw", "b3BlbnNzaC1rZXktdjE")
    return [
        Entry(detector=SlackAnyTokenDetector(), keywords=(("xox", "xapp-"),)),
        Entry(detector=SlackWebhookDetector(), keywords=(("hooks.slack.com",),)),
        Entry(detector=AnthropicKeyDetector(), keywords=(("sk-ant-",),)),
        Entry(detector=OpenAIKeyDetector(), keywords=(("sk-",),)),
        Entry(detector=StripeAnyKeyDetector(), keywords=(("k_live_", "k_test_", "whsec_"),)),
        Entry(
            detector=GitHubAnyTokenDetector(),
            keywords=(("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),),
        ),
        Entry(detector=GoogleKeyDetector(), keywords=(("AIza", "GOCSPX-", "ya29."),)),
        Entry(detector=NpmTokenDetector(), keywords=(("npm_",),)),
        Entry(
            detector=AzureKeyDetector(),
            keywords=(("accountkey=", "sharedaccesskey=", "sharedaccesssignature=", "sig="),),
        ),
        Entry(detector=UrlPasswordDetector(), keywords=(("://",), ("@",))),
        Entry(detector=AuthorizationDetector(), keywords=(("authorization", "bearer", "-u"),)),
        Entry(
            detector=NamedCredentialDetector(),
            keywords=(("pass", "pwd", "secret", "token", "key", "credential"),),
        ),
        Entry(detector=AwsSecretKeyDetector(), keywords=((*aws_ids, "aws", "amazon", "access"),)),
        Entry(
            detector=PrivateKeyBlockDetector(), keywords=(("PRIVATE KEY", "PuTTY-User-Key-File"),)
        ),
        Entry(detector=PrivateKeyBodyDetector(), keywords=(key_bodies,)),
    ]


CATALOGUE: tuple[Entry, ...] = (*_library(), *_ours())
"""Every detector redaction runs (when its keywords are in the text)."""
