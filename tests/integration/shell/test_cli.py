"""The ``tidegate`` command as an operator runs it: real subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from redis.asyncio import Redis

from shell.local_redis import free_port
from tests.conftest import wait_until
from tests.redis_cluster import RedisCluster
from tidegate.envelope import Job
from tidegate.keys import RouteKeys, new_job_id
from tidegate.ledger import Ledger, throttle_record, view_record
from tidegate.scaler_view import ScalerView
from tidegate.settings import Settings
from tidegate.throttle import Throttle


def tidegate(*args: str, timeout_s: float = 60, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidegate", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        **kwargs,
    )


def write_config(path: Path, redis_url: str, **gateway: Any) -> Path:
    config = {
        "redis": {"url": redis_url},
        "gateway": gateway,
        "routes": [
            {"name": "orders", "match": {"path_prefix": "/orders"}, "wait_s": 30},
            {
                "name": "reads",
                "match": {"path_prefix": "/r", "methods": ["GET"]},
                "mode": "proxy",
                "upstream": "http://127.0.0.1:1",
            },
        ],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_check_accepts_a_valid_file(tmp_path: Path) -> None:
    result = tidegate("check", "-c", str(write_config(tmp_path / "t.yaml", "redis://h:1/0")))
    assert result.returncode == 0, result.stderr
    assert "valid (2 route(s))" in result.stdout


def test_check_names_every_offending_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "routes:\n"
        "  - name: orders\n"
        "    match: {path_prefix: /orders}\n"
        "    max_body_bytez: 10\n"
        "    wait_s: -1\n"
    )
    result = tidegate("check", "-c", str(path))
    assert result.returncode == 2
    assert "routes[0].max_body_bytez: unknown key" in result.stderr
    assert "routes[0].wait_s: Input should be greater than or equal to 0" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_missing_file_and_env_override(tmp_path: Path) -> None:
    result = tidegate("check", "-c", str(tmp_path / "none.yaml"))
    assert result.returncode == 2
    assert "cannot read" in result.stderr
    path = write_config(tmp_path / "t.yaml", "redis://h:1/0")
    env = {"TIDEGATE_REDIS_URL": "mysql://nope", "PATH": "/usr/bin:/bin"}
    result = tidegate("check", "-c", str(path), env=env)
    assert result.returncode == 2
    assert "redis.url: must start with" in result.stderr


def test_worker_refuses_a_proxy_route(tmp_path: Path) -> None:
    path = write_config(tmp_path / "t.yaml", "redis://127.0.0.1:1/0")
    result = tidegate("worker", "-c", str(path), "--route", "reads", "--upstream", "http://x")
    assert result.returncode == 2
    assert "proxy routes have no queue" in result.stderr
    result = tidegate("worker", "-c", str(path), "--route", "nope", "--upstream", "http://x")
    assert result.returncode == 2
    assert "no such route (configured: orders, reads)" in result.stderr


@pytest.mark.parametrize(
    "upstream", ["user:s3cret@svc:8080", "ftp://user:s3cret@svc/", "http://", "s3cret"]
)
def test_worker_refuses_an_upstream_that_is_not_an_http_url(tmp_path: Path, upstream: str) -> None:
    path = write_config(tmp_path / "t.yaml", "redis://127.0.0.1:1/0")
    result = tidegate("worker", "-c", str(path), "--route", "orders", "--upstream", upstream)
    assert result.returncode == 2
    assert "--upstream: an upstream is an http:// or https:// URL" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout


async def test_replay_and_status_commands(
    tmp_path: Path, redis_url: str, redis: Redis, ledger: Ledger, settings: Settings
) -> None:
    path = write_config(tmp_path / "t.yaml", redis_url)
    jobs = [
        Job(
            id=new_job_id("orders"),
            route="orders",
            method="POST",
            path="/orders",
            body=str(i).encode(),
        )
        for i in range(5)
    ]
    for job in jobs:
        await ledger.admit(settings.route("orders"), job, None)
    await ledger.cancel(jobs[0].id)
    before = {job.id: await ledger.projection(job.id) for job in jobs}
    for job in jobs:
        await redis.delete(RouteKeys("orders").job(job.id))
    result = await asyncio.to_thread(tidegate, "replay", "-c", str(path), "--route", "orders")
    assert result.returncode == 0, result.stderr
    assert "replayed 6 event(s) of 5 job(s)" in result.stdout
    assert result.stderr == ""  # a small log shows no progress
    assert {job.id: await ledger.projection(job.id) for job in jobs} == before

    view = {
        "arrival_rate": 12.5,
        "drain_rate": 10.0,
        "ready_replicas": 2,
        "desired_replicas": 3,
        "needed_replicas": 3,
        "exhausted": False,
        "reason": "up: sized by rates",
    }
    published = ScalerView.from_dict(view)
    await view_record.Views(redis).publish("orders", published, interval_s=1)
    result = await asyncio.to_thread(tidegate, "status", "-c", str(path), "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["routes"]
    assert rows["orders"]["waiting"] == 5
    assert rows["orders"]["source"] == "no-group"
    assert rows["orders"]["scaler"] == published.as_dict()
    assert view.items() <= rows["orders"]["scaler"].items()
    assert rows["reads"] == {"mode": "proxy", "upstream": "http://127.0.0.1:1"}
    table = await asyncio.to_thread(tidegate, "status", "-c", str(path))
    orders = next(line for line in table.stdout.splitlines() if line.startswith("orders"))
    assert orders.split()[:6] == ["orders", "5", "0", "12.5", "10.0", "2/3"]
    state = Throttle(12.0, 24, "max_replicas", "needs 9, may have 4", 1.0, 429)
    await throttle_record.Throttles(redis).apply("orders", state, ttl_s=30, announce=False)
    table = await asyncio.to_thread(tidegate, "status", "-c", str(path))
    assert "THROTTLED at 12.0/s (max_replicas)" in table.stdout
    result = await asyncio.to_thread(tidegate, "status", "-c", str(path), "--json")
    assert json.loads(result.stdout)["routes"]["orders"]["throttle"]["burst"] == 24
    await redis.delete(RouteKeys("orders").scaler)  # no scaler publishing: said so
    table = await asyncio.to_thread(tidegate, "status", "-c", str(path))
    assert "no scaler view" in table.stdout


def test_status_with_redis_down_is_a_clear_error(tmp_path: Path) -> None:
    path = write_config(tmp_path / "t.yaml", f"redis://127.0.0.1:{free_port()}/0")
    result = tidegate("status", "-c", str(path))
    assert result.returncode == 1
    assert "Redis unreachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_runs_the_whole_path(redis_server: Any) -> None:
    """The README's first command: no setup, exit 0, plain lines without a TTY,
    even with the default admin ports (9090, 9091) taken."""
    with contextlib.ExitStack() as taken:
        for port in (9090, 9091):
            holder = taken.enter_context(socket.socket())
            with contextlib.suppress(OSError):  # in use already: taken all the same
                holder.bind(("0.0.0.0", port))
                holder.listen()
        result = tidegate("demo", "--duration", "60", "--requests", "50", timeout_s=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    assert "all steps passed" in result.stdout
    assert "Redis: " in result.stdout
    assert "then throttled at the front" in result.stdout  # the surge
    assert "throttle lifted" in result.stdout
    assert "status page: http://127.0.0.1:" in result.stdout


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children, their children, ...), from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rpartition(")")[2].split()
            parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _sigint_as_in_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
async def test_demo_keep_stays_up_until_a_signal_then_leaves_nothing_behind(
    sig: signal.Signals,
) -> None:
    """--keep serves its status page until Ctrl-C, SIGTERM or SIGHUP; each
    stops every part it started (its own Redis, the gateway, the worker, the
    scaler and the scaler's workers) and removes its temporary folders."""
    env = {k: v for k, v in os.environ.items() if k != "TIDEGATE_REDIS_URL"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tidegate",
        "demo",
        "--keep",
        "--requests",
        "50",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        # Ctrl-C reaches a foreground program with SIGINT at its default: a
        # test run started in the background (nohup, '&') ignores SIGINT,
        # and a child would inherit that and never see the signal.
        preexec_fn=_sigint_as_in_a_terminal,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        while True:
            line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
            assert line, "the demo ended before --keep said it stays up:\n" + "".join(seen)
            seen.append(line)
            found = re.search(r"--keep: still running; status page (http://\S+/),", line)
            if found:
                page = found.group(1)
                break
        async with aiohttp.ClientSession() as http:
            async with http.get(page) as r:
                assert r.status == 200
                assert r.content_type == "text/html"
                assert "tidegate status" in await r.text()
            async with http.get(page + "status") as r:
                assert set((await r.json())["routes"]) >= {"orders", "reports", "exports"}
        started = descendants(proc.pid)
        assert len(started) >= 5  # Redis, gateway, worker, scaler, its workers
        proc.send_signal(sig)
        rest = (await asyncio.wait_for(proc.stdout.read(), 60)).decode()
        assert await proc.wait() == 0, "".join(seen) + rest
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    out = "".join(seen) + rest
    assert "all steps passed" in out, out
    assert "stopped with SIGTERM: gateway exit 0" in out, out
    assert "Traceback" not in out, out
    assert [pid for pid in started if alive(pid)] == []
    folders = re.findall(r"(/\S*tidegate-demo-[^/\s]+)", out)
    assert folders
    assert [f for f in folders if await asyncio.to_thread(os.path.exists, f)] == []


def test_demo_runs_on_a_redis_cluster(redis_cluster: RedisCluster) -> None:
    """Every piece of the demo (gateway, workers, scaler, status) on a cluster
    named by the environment, as the README says."""
    redis_cluster.flush()
    env = {**os.environ, "TIDEGATE_REDIS_URL": redis_cluster.url, "TIDEGATE_REDIS_MODE": "cluster"}
    result = tidegate("demo", "--duration", "60", "--requests", "50", timeout_s=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    assert "all steps passed" in result.stdout
    assert "using TIDEGATE_REDIS_URL" in result.stdout
    assert "throttle lifted" in result.stdout


async def test_worker_check_follows_a_live_worker(tmp_path: Path, redis_url: str) -> None:
    path = write_config(tmp_path / "t.yaml", redis_url)
    check = ("worker", "-c", str(path), "--route", "orders", "--check")
    before = await asyncio.to_thread(tidegate, *check)
    assert before.returncode == 1
    assert "no live worker" in before.stdout
    metrics_port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tidegate",
        "worker",
        "-c",
        str(path),
        "--route",
        "orders",
        "--upstream",
        "http://127.0.0.1:1",
        "--metrics-listen",
        f"127.0.0.1:{metrics_port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:

        async def alive() -> bool:
            return (await asyncio.to_thread(tidegate, *check)).returncode == 0

        await wait_until(alive, timeout_s=20, what="the worker's liveness record")
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{metrics_port}/metrics") as r,
        ):
            assert "tidegate_worker_in_flight_jobs" in await r.text()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    after = await asyncio.to_thread(tidegate, *check)
    assert after.returncode == 1  # a clean exit removes the record at once


@pytest.mark.parametrize("taken", ["listen", "admin_listen"])
def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path, redis_url: str, taken: str) -> None:
    ports = {"listen": free_port(), "admin_listen": free_port()}
    path = write_config(
        tmp_path / "t.yaml", redis_url, **{k: f"127.0.0.1:{v}" for k, v in ports.items()}
    )
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports[taken]))
        holder.listen()
        result = tidegate("gateway", "-c", str(path), timeout_s=30)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("tidegate:")]
    assert "cannot listen" in line
    assert str(ports[taken]) in line


async def test_replay_shows_progress_on_a_large_log(
    redis: Redis, ledger: Ledger, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A line per interval on stderr: how many of how many, and the share."""
    from shell.ops import replay_route

    for i in range(1200):
        job = Job(id=new_job_id("orders"), route="orders", method="POST", path="/o", body=b"%d" % i)
        await ledger.admit(settings.route("orders"), job, None)
    assert await replay_route(settings, "orders", every_s=0) == 0
    out, err = capsys.readouterr()
    lines = [re.sub(r", \d+/s$", "", line) for line in err.splitlines()]
    assert lines == [
        "route orders: 500 of 1200 event(s) replayed (42%)",
        "route orders: 1000 of 1200 event(s) replayed (83%)",
        "route orders: 1200 of 1200 event(s) replayed (100%)",
    ]
    assert "replayed 1200 event(s) of 1200 job(s)" in out
