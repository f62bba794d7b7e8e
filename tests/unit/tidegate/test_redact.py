"""Every credential-bearing part of a URL is masked before anything prints it."""

from __future__ import annotations

import pytest

from tidegate.redact import redact_url

SECRET = "s3cr3t-value"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"redis://:{SECRET}@h:6379/0", "redis://:***@h:6379/0"),
        (f"redis://user:{SECRET}@h/0", "redis://user:***@h/0"),
        (f"https://{SECRET}@svc/x", "https://***@svc/x"),
        (f"redis://h:6379/0?password={SECRET}", "redis://h:6379/0?password=***"),
        (f"redis://h/0?socket_timeout=5&password={SECRET}", "redis://h/0?socket_timeout=5&password=***"),
        (f"redis://h/0?PASSWORD={SECRET}", "redis://h/0?PASSWORD=***"),
        (f"rediss://h/0?sentinel_password={SECRET}&ssl_cert_reqs=none",
         "rediss://h/0?sentinel_password=***&ssl_cert_reqs=none"),
        (f"http://svc/cb?token={SECRET}", "http://svc/cb?token=***"),
        (f"http://svc/cb?access_token={SECRET}", "http://svc/cb?access_token=***"),
        (f"http://svc/cb?api_key={SECRET}&page=2", "http://svc/cb?api_key=***&page=2"),
        (f"http://svc/cb?apikey={SECRET}", "http://svc/cb?apikey=***"),
        (f"http://svc/cb?client-secret={SECRET}", "http://svc/cb?client-secret=***"),
        (f"http://svc/cb?pass={SECRET}", "http://svc/cb?pass=***"),
        (f"http://svc/cb?pwd={SECRET}", "http://svc/cb?pwd=***"),
        (f"http://svc/cb?auth={SECRET}", "http://svc/cb?auth=***"),
        (f"http://svc/cb?X-Amz-Signature={SECRET}", "http://svc/cb?X-Amz-Signature=***"),
        (f"http://svc/cb?sig={SECRET}", "http://svc/cb?sig=***"),
        (f"http://u:{SECRET}@svc/cb?token={SECRET}", "http://u:***@svc/cb?token=***"),
        ("http://svc/cb?page=2&sort=asc", "http://svc/cb?page=2&sort=asc"),
        ("http://svc/cb?passage=2&keyboard=1", "http://svc/cb?passage=2&keyboard=1"),
        # a name that ends in a secret word is masked: the safe side of a doubt
        ("http://svc/cb?monkey=1", "http://svc/cb?monkey=***"),
        ("redis://h:6379/0", "redis://h:6379/0"),
    ],
)  # fmt: skip
def test_redacted(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert SECRET not in redact_url(url)


def test_what_does_not_parse_is_masked_when_it_may_hold_a_secret() -> None:
    assert redact_url(f"http://[::1/cb?token={SECRET}") == "***"
    assert redact_url("not a url") == "not a url"
