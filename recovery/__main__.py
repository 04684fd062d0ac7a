"""``python -m recovery``: the engine's command line (see recovery/cli.py)."""

import sys

from recovery.cli import main

sys.exit(main())
