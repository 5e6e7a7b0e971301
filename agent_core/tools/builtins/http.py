"""``http_request``: one HTTP call to the public internet, guarded against SSRF.

The host is resolved once, every address it resolves to is checked, and the connection is
pinned to exactly those addresses (a resolver that answers only with them), so a DNS answer
that changes between the check and the connect cannot reach an internal address. Redirects
are returned, not followed: the next hop is a new call, checked again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from agent_core.errors import ToolError, ToolRefused, ToolTimeout
from agent_core.models import RiskLevel
from agent_core.tools.base import Tool, ToolContext
from agent_core.tools.decorator import tool

__all__ = [
    "HttpMethod",
    "IPAddress",
    "Lookup",
    "check_address",
    "http_request_tool",
    "method_risk",
    "url_host",
]

HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
"""The methods ``http_request`` accepts."""

_NAME = "http_request"
_READ_ONLY = frozenset({"GET", "HEAD"})
_SHOWN_HEADERS = ("Content-Type", "Content-Length", "Location", "Retry-After")
_CHUNK = 64 * 1024
IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
"""An IPv4 or IPv6 address."""
Lookup: TypeAlias = Callable[[str, int], Awaitable[list[IPAddress]]]
"""Resolves a host name (and port) to its addresses; the system resolver by default."""


def method_risk(arguments: dict[str, Any]) -> RiskLevel | None:
    """HIGH for a method that may change something; None for reads (GET, HEAD), which keep
    the tool's base risk (MEDIUM unless configured otherwise)."""
    method = arguments.get("method", "GET")
    return None if str(method).upper() in _READ_ONLY else RiskLevel.HIGH


def _is_get(arguments: dict[str, Any]) -> bool:
    """Approve-for-this-run may cover GETs only: seeing one, a person can foresee the next."""
    return str(arguments.get("method", "")).upper() == "GET"


def url_host(arguments: dict[str, Any]) -> list[str]:
    """The host the call's URL names (``"*"`` when it cannot be read)."""
    try:
        host = URL(str(arguments.get("url", ""))).host
    except ValueError:
        host = None
    return [_normalise_host(host) if host else "*"]


def check_address(address: IPAddress) -> str | None:
    """What kind of non-public address ``address`` is (``"loopback"``, ...), or None if public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return check_address(address.ipv4_mapped)
    for kind in ("loopback", "link_local", "unspecified", "multicast", "reserved", "private"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if address.is_global else "non-global"


def http_request_tool(
    *,
    allow_hosts: Iterable[str] = (),
    timeout_seconds: float = 30.0,
    max_body_bytes: int = 20_000,
    lookup: Lookup | None = None,
) -> Tool:
    """The ``http_request`` tool; hosts in ``allow_hosts`` skip the address check."""
    allowed = frozenset(_normalise_host(host) for host in allow_hosts)
    resolve = lookup or _system_lookup

    @tool(
        risk=RiskLevel.MEDIUM,
        risk_for=method_risk,
        grantable=True,
        grantable_for=_is_get,
        destinations=url_host,
        preview=_preview,
        # Our own deadline, below, fires first and says what timed out.
        timeout_seconds=timeout_seconds + 1,
    )
    async def http_request(
        method: HttpMethod,
        url: str,
        headers: dict[str, str] | None = None,
        body: str | None = None,
        *,
        context: ToolContext,
    ) -> str:
        """Send one HTTP request and return the status line, a few headers and the body.

        Only http and https URLs on public addresses; redirects are returned, not followed.

        Args:
            method: The HTTP method. GET and HEAD only read; the others may change things.
            url: The absolute http(s) URL.
            headers: Extra request headers.
            body: The request body, sent as UTF-8 text.
        """
        target = _parse(url)
        addresses = await _checked_addresses(target, allowed, resolve)
        request = _Request(method=method, url=target, headers=headers or {}, body=body)
        try:
            async with asyncio.timeout(timeout_seconds):
                return await _send(request, addresses, max_body_bytes)
        except TimeoutError:
            raise ToolTimeout(_NAME, timeout_seconds) from None
        except (aiohttp.ClientError, ValueError) as error:
            raise ToolError(_NAME, f"request failed: {error}") from None

    return http_request


async def _preview(arguments: dict[str, Any]) -> str:
    lines = [f"{arguments.get('method', 'GET')} {arguments.get('url', '')}"]
    lines += [f"{key}: {value}" for key, value in (arguments.get("headers") or {}).items()]
    if arguments.get("body"):
        lines += ["", str(arguments["body"])]
    return "\n".join(lines)


def _normalise_host(host: str) -> str:
    return host.strip().strip("[]").lower().rstrip(".")


def _parse(url: str) -> URL:
    try:
        target = URL(url)
    except ValueError as error:
        raise ToolError(_NAME, f"not a URL: {error}") from None
    if target.scheme not in ("http", "https"):
        raise ToolRefused(_NAME, f"scheme {target.scheme or '(none)'!r} is not http or https")
    if not target.host:
        raise ToolError(_NAME, f"no host in {url!r}")
    return target


async def _checked_addresses(
    target: URL, allowed: frozenset[str], lookup: Lookup
) -> list[IPAddress]:
    """Every address of the target's host; refused unless all are public or the host allowed."""
    host = _normalise_host(target.host or "")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:  # a name, not an address literal
        addresses = await lookup(host, target.port or 80)
    if not addresses:
        raise ToolError(_NAME, f"{host} has no address")
    if host in allowed:
        return addresses
    for address in addresses:
        kind = check_address(address)
        if kind is not None:
            via = "" if host == str(address) else f"{host} resolves to "
            article = "an" if kind[0] in "aeiou" else "a"
            raise ToolRefused(_NAME, f"{via}{address}, {article} {kind} address")
    return addresses


