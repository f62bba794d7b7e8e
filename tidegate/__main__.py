"""``python -m tidegate``: the same as the ``tidegate`` command."""

import sys

from shell.cli import main

sys.exit(main())
