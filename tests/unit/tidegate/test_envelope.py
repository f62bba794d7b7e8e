"""The job envelope: what a payload digest covers."""

from __future__ import annotations

from tidegate.envelope import Job


def test_payload_digest_ignores_headers_but_not_body_or_query() -> None:
    base = Job(id="orders.x", route="orders", method="POST", path="/orders", body=b"a")
    same = Job(
        id="orders.y",
        route="orders",
        method="POST",
        path="/orders",
        body=b"a",
        headers=(("Date", "now"),),
    )
    assert base.payload_digest() == same.payload_digest()
    assert base.payload_digest() != base._replace(body=b"b").payload_digest()
    assert base.payload_digest() != base._replace(query="x=1").payload_digest()
