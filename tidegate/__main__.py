"""``python -m tidegate``: the same as the ``tidegate`` command."""

import sys

from tidegate.shell.cli import main

sys.exit(main())
