"""Which callback URLs a client may name, and which addresses are never called.

Table-driven, as an attacker would try them: look-alike hosts, other ports
and schemes, credentials, encoded and double-encoded traversals, bytes that
are not ASCII, and addresses of cloud metadata services however written.
"""

from __future__ import annotations

import pytest

from tidegate.callback_urls import BadCallback, allowed, forbidden, parse_target

ALLOW = (
    parse_target("https://hooks.example.com/tidegate/"),
    parse_target("http://127.0.0.1:8099/cb"),
)


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("https://hooks.example.com/tidegate/", "https://hooks.example.com/tidegate/"),
        ("https://hooks.example.com/tidegate", "https://hooks.example.com/tidegate"),
        (
            "https://hooks.example.com/tidegate/a/b?x=1",
            "https://hooks.example.com/tidegate/a/b?x=1",
        ),
        ("https://HOOKS.example.com./tidegate/a", "https://hooks.example.com/tidegate/a"),
        ("https://hooks.example.com:443/tidegate/a", "https://hooks.example.com:443/tidegate/a"),
        ("https://hooks.example.com//tidegate//a", "https://hooks.example.com/tidegate/a"),
        ("https://hooks.example.com/%74idegate/a", "https://hooks.example.com/tidegate/a"),
        ("http://127.0.0.1:8099/cb", "http://127.0.0.1:8099/cb"),
        ("http://127.0.0.1:8099/cb/orders/1", "http://127.0.0.1:8099/cb/orders/1"),
    ],
)
def test_urls_under_an_allowed_prefix_are_taken_in_canonical_form(url: str, canonical: str) -> None:
    assert allowed(url, ALLOW) == canonical


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://hooks.example.com/tidegatex", "not under"),
        ("https://hooks.example.com/other/", "not under"),
        ("https://hooks.example.com.evil.test/tidegate/", "not under"),
        ("https://evil.test/hooks.example.com/tidegate/", "not under"),
        ("http://hooks.example.com/tidegate/", "not under"),  # scheme
        ("https://hooks.example.com:8443/tidegate/", "not under"),  # port
        ("http://127.0.0.1:8098/cb", "not under"),
        ("http://127.0.0.1/cb", "not under"),
        ("http://localhost:8099/cb", "not under"),
        ("http://[::1]:8099/cb", "not under"),
        ("https://hooks.example.com/tidegate/../admin", "path refused"),
        ("https://hooks.example.com/tidegate/%2e%2e/admin", "path refused"),
        ("https://hooks.example.com/tidegate/%252e%252e/admin", "path refused"),
        ("https://hooks.example.com/tidegate/%2fadmin", "path refused"),
        ("https://hooks.example.com/tidegate/%00", "path refused"),
        ("https://hooks.example.com/tidegate/a\\b", "path refused"),
        ("https://hooks.example.com/tidegate/..;/admin", "path refused"),
        ("http://2130706433:8099/cb", "numeric host"),
        ("http://0177.0.0.1:8099/cb", "numeric host"),
        ("http://0x7f.0.0.1:8099/cb", "numeric host"),
        ("http://0x7f000001:8099/cb", "numeric host"),
        ("http://127.1:8099/cb", "numeric host"),
        ("http://127.0.0.01:8099/cb", "numeric host"),
        ("http://169.254.43518:8099/cb", "numeric host"),
        ("https://hooks.example.com/tidegate/%2e%2e;/admin", "path refused"),
        ("https://hooks.example.com/tidegate/..%3B/admin", "path refused"),
        ("https://hooks.example.com/tidegate/.;x/a", "path refused"),
        ("https://user:pw@hooks.example.com/tidegate/", "credentials"),
        ("https://hooks.example.com@evil.test/tidegate/", "credentials"),
        ("https://hooks.example.com/tidegate/#frag", "fragment"),
        ("https://hooks.example.com/tidegate/#", "fragment"),
        ("ftp://hooks.example.com/tidegate/", "not an http"),
        ("javascript:alert(1)", "not an http"),
        ("//hooks.example.com/tidegate/", "not an http"),
        ("/tidegate/", "not an http"),
        ("", "visible ASCII"),
        ("https://hooks.example.com/tidegate/ a", "visible ASCII"),
        ("https://hooks.example.com/tidegate/\u00e9", "visible ASCII"),
        ("https://hooks.example.com/tidegate/\udcff", "visible ASCII"),
        ("https://hooks.example.com/tidegate/\r\nX-Evil: 1", "visible ASCII"),
        ("https://xn--hks-qqa.example.com/tidegate/", "not under"),
        ("https://hooks.example.com:99999/tidegate/", "not a URL"),
        ("https://hooks.example.com:-1/tidegate/", "not a URL"),
        ("https://hooks_example.com/tidegate/", "not a host"),
        ("https:///tidegate/", "no host"),
        ("https://hooks.example.com/tidegate/" + "a" * 2100, "longer than"),
    ],
)
def test_urls_outside_the_allow_list_or_malformed_are_refused(url: str, why: str) -> None:
    with pytest.raises(BadCallback, match=why):
        allowed(url, ALLOW)


def test_a_prefix_of_only_the_origin_allows_every_path() -> None:
    origin = (parse_target("https://hooks.example.com"),)
    assert allowed("https://hooks.example.com/any/where", origin).endswith("/any/where")
    with pytest.raises(BadCallback):
        allowed("https://hooks.example.community/x", origin)


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "169.254.0.1",
        "169.254.255.255",
        "fe80::1",
        "fe80::1%eth0",
        "fd00:ec2::254",
        "100.100.100.200",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "255.255.255.255",
        "ff02::1",
        "::ffff:169.254.169.254",  # IPv4-mapped
        "::169.254.169.254",  # IPv4-compatible
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "fd20:ce::254",  # Google's metadata, IPv6
        "168.63.129.16",  # Azure's wire server
        "::ffff:0:a9fe:a9fe",  # IPv4-translated 169.254.169.254
        "64:ff9b:1::a9fe:a9fe",  # local-use NAT64 of 169.254.169.254
        "64:ff9b:1:ffff::a9fe:a9fe",
    ],
)
def test_link_local_and_metadata_addresses_are_forbidden(address: str) -> None:
    assert forbidden(address) is not None


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::1",
        "10.1.2.3",
        "192.168.1.1",
        "93.184.216.34",
        "2606:4700::1111",
        "::ffff:10.0.0.1",
        "169.253.255.255",
        "169.255.0.0",
        "fd00:ec2::253",
    ],
)
def test_other_addresses_may_be_called(address: str) -> None:
    assert forbidden(address) is None
