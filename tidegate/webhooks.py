"""Standard Webhooks signing: what a completion callback carries so its
receiver knows it came from tidegate and was not replayed.

Per the Standard Webhooks specification (standardwebhooks.com):

- the secret is ``whsec_`` followed by the base64 of 24 to 64 random bytes;
  the bytes are the HMAC key;
- each message has an id (``webhook-id``), stable across retries of the same
  message so that a receiver can drop duplicates, and the time it was sent
  (``webhook-timestamp``, unix seconds), which a receiver checks against its
  clock to refuse replays;
- ``webhook-signature`` is ``v1,`` and the base64 of HMAC-SHA256 over
  ``id.timestamp.body`` (the body byte for byte as sent).

Only the sending side lives here; the tests verify with an implementation of
their own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SECRET_PREFIX = "whsec_"
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret; ValueError saying what is wrong."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a callback secret starts with {SECRET_PREFIX} (Standard Webhooks)")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"a callback secret is {SECRET_PREFIX} and base64") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(
            f"a callback secret holds {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes, not {len(key)}"
        )
    return key


def signature(key: bytes, message_id: str, timestamp_s: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``."""
    signed = f"{message_id}.{timestamp_s}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(key: bytes, message_id: str, timestamp_s: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one message."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": signature(key, message_id, timestamp_s, body),
    }
