"""airlock's own detectors, for what detect-secrets' plugins miss, in the same plugin shape.

detect-secrets finds secrets in source files; airlock masks them in prose, logs, JSON and
tool output. Its plugins miss Slack's session and app-level tokens, Anthropic keys, the
current OpenAI key formats, Google keys, credentials given by name outside quoted code,
Authorization headers, URLs whose password has symbols or no user, bare AWS secret keys,
and everything of a private key but its header line. Each class here is a
``RegexBasedDetector``, so it also works in a detect-secrets scan; :meth:`SpanDetector.spans`
gives where each secret is, which masking needs and ``analyze_string`` does not say.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from typing import ClassVar

from detect_secrets.plugins.base import RegexBasedDetector

__all__ = [
    "AnthropicKeyDetector",
    "AuthorizationDetector",
    "AwsSecretKeyDetector",
    "AzureKeyDetector",
    "GitHubAnyTokenDetector",
    "GoogleKeyDetector",
    "NamedCredentialDetector",
    "NpmTokenDetector",
    "OpenAIKeyDetector",
    "PrivateKeyBlockDetector",
    "PrivateKeyBodyDetector",
    "SlackAnyTokenDetector",
    "SlackWebhookDetector",
    "SpanDetector",
    "StripeAnyKeyDetector",
    "TruncatedTokenDetector",
    "UrlPasswordDetector",
]

# Before a token: not a token character, or an escape ("...\\nsk-..." in a repr or JSON).
_START = r"(?:(?<![A-Za-z0-9_-])|(?<=\\n)|(?<=\\t)|(?<=\\r))"


class SpanDetector(RegexBasedDetector):
    """A detector that says where each secret is: group 1 of a match, else the whole match."""

    secret_type: ClassVar[str] = "airlock"
    denylist: ClassVar[tuple[re.Pattern[str], ...]] = ()

    def spans(self, text: str, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int]]:
        """``(start, end)`` of every secret found between ``start`` and ``end`` of ``text``."""
        for pattern in self.denylist:
            for match in pattern.finditer(text, start, len(text) if end is None else end):
                group = 1 if pattern.groups and match.group(1) else 0
                if self.accept(match.group(group)):
                    yield match.span(group)

    def accept(self, value: str) -> bool:
        """Whether a matched value is a secret (some patterns need a second look)."""
        return True

    def analyze_string(self, string: str) -> Generator[str, None, None]:
        for start, end in self.spans(string):
            yield string[start:end]


def _credential_like(value: str) -> bool:
    """Not a plain word: a digit, mixed case or a symbol, or long (values of token=, key=)."""
    if len(value) < 8:
        return False
    mixed = any(c.isupper() for c in value) and any(c.islower() for c in value)
    marked = any(c.isdigit() or c in "+/=_-.:~!@#$%^&*" for c in value)
    return mixed or marked or len(value) >= 20


class SlackAnyTokenDetector(SpanDetector):
    """Every Slack token: bot, user, workspace, refresh, session (xoxc, and the xoxd cookie),
    rotating (xoxe.xoxp-) and app-level (xapp-). detect-secrets needs digit segments."""

    secret_type = "Slack token"
    denylist = (re.compile(r"(?:xoxe\.xox[a-z]|xox[a-z]|xapp)-[A-Za-z0-9_%+/=-]{6,}"),)


class TruncatedTokenDetector(SpanDetector):
    """A token cut short at the very end of a text (an audit event or a memory is cut to a
    length): too short for its own detector, its first characters are still its own."""

    secret_type = "Token cut short"
    denylist = (
        re.compile(
            _START + r"(?:xox[a-z]-|xoxe\.xox[a-z]-|xapp-|sk-ant-|sk-|[sr]k_(?:live|test)_"
            r"|gh[pousr]_|github_pat_|glpat-|npm_|AIza|SG\.)[A-Za-z0-9_%+/=.-]{0,1023}[A-Za-z0-9_%+/=-]"
            r"|(?:AKIA|ASIA)[0-9A-Z]{1,16}"
        ),
    )

    def spans(self, text: str, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int]]:
        return (span for span in super().spans(text, start, end) if span[1] == len(text))


class SlackWebhookDetector(SpanDetector):
    """Incoming webhooks, and workflow and trigger URLs, which post without any other token."""

    secret_type = "Slack webhook"
    denylist = (
        re.compile(
            r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]{10,}"
        ),
    )


class AnthropicKeyDetector(SpanDetector):
    """Anthropic API and admin keys."""

    secret_type = "Anthropic key"
    denylist = (re.compile(r"sk-ant-[A-Za-z0-9_-]{8,}"),)


class OpenAIKeyDetector(SpanDetector):
    """OpenAI keys as issued now (sk-proj-, sk-svcacct-, sk-admin-, sk-), and the many
    providers that copied the ``sk-`` form; detect-secrets knows only the old T3BlbkFJ kind."""

    secret_type = "OpenAI-style key"
    denylist = (re.compile(_START + r"sk-[A-Za-z0-9_-]{20,}"),)

    def accept(self, value: str) -> bool:
        return any(c.isdigit() or c.isupper() for c in value)


class StripeAnyKeyDetector(SpanDetector):
    """Stripe secret and restricted keys, live and test, of any length; webhook secrets."""

    secret_type = "Stripe key"
    denylist = (
        re.compile(r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}"),
        re.compile(r"whsec_[A-Za-z0-9+/=]{20,}"),
    )


class GitHubAnyTokenDetector(SpanDetector):
    """GitHub tokens of any length, and fine-grained ``github_pat_`` ones."""

    secret_type = "GitHub token"
    denylist = (re.compile(r"(?:gh[pousr]_|github_pat_)[A-Za-z0-9_]{20,}"),)


class GoogleKeyDetector(SpanDetector):
    """Google API keys, OAuth client secrets and OAuth access tokens."""

    secret_type = "Google credential"
    denylist = (
        re.compile(r"AIza[0-9A-Za-z_-]{35}"),
        re.compile(r"GOCSPX-[0-9A-Za-z_-]{20,}"),
        re.compile(r"ya29\.[0-9A-Za-z_-]{20,}"),
    )


class NpmTokenDetector(SpanDetector):
    """npm access tokens on their own (detect-secrets finds them only in an .npmrc line)."""

    secret_type = "npm token"
    denylist = (re.compile(r"npm_[A-Za-z0-9]{30,}"),)


class AzureKeyDetector(SpanDetector):
    """Azure connection-string keys and SAS signatures."""

    secret_type = "Azure key"
    denylist = (
        re.compile(r"(?i:AccountKey|SharedAccessKey|SharedAccessSignature)=([^;\s\"'<>&]{16,})"),
        re.compile(r"[?&]sig=([A-Za-z0-9%+/=]{16,})"),
    )


class UrlPasswordDetector(SpanDetector):
    """The password of any ``scheme://user:password@host`` URL, symbols and empty users
    included (``redis://:pw@host``); detect-secrets' BasicAuth stops at ``!$&'()*+,;=``."""

    secret_type = "URL password"
    denylist = (re.compile(r"://[^\s:/@\"'<>]*:([^\s@/\"'<>]+)@"),)


class AuthorizationDetector(SpanDetector):
    """Authorization headers (any scheme), bearer tokens anywhere, and ``curl -u user:pw``."""

    secret_type = "Authorization credential"
    denylist = (
        re.compile(
            r"(?i:(?:proxy-)?authorization)[\"']?[ \t]*[:=][ \t]*[\"']?"
            r"(?:(?i:bearer|basic|token|digest|bot|apikey|key)[ \t]+)?([^\s\"',;\\]{6,})"
        ),
        re.compile(r"(?i:bearer)[ \t]+([A-Za-z0-9._~+/=-]{8,})"),
        re.compile(r"(?<!\S)(?:-u|--user)[ \t]+[\"']?[^\s:\"']+:([^\s\"']+)"),
    )

    def accept(self, value: str) -> bool:
        return _credential_like(value)


_NAMES = (
    r"password|passwd|passphrase|pwd|secret|secret[_-]?key|token|api[_-]?key|apikey"
    r"|access[_-]?key|private[_-]?key|signing[_-]?key|encryption[_-]?key|master[_-]?key"
    r"|auth[_-]?token|credentials?"
)
_PASSWORDS = re.compile(r"(?i)pass|pwd")
# After a name: maybe its closing quote (escaped, as in JSON inside JSON) or bracket.
_CLOSE = r"(?:\\{0,3}[\"'])?\]?"
# A value: in quotes (maybe escaped ones, as in JSON inside JSON), up to the closing quote;
# else up to a space or a delimiter ("&" only where the next query parameter starts).
_VALUE = (
    r"(?:\\{0,3}\"((?:[^\"\\\n]|\\(?![\\\"]))+)|\\{0,3}'((?:[^'\\\n]|\\(?![\\']))+)"
    r"|((?:[^\s\"'\\,;&<>()\[\]{}]|&(?![A-Za-z0-9_.-]+=))+))"
)


class NamedCredentialDetector(SpanDetector):
    """A credential given by name: ``password=…``, ``"api_key": "…"``, ``DB_PASSWORD: …``,
    ``--token …``, ``?access_token=…``. detect-secrets' keyword plugin wants quotes outside
    source files it recognises, so it misses most of these in logs and prose."""

    secret_type = "Named credential"
    denylist = (
        re.compile(rf"(?i)({_NAMES})(?![a-z]){_CLOSE}[ \t]*(?::=|=>|=|:)[ \t]*{_VALUE}"),
        re.compile(rf"(?i)(?<!\S)--?({_NAMES})[ \t]+(?!-){_VALUE}"),
    )

    def spans(self, text: str, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int]]:
        for pattern in self.denylist:
            for match in pattern.finditer(text, start, len(text) if end is None else end):
                group = next(g for g in (2, 3, 4) if match.group(g) is not None)
                value = match.group(group)
                if _PASSWORDS.search(match.group(1)):
                    if len(value) >= 4:
                        yield match.span(group)
                elif _credential_like(value) and not value.isdigit():
                    yield match.span(group)


