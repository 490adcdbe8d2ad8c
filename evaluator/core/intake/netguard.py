"""Address checks for every outbound request we make on a user's behalf (SSRF guard).

Image URLs and webhook callbacks are chosen by the caller, so before connecting we
resolve the host and refuse anything that is not a public (global) address: loopback,
private ranges, link-local (which holds the 169.254.169.254 cloud metadata service),
carrier-grade NAT, multicast, reserved and documentation ranges, and IPv6 forms that
embed one of those (IPv4-mapped ``::ffff:a.b.c.d``, 6to4 ``2002::/16``, NAT64
``64:ff9b::/96``, Teredo). The caller then connects to the address we checked, not
to a second resolution of the name (see ``media.fetch_url``), so a DNS answer that
changes between check and connect (rebinding) cannot redirect us.

``allow_loopback`` exists for local testing only: it admits 127.0.0.0/8 and ::1
(and plain ``http://`` to them) and nothing else; every other non-global range is
still refused, including as a redirect target.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable

import httpx

from imagejury.errors import FetchFailedError, UnsafeURLError

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

#: how long name resolution may take before the URL is refused (the system resolver
#: has no timeout of its own that we control)
RESOLVE_TIMEOUT_S = 5.0

# Written out rather than trusting ipaddress.is_global alone: its tables changed
# between Python versions, and this list is what we promise (IANA special-purpose
# registries, RFC 6890 and successors).
_BLOCKED_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network", unspecified
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata 169.254.169.254
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, includes 255.255.255.255 broadcast
    )
)
_BLOCKED_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/96",  # unspecified, loopback, deprecated IPv4-compatible ::a.b.c.d
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, includes Teredo 2001::/32
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local (private)
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LOOPBACK_V4 = ipaddress.IPv4Network("127.0.0.0/8")


def _parse_ip(ip: IPAddress | str) -> IPAddress:
    if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return ip
    return ipaddress.ip_address(str(ip))


def embedded_ipv4(ip: IPAddress | str) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), if any."""
    addr = _parse_ip(ip)
    if isinstance(addr, ipaddress.IPv4Address):
        return None
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def is_loopback_address(ip: IPAddress | str) -> bool:
    """127.0.0.0/8, ::1, or an IPv6 form embedding a 127/8 address."""
    addr = _parse_ip(ip)
    inner = embedded_ipv4(addr)
    if inner is not None:
        addr = inner
    if isinstance(addr, ipaddress.IPv4Address):
        return addr in _LOOPBACK_V4
    return addr == ipaddress.IPv6Address("::1")


def is_global_address(ip: IPAddress | str) -> bool:
    """True only for a publicly routable unicast address we may connect to."""
    try:
        addr = _parse_ip(ip)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id:  # a scoped (zone) address only makes sense on a local link
            return False
        inner = embedded_ipv4(addr)
        if inner is not None:
            # the 6to4/NAT64 prefix itself is global, so the embedded v4 decides
            return is_global_address(inner)
        if any(addr in net for net in _BLOCKED_V6):
            return False
    elif any(addr in net for net in _BLOCKED_V4):
        return False
    return bool(
        addr.is_global
        and not addr.is_multicast
        and not addr.is_reserved
        and not addr.is_unspecified
        and not addr.is_loopback
        and not addr.is_link_local
        and not addr.is_private
    )


def _system_resolve(host: str, port: int) -> list[str]:
    """getaddrinfo in a daemon thread, so a hanging resolver cannot hang us."""
    result: dict[str, object] = {}

    def work() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            result["ips"] = [info[4][0] for info in infos]
        except OSError as exc:  # socket.gaierror included
            result["error"] = exc

    thread = threading.Thread(target=work, name="imagejury-resolve", daemon=True)
    thread.start()
    thread.join(RESOLVE_TIMEOUT_S)
    if thread.is_alive():
        raise FetchFailedError(f"resolving host {host!r} took longer than {RESOLVE_TIMEOUT_S:g} s")
    if "error" in result:
        # a network failure (offline, DNS down), not a refused address: fetch_failed
        raise FetchFailedError(f"host {host!r} could not be resolved ({result['error']})")
    ips: list[str] = result.get("ips") or []  # type: ignore[assignment]
    if not ips:
        raise FetchFailedError(f"host {host!r} resolved to no address")
    return list(dict.fromkeys(ips))  # de-duplicated, order kept


