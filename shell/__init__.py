"""The shell: the one layer above the parts, in a folder of its own (beside
``gateway``, ``worker`` and ``scaler``, not inside the kernel ``tidegate``).

The ``tidegate`` command (``cli``) parses arguments and dispatches to a part;
``ops`` holds the operator commands that need only Redis (``status``,
``replay``); ``demo`` runs the whole system on one machine, starting every
part as a process; ``sample_service`` and ``local_redis`` are the
developer's tools the demo, the tests and the benchmarks share. Nothing below
imports the shell (an import-linter contract holds it).
"""