class AwsSecretKeyDetector(SpanDetector):
    """A bare 40-character AWS secret access key, masked only near an AWS access key id or
    an AWS word (``aws``, ``amazon``, ``secret access key``), and only when it mixes upper
    and lower case: git SHAs (lower-case hex) and other 40-character strings stay readable."""

    secret_type = "AWS secret access key"
    denylist = (re.compile(r"[A-Za-z0-9/+]{40,}"),)
    """Runs of the key's alphabet; a run of exactly 40 (after an escape such as ``\\n``) is
    a candidate. (Simpler than one pattern with look-arounds, and four times faster.)"""
    context = re.compile(
        r"(?i:(?<![a-z])aws|amazon|secret[_ -]?access[_ -]?key)"
        r"|(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[0-9A-Z]{16}"
    )
    reach = 300
    """Characters before and after a candidate searched for the context."""

    def spans(self, text: str, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int]]:
        for run in self.denylist[0].finditer(text, start, len(text) if end is None else end):
            first, last = run.span()
            if last - first == 41 and text[first] in "ntr" and text[first - 1 : first] == "\\":
                first += 1  # "\\nKEY" in escaped text: the letter belongs to the escape
            if last - first != 40 or text[last : last + 1] == "=":
                continue
            value = text[first:last]
            if not (any(c.isupper() for c in value) and any(c.islower() for c in value)):
                continue
            if self.context.search(text, max(0, first - self.reach), last + self.reach):
                yield first, last


