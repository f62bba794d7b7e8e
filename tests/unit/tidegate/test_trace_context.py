"""W3C trace context: what is kept, what is dropped, and what is passed on."""

from __future__ import annotations

import pytest

from tidegate import trace_context
from tidegate.trace_context import TraceContext, from_headers, from_stored, parse, stored

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (VALID, TraceContext(TRACE, PARENT, "01")),
        (f"00-{TRACE}-{PARENT}-00", TraceContext(TRACE, PARENT, "00")),
        (f"00-{TRACE}-{PARENT}-03", TraceContext(TRACE, PARENT, "03")),
        # a later version: the four fields read as version 00's, the rest dropped
        (f"01-{TRACE}-{PARENT}-01", TraceContext(TRACE, PARENT, "01")),
        (f"cc-{TRACE}-{PARENT}-01-what-the-future-adds", TraceContext(TRACE, PARENT, "01")),
    ],
)
def test_a_valid_traceparent_is_kept(header: str, expected: TraceContext) -> None:
    assert parse([header]) == expected
    assert parse([header]).traceparent == f"00-{TRACE}-{PARENT}-{expected.flags}"  # type: ignore[union-attr]


INVALID = [
    "",
    "00",
    VALID + "-",  # version 00 has nothing after the flags
    VALID + "-extra",
    VALID[:-1],  # one digit short
    VALID + "1",
    f"ff-{TRACE}-{PARENT}-01",  # the forbidden version
    f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
    f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
    VALID.upper(),  # upper-case hex
    f"00-{TRACE[:-1]}G-{PARENT}-01",  # not hex
    f"00-{TRACE}-{PARENT[:-1]}z-01",
    f"00-{TRACE}-{PARENT}-0x",
    f"0-{TRACE}-{PARENT}-01",
    f"00_{TRACE}_{PARENT}_01",
    f" {VALID}",
    f"00-{TRACE}-{PARENT}-01\n",
    f"01-{TRACE}-{PARENT}-01x",  # a later version: more only after a dash
    f"00-{TRACE}\udcff-{PARENT}-01"[:55],  # a byte that is not UTF-8, as aiohttp hands it over
    "00-" + "\u0664" * 32 + f"-{PARENT}-01",  # digits that are not ASCII
    VALID * 1000,
]


@pytest.mark.parametrize("header", INVALID)
def test_an_invalid_traceparent_is_dropped_with_its_tracestate(header: str) -> None:
    assert parse([header], ["vendor=value"]) is None


def test_two_traceparents_are_invalid() -> None:
    assert parse([VALID, VALID]) is None
    assert parse([]) is None


@pytest.mark.parametrize(
    ("tracestates", "kept"),
    [
        ([], ""),
        (["rojo=00f067aa0ba902b7"], "rojo=00f067aa0ba902b7"),
        (["rojo=1,congo=t61rcWkgMzE"], "rojo=1,congo=t61rcWkgMzE"),
        (["rojo=1", "congo=2"], "rojo=1,congo=2"),  # every header, joined
        ([" rojo=1 ,\tcongo=2 "], "rojo=1,congo=2"),  # optional whitespace around members
        (["rojo=1,,congo=2"], "rojo=1,congo=2"),  # empty members are allowed
        (["fw529a3039@dt=ZmIzYTcx"], "fw529a3039@dt=ZmIzYTcx"),  # tenant@system
        (["a*b/c_d-e=v"], "a*b/c_d-e=v"),
        (["k=a value with spaces"], "k=a value with spaces"),
        # dropped whole: a bad member, a repeated key, too many members
        (["Rojo=1"], ""),  # upper case key
        (["1abc=1"], ""),  # a simple key starts with a letter
        (["rojo"], ""),
        (["rojo=1=2"], ""),
        (["rojo="], ""),
        (["rojo=tab\tinside"], ""),
        (["rojo=del\x7f"], ""),
        (["rojo=caf\u00e9"], ""),
        (["rojo=\udcff"], ""),
        (["rojo=1,rojo=2"], ""),
        (["@dt=1"], ""),
        (["t@DT=1"], ""),
        ([",".join(f"k{i}=v" for i in range(33))], ""),
        (["k=" + "v" * 257], ""),
    ],
)
def test_tracestate_members_are_checked(tracestates: list[str], kept: str) -> None:
    trace = parse([VALID], tracestates)
    assert trace is not None  # a bad tracestate never costs the traceparent
    assert trace.state == kept


def test_a_long_tracestate_loses_long_members_first_then_from_the_end() -> None:
    long = "big=" + "x" * 200
    small = [f"k{i}={'v' * 20}" for i in range(32 - 1)]  # 31 x 24 chars
    trace = parse([VALID], [",".join([small[0], long, *small[1:]])])
    assert trace is not None
    assert long not in trace.state
    assert len(trace.state) <= trace_context.MAX_TRACESTATE_CHARS
    kept = trace.state.split(",")
    assert kept == small[: len(kept)]  # the first ones, in order
    assert len(",".join(small[: len(kept) + 1])) > trace_context.MAX_TRACESTATE_CHARS


def test_headers_pass_it_on_and_a_new_parent_continues_it() -> None:
    trace = parse([VALID], ["rojo=1"])
    assert trace is not None
    assert trace.headers() == [("traceparent", VALID), ("tracestate", "rojo=1")]
    child = trace.with_parent("b7ad6b7169203331")
    assert child.traceparent == f"00-{TRACE}-b7ad6b7169203331-01"
    assert child.sampled
    assert not parse([f"00-{TRACE}-{PARENT}-00"]).sampled  # type: ignore[union-attr]
    assert TraceContext(TRACE, PARENT, "01").headers() == [("traceparent", VALID)]


def test_a_jobs_headers_and_the_stored_field_give_it_back() -> None:
    headers = (("Content-Type", "text/plain"), ("TraceParent", VALID), ("tracestate", "rojo=1"))
    trace = from_headers(headers)
    assert trace == TraceContext(TRACE, PARENT, "01", "rojo=1")
    assert from_headers((("x", "y"),)) is None
    assert from_stored(stored(trace)) == trace
    assert from_stored(stored(trace._replace(state=""))) == trace._replace(state="")
    assert stored(None) == ""
    assert from_stored("") is None
    assert from_stored("garbage\nrojo=1") is None
