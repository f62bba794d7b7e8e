"""Standard Webhooks signing, checked against the tests' own verifier
(``tests.webhook_receiver``) and the specification's published example."""

from __future__ import annotations

import base64

import pytest

from tests.webhook_receiver import verify
from tidegate.webhooks import secret_key, signature, signed_headers

# The example of the Standard Webhooks specification's reference libraries.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_specifications_example_signs_the_same() -> None:
    assert signature(secret_key(SPEC_SECRET), SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_signed_headers_verify_and_a_changed_byte_does_not() -> None:
    headers = signed_headers(secret_key(SPEC_SECRET), "job.1", 1_700_000_000, b'{"a":1}')
    assert verify(SPEC_SECRET, headers, b'{"a":1}', now_s=1_700_000_000)
    assert not verify(SPEC_SECRET, headers, b'{"a":2}', now_s=1_700_000_000)
    assert not verify(SPEC_SECRET, {**headers, "webhook-id": "job.2"}, b'{"a":1}', 1_700_000_000)
    assert not verify(
        SPEC_SECRET, {**headers, "webhook-timestamp": "1700000001"}, b'{"a":1}', 1_700_000_000
    )
    other = "whsec_" + base64.b64encode(b"k" * 32).decode()
    assert not verify(other, headers, b'{"a":1}', now_s=1_700_000_000)
    assert not verify(SPEC_SECRET, headers, b'{"a":1}', now_s=1_700_000_000 + 301)  # stale


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "starts with whsec_"),
        ("whsec_", "holds 24 to 64 bytes, not 0"),
        ("whsec_" + base64.b64encode(b"x" * 23).decode(), "not 23"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "not 65"),
        ("whsec_not base64!", "base64"),
        ("whsec_QUJD", "not 3"),
    ],
)
def test_bad_secrets_are_refused_without_echoing_them(secret: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as caught:
        secret_key(secret)
    body = secret.removeprefix("whsec_")
    assert not body or body not in str(caught.value)
