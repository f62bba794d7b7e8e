"""``python -m simulator`` from a checkout: the stochastic comparison, or the
fluid model with ``--fluid``; ``--trace NAME`` (repeatable) picks traces."""

from __future__ import annotations

import argparse

import simulator
from simulator.fluid import compare, table
from simulator.pooled import SEEDS, compare_stochastic, stochastic_table
from simulator.traces import TRACES


def main() -> None:
    parser = argparse.ArgumentParser(
        description=simulator.__doc__.splitlines()[0] if simulator.__doc__ else None
    )
    parser.add_argument("--trace", choices=[t.name for t in TRACES], action="append")
    parser.add_argument(
        "--fluid", action="store_true", help="the deterministic fluid model instead"
    )
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="stochastic runs per trace")
    args = parser.parse_args()
    chosen = tuple(t for t in TRACES if not args.trace or t.name in args.trace)
    if args.fluid:
        print(table(compare(chosen)))
    else:
        print(stochastic_table(compare_stochastic(chosen, tuple(range(1, args.seeds + 1)))))


main()
