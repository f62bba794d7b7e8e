"""The job envelope: what a payload digest covers."""

from __future__ import annotations

import pytest

from tidegate.envelope import Job, parse_done


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


@pytest.mark.parametrize(
    ("data", "job_id", "ended"),
    [
        (b"orders.abc", "orders.abc", None),
        (b"orders.abc\nsucceeded\n17\n201\n[]\n", "orders.abc", ("succeeded", 17, 201, b"")),
        (
            b'orders.abc\ndead_lettered\n5\n502\n[["A","b"]]\n\x00\xff\nbody',
            "orders.abc",
            ("dead_lettered", 5, 502, b"\x00\xff\nbody"),
        ),
        (b"orders.abc\nsucceeded\nsoon\n201\n[]\nx", "orders.abc", None),  # not a time
        (b"orders.abc\nsucceeded\n17\nok\n[]\nx", "orders.abc", None),  # not a status
        (b"orders.abc\nsucceeded\n17\n201\n{not json\nx", "orders.abc", None),
        (b"orders.abc\nsucceeded\n17\n201\n[1]\nx", "orders.abc", None),  # not header pairs
        (b"\xff\xfe", "\ufffd\ufffd", None),
    ],
)
def test_done_notifications_carry_the_outcome_or_only_the_id(
    data: bytes, job_id: str, ended: tuple[str, int, int, bytes] | None
) -> None:
    found_id, found = parse_done(data)
    assert found_id == job_id
    if ended is None:
        assert found is None
    else:
        assert found is not None
        assert (found.state, found.ended_ms, found.reply.status, found.reply.body) == ended