def resolve_host(host: str, port: int, resolver: Resolver | None = None) -> list[str]:
    """Every address ``host`` resolves to; a literal IP resolves to itself without DNS."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return [str(ipaddress.ip_address(bare))]
    except ValueError:
        pass
    return (resolver or _system_resolve)(bare, port)


def _parse(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise UnsafeURLError(f"not a valid URL ({exc})") from None
    return parsed


def _describe(url: httpx.URL) -> str:
    """A short form of a URL for messages (no query strings, which may carry tokens)."""
    host = url.host or "?"
    return f"{url.scheme}://{host}" + (f":{url.port}" if url.port else "")


def check_url(url: str | httpx.URL, allow_loopback: bool = False, *, resolver: Resolver | None = None) -> str:
    """Refuse a URL we must not connect to; return the checked IP to connect to.

    Rules: scheme ``https`` (``http`` only to loopback when ``allow_loopback``), a
    host, no credentials in the URL, and EVERY address the host resolves to must be
    global (or loopback when allowed) — one bad address refuses the URL, because we
    cannot know which one a later resolution would pick. Raises ``UnsafeURLError``.
    """
    parsed = url if isinstance(url, httpx.URL) else _parse(url)
    scheme = parsed.scheme.lower()
    if scheme not in ("https", "http"):
        raise UnsafeURLError(f"URL scheme {scheme or '(none)'!r} is not allowed; use https://")
    if not parsed.host:
        raise UnsafeURLError("URL has no host")
    if parsed.userinfo:
        raise UnsafeURLError("URL must not carry credentials (user:password@)")
    host = parsed.raw_host.decode("ascii").rstrip(".")
    if not host:
        raise UnsafeURLError("URL has no host")
    port = parsed.port or (443 if scheme == "https" else 80)
    ips = resolve_host(host, port, resolver)
    for ip in ips:
        if is_global_address(ip):
            if scheme == "http":
                raise UnsafeURLError(f"plain http:// is not allowed for {_describe(parsed)}; use https://")
            continue
        if allow_loopback and is_loopback_address(ip):
            continue
        logger.info("refused URL %s: %s resolves to non-global address %s", _describe(parsed), host, ip)
        raise UnsafeURLError(
            f"refused to fetch {_describe(parsed)}: it resolves to {ip}, which is not a public "
            "address (loopback, private, link-local/metadata, CGNAT, multicast or reserved)"
        )
    return ips[0]


def validate_callback_url(url: str, allow_loopback: bool = False) -> str:
    """Check a callback URL's form at submission time, without resolving it.

    ``https://`` with a host and no credentials; a host written as an IP literal must
    be global (``localhost``, 127.0.0.0/8 and ::1 over http or https only when
    ``allow_loopback``). Names are resolved and checked again with ``check_url`` when
    the webhook is sent. Raises ``ValueError`` (so pydantic reports it on the field).
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    scheme = parsed.scheme.lower()
    if not parsed.host:
        raise ValueError("must be an absolute https:// URL with a host")
    if parsed.userinfo:
        raise ValueError("must not carry credentials (user:password@)")
    host = parsed.raw_host.decode("ascii").rstrip(".").lower()
    try:
        literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    loopback = host == "localhost" or (literal is not None and is_loopback_address(literal))
    if allow_loopback and loopback and scheme in ("http", "https"):
        return url
    if scheme != "https":
        raise ValueError(f"must use https:// (got {scheme or 'no'} scheme)")
    if loopback or (literal is not None and not is_global_address(literal)):
        raise ValueError(f"host {host} is not a public address")
    return url


def pinned_request(url: httpx.URL, ip: str) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
    """The (URL, headers, extensions) that make httpx connect to the checked ``ip`` for ``url``.

    The URL's host is replaced by the IP so httpx does not resolve the name again (no
    DNS rebinding between check and connect); the ``Host`` header carries the name for
    the server, and the ``sni_hostname`` extension makes TLS send the name and verify
    the certificate against it, not against the IP. Callers add their own headers.
    """
    host = url.raw_host.decode("ascii")
    bracketed = f"[{host}]" if ":" in host else host
    headers = {"Host": bracketed + (f":{url.port}" if url.port else "")}
    extensions: dict[str, str] = {}
    try:
        ipaddress.ip_address(host)
        literal = True  # an IP in the URL: TLS checks the certificate against that IP
    except ValueError:
        literal = False
    if url.scheme.lower() == "https" and not literal:
        extensions["sni_hostname"] = host
    return url.copy_with(host=ip, fragment=None), headers, extensions
