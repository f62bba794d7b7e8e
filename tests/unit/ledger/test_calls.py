"""Each script call class and its Lua script name the same arguments, in order.

The script's header comment lists its key slots and arguments by name
(``-- KEYS: ...``, ``-- ARGV: ...``, admit's ``per job`` lists); the call
class lists the same names (``KEYS``, its argument fields). The script's body
reads as many ``KEYS[n]`` / ``ARGV[n]`` as the header names. An argument
added on one side only fails here instead of shifting every later one.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import pytest

from tidegate.envelope import Job, Reply
from tidegate.keys import RouteKeys
from tidegate.ledger.calls import (
    CALLS,
    Admit,
    AdmitJob,
    Finish,
    PublishView,
    Quota,
    Replay,
    ScriptCall,
    Start,
    arg_names,
)

HEADER = re.compile(r"^-- (KEYS|ARGV)( per job)?:(.*)$")
CONTINUED = re.compile(r"^--\s{3,}(\S.*)$")


def header(script: str) -> dict[str, list[str]]:
    """The names each header list gives, keyed ``KEYS``, ``ARGV``, ``KEYS per job``..."""
    text = (resources.files("tidegate.ledger") / "lua" / f"{script}.lua").read_text()
    lists: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if match := HEADER.match(line):
            current = match.group(1) + (match.group(2) or "")
            lists[current] = match.group(3)
        elif current and (more := CONTINUED.match(line)):
            lists[current] += " " + more.group(1)
        else:
            current = None
    out = {}
    for name, items in lists.items():
        items = re.sub(r"\([^)]*\)", "", items)  # explanations in parentheses
        out[name] = [item.strip().removesuffix("...") for item in items.split(",")]
    return out


def body(script: str) -> str:
    text = (resources.files("tidegate.ledger") / "lua" / f"{script}.lua").read_text()
    return "\n".join(line for line in text.splitlines() if not line.startswith("--"))


@pytest.mark.parametrize("call", CALLS, ids=lambda c: c.SCRIPT)
def test_call_and_script_header_name_the_same_slots(call: type[ScriptCall[Any]]) -> None:
    names = header(call.SCRIPT)
    assert names["KEYS"] == list(call.KEYS)
    assert names["ARGV"] == arg_names(call)


@pytest.mark.parametrize("call", [c for c in CALLS if c is not Admit], ids=lambda c: c.SCRIPT)
def test_script_reads_as_many_positions_as_it_names(call: type[ScriptCall[Any]]) -> None:
    code = body(call.SCRIPT)
    keys = {int(n) for n in re.findall(r"KEYS\[(\d+)\]", code)}
    argv = {int(n) for n in re.findall(r"ARGV\[(\d+)\]", code)}
    assert keys == set(range(1, len(call.KEYS) + 1))
    names = arg_names(call)
    variadic = call in (Replay, PublishView)  # field pairs follow the named arguments
    assert argv == set(range(1, len(names) + (0 if variadic else 1)))


def test_admit_per_job_lists_match_its_loop() -> None:
    names = header("admit")
    assert names["KEYS per job"] == list(AdmitJob.PER_JOB_KEYS)
    assert names["ARGV per job"] == arg_names(AdmitJob)
    head, per_job = len(arg_names(Admit)), len(arg_names(AdmitJob))
    code = body("admit")
    assert f"for a = {head + 1}, #ARGV, {per_job} do" in code
    offsets = {int(n) for n in re.findall(r"ARGV\[a \+ (\d+)\]", code)}
    assert offsets == set(range(1, per_job))
    assert {int(n) for n in re.findall(r"KEYS\[(\d+)\]", code)} == set(
        range(1, len(Admit.KEYS) + 1)
    )


def test_a_call_sends_its_keys_and_arguments_in_the_named_order() -> None:
    keys = RouteKeys("orders")
    call = Finish.of(
        keys,
        Job(id="orders.j1", route="orders", method="POST", path="/orders", body=b"x"),
        entry_id="1-0",
        ttl_ms=5000,
        reply=Reply(503, (("A", "b"),), b"no"),
        error="busy",
        retry_due_ms=1234,
    )
    assert call.keys() == [
        keys.requests,
        keys.events,
        keys.job("orders.j1"),
        keys.result("orders.j1"),
        keys.dead,
        keys.delayed,
        keys.deadlines,
        keys.callbacks,
    ]
    argv = dict(zip(arg_names(Finish), call.argv(), strict=True))
    assert argv["retryable"] == 1
    assert argv["store_result"] == 0  # a retried attempt stores nothing
    assert argv["retry_due_ms"] == 1234
    assert argv["status"] == "503"
    assert argv["done_channel"] == keys.done
    assert (argv["meta"], argv["body"]) == (call.meta, b"x")  # a retry parks the request
    assert json.loads(call.meta)[:2] == ["POST", "/orders"]
    start = Start(
        route=keys,
        job_id="orders.j1",
        entry_id="1-0",
        consumer="c1",
        ttl_ms=1,
        max_attempts=3,
        done_channel=keys.done,
        meta="{}",
        body=b"",
    )
    assert start.argv()[:4] == ["orders.j1", "1-0", "workers", "c1"]
    quota = Quota(route=keys, tenant="acme", rate_per_s=2.0, burst=4)
    assert quota.keys() == [keys.quota("acme"), keys.refused]
    assert quota.argv() == [2.0, 4, 1]


@pytest.mark.parametrize(
    ("error", "retry_due_ms", "sends_request"),
    [
        (None, None, False),  # a success stores the result alone
        ("busy", 1234, True),  # a retry parks the request in the delayed set
        ("broken", None, True),  # a final failure copies it into the dead letter
    ],
)
def test_a_finish_sends_the_request_only_with_a_failure(
    error: str | None, retry_due_ms: int | None, sends_request: bool
) -> None:
    job = Job(id="orders.j1", route="orders", method="POST", path="/orders", body=b"x" * 1000)
    call = Finish.of(
        RouteKeys("orders"),
        job,
        entry_id="1-0",
        ttl_ms=5000,
        reply=Reply(200, (), b"ok"),
        error=error,
        retry_due_ms=retry_due_ms,
    )
    argv = dict(zip(arg_names(Finish), call.argv(), strict=True))
    expected = (job.meta(), job.body) if sends_request else ("", b"")
    assert (argv["meta"], argv["body"]) == expected
