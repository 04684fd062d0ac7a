"""``python -m recovery.xr872``: the XR872 engine's command line (see cli.py)."""

import sys

from recovery.xr872.cli import main

sys.exit(main())
