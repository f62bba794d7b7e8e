"""The ``tidegate`` command: the one module above the parts.

It parses arguments, loads and validates the config file, and dispatches to
``gateway``, ``worker``, ``scaler`` or the shared core. Parts are imported inside their
subcommand, so ``tidegate check`` does not load aiohttp's server and a broken
optional part cannot break the others. Operator-facing errors (ConfigError,
RedisUnavailable) print one clear message and exit non-zero, never a trace.

Exit codes: 0 ok, 1 the work failed (demo saw something unexpected, Redis
unreachable), 2 invalid usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

from shell import logs
from tidegate import __version__
from tidegate.errors import ConfigError, RedisUnavailable
from tidegate.process import event_loop_name
from tidegate.settings import Settings, load_settings, parse_listen
from tidegate.settings.loading import unknown_variables

log = logging.getLogger("tidegate")

CONFIG_ENV = "TIDEGATE_CONFIG"


def positive_int(value: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: must be at least 1")
    return number


def seconds(value: str) -> float:
    """An argparse type: a duration or a count of ms, finite and not negative."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise argparse.ArgumentTypeError(f"{value!r}: must be a finite number, 0 or more")
    return number


def listen_address(value: str) -> str:
    """An argparse type: ``host:port`` as the config's listen settings take it."""
    try:
        parse_listen(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        default=os.environ.get(CONFIG_ENV),
        required=CONFIG_ENV not in os.environ,
        help=f"path of the YAML config file (or ${CONFIG_ENV})",
    )


EXAMPLES = {
    "gateway": "tidegate gateway -c tidegate.yaml",
    "worker": (
        "tidegate worker -c tidegate.yaml --route orders --upstream http://127.0.0.1:8000\n"
        "  tidegate worker -c tidegate.yaml --route orders --app myapp.jobs:handle\n"
        "  tidegate worker -c tidegate.yaml --route orders --app myapp.jobs:insert_many "
        "--batch-size 64"
    ),
    "scaler": "tidegate scaler -c tidegate.yaml --kubeconfig ~/.kube/config",
    "demo": "tidegate demo --requests 200",
    "status": "tidegate status -c tidegate.yaml --json",
    "replay": "tidegate replay -c tidegate.yaml --route orders",
    "check": "tidegate check -c tidegate.yaml",
}
"""An example of each command, shown by its ``--help``."""


