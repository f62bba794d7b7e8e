"""The table of refusals: each kind one problem type, an error status, a
metric reason; a rejection answers with what its kind says."""

from __future__ import annotations

import json

import pytest

from gateway.rejections import Kind, Rejection, for_error
from tidegate.errors import (
    NotReplicated,
    OutcomeUnknown,
    RedisCommandError,
    RedisFull,
    RedisUnavailable,
    TidegateError,
    Unencodable,
)


def test_each_kind_is_one_problem_type_with_an_error_status() -> None:
    types = [k.type for k in Kind]
    assert len(types) == len(set(types))
    for kind in Kind:
        assert kind.type == kind.name.lower().replace("_", "-")
        assert 400 <= kind.status < 600
        assert kind.reason.isidentifier()


@pytest.mark.parametrize("kind", list(Kind))
def test_a_rejection_answers_with_its_kind(kind: Kind) -> None:
    answer = Rejection(kind, "Title", "Detail.").response()
    document = json.loads(answer.body)  # type: ignore[arg-type]
    assert answer.status == document["status"] == kind.status
    assert document["type"].endswith("/" + kind.type)
    assert answer.content_type == "application/problem+json"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (RedisUnavailable("down"), Kind.REDIS_UNAVAILABLE),
        (RedisFull("OOM"), Kind.REDIS_FULL),
        (OutcomeUnknown("no answer"), Kind.OUTCOME_UNKNOWN),
        (NotReplicated("0 of 1 replicas"), Kind.NOT_REPLICATED),
        (Unencodable("not UTF-8"), Kind.BAD_HEADER),
        (RedisCommandError("NOPERM"), Kind.REDIS_ERROR),
    ],
)
def test_errors_from_below_become_the_kind_that_says_what_is_known(
    error: TidegateError, kind: Kind
) -> None:
    refused = for_error(error, route="orders")
    assert refused.kind is kind
    assert refused.route == "orders"