class PrivateKeyBlockDetector(SpanDetector):
    """A private key block between its header and its END line (both left readable), or to
    the end of the text when it was cut short (a cut key is still a key). detect-secrets
    finds the header line alone; the body is what must not leak."""

    secret_type = "Private key"
    denylist = (
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
            r"|---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----"
            r"|PuTTY-User-Key-File-\d+: [^\r\n\\]*"
        ),
        re.compile(r"Private-MAC: ([0-9A-Fa-f]+)"),
    )
    end = re.compile(
        r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"|---- END SSH2 ENCRYPTED PRIVATE KEY ----"
        r"|Private-MAC:"
    )

    def spans(self, text: str, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int]]:
        stop = len(text) if end is None else end
        for header in self.denylist[0].finditer(text, start, stop):
            closing = self.end.search(text, header.end())  # beyond the window: keys span lines
            yield header.end(), len(text) if closing is None else closing.start()
        for mac in self.denylist[1].finditer(text, start, stop):
            yield mac.span(1)


class PrivateKeyBodyDetector(SpanDetector):
    """A private key's base64 body without its header (a key cut at the start, or pasted
    bare): PKCS#1, PKCS#8 (plain and encrypted), SEC1 EC, Ed25519 and OpenSSH keys all
    begin with a few fixed bytes that public keys and certificates never start with."""

    secret_type = "Private key body"
    denylist = (
        re.compile(
            r"(?:MII[A-Za-z0-9+/]{3}IBAAK|MII[A-Za-z0-9+/]{3}IBADANBgkqhkiG9w0BAQEFAAS"
            r"|MII[A-Za-z0-9+/]{2}TBfBgkqhkiG9w0BBQ0w|MHcCAQEE|MIGkAgEBBD|MIHcAgEBBEI"
            r"|MIG[A-Za-z0-9+/]AgEAMB[A-Za-z0-9+/]GByqGSM49AgEG|MC4CAQAwBQYDK2Vw"
            r"|b3BlbnNzaC1rZXktdjE)(?:[A-Za-z0-9+/=]|\r?\n|\\r|\\n)*"
        ),
    )
