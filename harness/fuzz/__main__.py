"""``python -m harness.fuzz ...``: the same as ``camrescue scenarios fuzz ...``."""

import sys

from harness.fuzz.cli import main

sys.exit(main())