def _command(
    sub: Any, common: argparse.ArgumentParser, name: str, summary: str
) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` says what it does and shows an example."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        parents=[common],
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog="example:\n  " + EXAMPLES[name],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tidegate",
        description="Queue-backlog autoscaler and throttling gateway for Kubernetes.",
    )
    parser.add_argument("--version", action="version", version=f"tidegate {__version__}")
    logs.add_options(parser, defaults=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    logs.add_options(common, defaults=False)

    p = _command(sub, common, "gateway", "run the gateway (public + admin port)")
    _config_arg(p)

    p = _command(sub, common, "worker", "consume one route: relay to a service or run a handler")
    _config_arg(p)
    p.add_argument("--route", required=True, help="route name from the config")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--upstream", help="base URL of the unchanged HTTP service to relay to")
    what.add_argument("--app", help="module:function of an async Python handler")
    what.add_argument(
        "--check",
        action="store_true",
        help="exit 0 when a worker of this route runs on this host (liveness probe), else 1",
    )
    p.add_argument(
        "--compensate",
        help="module:function undoing a dead-lettered job (with --app; a relay "
        "calls the route's worker.compensate_path instead)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        metavar="N",
        help="with --app: call the function with a list of up to N jobs (see worker.batch)",
    )
    p.add_argument(
        "--batch-wait-ms",
        type=seconds,
        default=50.0,
        metavar="M",
        help="with --batch-size: call with fewer than N jobs M ms after the first (default 50)",
    )
    p.add_argument(
        "--concurrency",
        type=positive_int,
        help="jobs at once, 1 or more (default: the route's worker.concurrency)",
    )
    p.add_argument(
        "--metrics-listen",
        type=listen_address,
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (off by default)",
    )
    p.add_argument(
        "--grace-s",
        type=seconds,
        default=25.0,
        help="on SIGTERM, seconds jobs in flight may take (keep below the pod's grace period)",
    )

    p = _command(sub, common, "scaler", "run the scaler (controller) for every scaled route")
    _config_arg(p)
    p.add_argument(
        "--kubeconfig",
        default=None,
        help="kubeconfig path (default: in-cluster config, then $KUBECONFIG or ~/.kube/config)",
    )

    p = _command(sub, common, "demo", "the whole system on this machine, no setup")
    p.add_argument("--duration", type=seconds, default=60.0, help="upper bound in seconds")
    p.add_argument("--requests", type=positive_int, default=200, help="size of the traffic burst")
    p.add_argument(
        "--keep",
        action="store_true",
        help="after the scenario, keep everything running (and the status page up) until Ctrl-C",
    )

    p = _command(sub, common, "status", "one row per route: backlog, pending")
    _config_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = _command(sub, common, "replay", "rebuild a route's job projections from its event log")
    _config_arg(p)
    p.add_argument("--route", required=True)

    p = _command(sub, common, "check", "validate a config file")
    _config_arg(p)
    return parser


def _load(path: str, *, tenants: bool = False) -> Settings:
    """The config; the tenants file is read only for the parts that use it."""
    return load_settings(path, tenants=tenants)


_CANNOT_LISTEN = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})
"""Binding a listener failed: a port in use, an address not here, a port
below 1024 without the right."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.log_level, args.log_format)
    for line in unknown_variables(os.environ):
        log.warning(line)
    try:
        event_loop_name()  # checked for every subcommand, whether it runs a loop or not
        return _dispatch(args)
    except ConfigError as e:
        for problem in e.problems:
            logs.fatal(problem)
        return 2
    except RedisUnavailable as e:
        logs.fatal(f"{e}. Is Redis running at the configured URL?")
        return 1
    except OSError as e:
        if e.errno not in _CANNOT_LISTEN:
            logs.fatal(f"failed: {e}", exc=e)
            return 1
        logs.fatal(
            f"cannot listen: {e}. Another process may hold the port; "
            "choose another in the config (gateway.listen, gateway.admin_listen, "
            "scaler.admin_listen) or with --metrics-listen."
        )
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug: one line (or JSON object) with the trace, exit 1
        logs.fatal(f"unexpected error: {e!r} (a bug; --log-level DEBUG shows where)", exc=e)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    command: str = args.command
    if command == "check":
        settings = _load(args.config, tenants=True)
        print(f"{args.config}: valid ({len(settings.routes)} route(s))")
        return 0
    if command == "gateway":
        from gateway.app import run as run_gateway

        run_gateway(_load(args.config, tenants=True))
        return 0
    if command == "worker":
        from worker.main import run as run_worker

        settings = _load(args.config)
        if args.check:
            from worker.main import check_alive

            return asyncio.run(check_alive(settings, args.route))
        if settings.route(args.route).mode == "proxy":
            raise ConfigError([f"--route {args.route}: proxy routes have no queue to consume"])
        run_worker(
            settings,
            args.route,
            upstream=args.upstream,
            app=args.app,
            compensate=args.compensate,
            concurrency=args.concurrency,
            grace_s=args.grace_s,
            metrics_listen=args.metrics_listen,
            batch_size=args.batch_size,
            batch_wait_ms=args.batch_wait_ms,
        )
        return 0
    if command == "scaler":
        from scaler.main import run as run_scaler

        run_scaler(_load(args.config), args.config, kubeconfig=args.kubeconfig)
        return 0
    if command == "demo":
        from shell.demo import run_demo

        return run_demo(duration_s=args.duration, burst=args.requests, keep=args.keep)
    if command == "status":
        from shell.ops import print_status

        return asyncio.run(print_status(_load(args.config), as_json=args.json))
    if command == "replay":
        from shell.ops import replay_route

        return asyncio.run(replay_route(_load(args.config), args.route))
    raise AssertionError(command)


if __name__ == "__main__":
    sys.exit(main())
