"""Callback URLs: which ones a client may name, and which addresses are never called.

A completion callback makes tidegate send a request to a URL a client chose,
from inside the cluster: without limits, a way to reach what the client
cannot (server-side request forgery). Two fences:

- **The allow list** (``routes[].callback.allow``), checked at admission: a
  URL is taken only when its scheme, host and port equal those of an allowed
  prefix and its path lies under the prefix's path on a segment boundary
  (``https://hooks.example.com/a`` allows ``/a`` and ``/a/b``, never ``/ab``
  nor ``hooks.example.com.evil.test``). The path is brought into its
  canonical form first (``tidegate.paths``: dot segments, encoded slashes and
  control characters, raw or encoded at any depth, are refused), so an
  encoded ``..`` cannot climb out of the prefix. Userinfo, fragments,
  non-ASCII and overlong URLs are refused; the query is kept as sent.
- **The address screen**, at delivery: whatever the allow list says, no
  callback connects to a link-local or cloud metadata address
  (169.254.0.0/16, fe80::/10, fd00:ec2::254, 100.100.100.200), an
  unspecified or a multicast one, nor to an IPv6 address that embeds such an
  IPv4 address (mapped, compatible, NAT64, 6to4). The screen applies to the
  addresses the name resolves to at delivery time, the ones connected to, so
  a name that changes its answer between admission and delivery (DNS
  rebinding) is caught as well.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from tidegate.paths import UnsafePath, canonical_path

MAX_URL_CHARS = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

FORBIDDEN_NETWORKS: tuple[tuple[str, str], ...] = (
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("fe80::/10", "link-local"),
    ("fd00:ec2::254/128", "cloud metadata (AWS, IPv6)"),
    ("fd20:ce::254/128", "cloud metadata (Google, IPv6)"),
    ("100.100.100.200/32", "cloud metadata (Alibaba)"),
    ("168.63.129.16/32", "the Azure host's wire server"),
    ("0.0.0.0/8", "unspecified"),
    ("::/128", "unspecified"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("ff00::/8", "multicast"),
)
_FORBIDDEN = tuple((ipaddress.ip_network(net), why) for net, why in FORBIDDEN_NETWORKS)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
"""The well-known and the local-use NAT64 prefixes (RFC 6052, RFC 8215):
the IPv4 address is the last 32 bits."""
_COMPATIBLE = ipaddress.ip_network("::/96")
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
"""IPv4-translated addresses (RFC 2765): the last 32 bits too."""
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")


class BadCallback(ValueError):
    """The URL is not taken; the message says why, for the client or the operator."""


@dataclass(frozen=True)
class Target:
    """A URL taken apart: what the allow list compares."""

    scheme: str
    host: str
    port: int
    path: str
    query: str
    netloc: str

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.path}" + (
            f"?{self.query}" if self.query else ""
        )

    def under(self, prefix: Target) -> bool:
        """Same scheme, host and port; the path at or below the prefix's path."""
        if (self.scheme, self.host, self.port) != (prefix.scheme, prefix.host, prefix.port):
            return False
        base = prefix.path.rstrip("/")
        return self.path == base or self.path.startswith(base + "/") or prefix.path == "/"


def parse_target(url: str) -> Target:
    """Check and take apart an absolute http(s) URL; BadCallback says why not."""
    if len(url) > MAX_URL_CHARS:
        raise BadCallback(f"longer than {MAX_URL_CHARS} characters")
    if not _VISIBLE_ASCII.fullmatch(url):
        raise BadCallback("only visible ASCII characters (percent-encode the rest)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise BadCallback(f"not a URL: {e}") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise BadCallback("not an http or https URL")
    if "@" in parts.netloc:
        raise BadCallback("credentials in the URL are not taken")
    if parts.fragment or url.endswith("#"):
        raise BadCallback("a fragment is not taken")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise BadCallback("no host")
    if not _HOST.fullmatch(host):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise BadCallback("not a host name or an IP address") from None
    elif _NUMERIC_LABEL.fullmatch(host.rpartition(".")[2]):
        # No top-level domain is numeric: this is an IPv4 address, and only
        # its plain dotted-quad form is taken. The resolver reads 2130706433,
        # 0177.0.0.1, 0x7f.1 and 127.1 as 127.0.0.1, past the checks on names.
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise BadCallback(
                "a numeric host that is not a plain dotted-quad IPv4 address"
            ) from None
    try:
        path = canonical_path(parts.path or "/")
    except UnsafePath as e:
        raise BadCallback(f"path refused: {e}") from None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return Target(
        scheme=parts.scheme,
        host=host,
        port=port if port is not None else DEFAULT_PORTS[parts.scheme],
        path=path,
        query=parts.query,
        netloc=netloc,
    )


def checked_prefixes(prefixes: tuple[str, ...]) -> tuple[str, ...]:
    """Callback URL prefixes as a setting takes them; ValueError naming the
    first one that is not an http(s) URL prefix without a query."""
    for prefix in prefixes:
        try:
            target = parse_target(prefix)
        except BadCallback as e:
            raise ValueError(f"{prefix!r}: {e}") from None
        if target.query:
            raise ValueError(f"{prefix!r}: a prefix has no query")
    return prefixes


def allowed(url: str, allow: tuple[Target, ...]) -> str:
    """The URL in canonical form when it lies under an allowed prefix;
    BadCallback otherwise."""
    target = parse_target(url)
    if not any(target.under(prefix) for prefix in allow):
        raise BadCallback("not under any URL prefix this route allows for callbacks")
    return target.url


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if (
        any(address in prefix for prefix in _NAT64)
        or address in _TRANSLATED
        or (address in _COMPATIBLE and int(address) > 1)
    ):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def forbidden(address: str | IPAddress) -> str | None:
    """Why a callback must not connect to this address, or None when it may."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).partition("%")[0])
        inner = _embedded_ipv4(ip)
        if inner is not None:
            why = forbidden(inner)
            return f"{why}, embedded in {ip}" if why else None
    for network, why in _FORBIDDEN:
        if ip.version == network.version and ip in network:
            return f"{ip} is {why}"
    return None
