"""What a full garbage collection costs a part, before and after ``settle_heap``.

A full (generation 2) collection walks every tracked object, and the event
loop does nothing else meanwhile: every request in flight waits. This builds
what a gateway builds at start-up (``gateway.app.build_apps`` on a config of
``--routes`` routes, with the modules it imports), then times
``gc.collect()`` ``--repeat`` times before and after
``tidegate.process.settle_heap`` (which each part calls once it has
started). Printed: the median pause in ms, and the objects a collection
walks (``gc.get_objects()``).

Nothing connects to Redis: the apps are built, not started.

Usage: python bench/gc_pauses.py [--routes 1 1000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.app import build_apps  # noqa: E402
from tidegate.process import settle_heap  # noqa: E402
from tidegate.settings import parse_settings  # noqa: E402


def config(routes: int) -> dict[str, Any]:
    return {
        "redis": {"url": "redis://127.0.0.1:1/0"},
        "gateway": {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0"},
        "routes": [
            {
                "name": f"r{n}",
                "match": {"path_prefix": f"/r{n}", "methods": ["POST"]},
                "mode": "async",
            }
            for n in range(routes)
        ],
    }


def pause_ms(repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        gc.collect()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, nargs="+", default=[1, 1000])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print("| routes | full collection before (ms) | after (ms) | objects walked before | after |")
    print("|---:|---:|---:|---:|---:|")
    kept = []
    for routes in args.routes:
        gc.unfreeze()
        kept.append(build_apps(parse_settings(config(routes), env={})))
        walked = len(gc.get_objects())
        before = pause_ms(args.repeat)
        settle_heap()
        after = pause_ms(args.repeat)
        print(f"| {routes} | {before:.1f} | {after:.1f} | {walked} | {len(gc.get_objects())} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
