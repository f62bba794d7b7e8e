"""``python -m tidegate``: the same as the ``tidegate`` command."""

import sys

from tidegate.cli import main

sys.exit(main())