async def _system_lookup(host: str, port: int) -> list[IPAddress]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ToolError(_NAME, f"cannot resolve {host}: {error.strerror}") from None
    # The scope id ("%eth0") of a link-local IPv6 answer is not part of the address.
    found = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
    return sorted(found, key=lambda address: (address.version, address))


class _PinnedResolver(AbstractResolver):
    """Answers only for the checked host, and only with the checked addresses."""

    def __init__(self, host: str, addresses: list[IPAddress]) -> None:
        self._host = host
        self._addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if _normalise_host(host) != self._host:
            raise OSError(f"{host} was not checked; refusing to connect")
        return [_result(host, address, port) for address in self._addresses]

    async def close(self) -> None:
        """Nothing to release."""


def _result(host: str, address: IPAddress, port: int) -> ResolveResult:
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    return ResolveResult(
        hostname=host, host=str(address), port=port, family=family, proto=0, flags=0
    )


@dataclass(kw_only=True, frozen=True)
class _Request:
    """One request, as ``http_request`` was asked to send it."""

    method: str
    """The HTTP method."""
    url: URL
    """The checked URL."""
    headers: dict[str, str]
    """Extra request headers."""
    body: str | None
    """The body, sent as UTF-8."""


async def _send(request: _Request, addresses: list[IPAddress], max_body_bytes: int) -> str:
    resolver = _PinnedResolver(_normalise_host(request.url.host or ""), addresses)
    connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
    async with (
        aiohttp.ClientSession(connector=connector, trust_env=False) as session,
        session.request(
            request.method,
            request.url,
            headers=request.headers,
            data=request.body.encode() if request.body is not None else None,
            allow_redirects=False,
        ) as response,
    ):
        body = await _read_capped(response, max_body_bytes + 1)
        lines = [*_head(response), "", _decode(body[:max_body_bytes], response.charset)]
        if len(body) > max_body_bytes:
            lines.append(f"[body truncated after {max_body_bytes} bytes]")
        return "\n".join(lines)


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    body = bytearray()
    while len(body) < limit and not response.content.at_eof():
        chunk = await response.content.read(min(_CHUNK, limit - len(body)))
        if not chunk:
            break
        body += chunk
    return bytes(body)


def _head(response: aiohttp.ClientResponse) -> list[str]:
    major, minor = response.version or (1, 1)
    status = f"HTTP/{major}.{minor} {response.status} {response.reason or ''}".rstrip()
    shown = [f"{key}: {response.headers[key]}" for key in _SHOWN_HEADERS if key in response.headers]
    return [status, *shown]


def _decode(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", "replace")
