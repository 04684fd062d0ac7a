"""labgrid support for cameras with U-Boot 1.1.4 (the optional extra ``camrescue[labgrid]``).

Importing this package registers with labgrid's target factory:

* :class:`~harness.labgrid.ubootdriver.UBoot114Driver`, a console driver for U-Boot
  1.1.4's simple command parser, which has no ``$?``: commands are framed with echo
  markers and judged by their own output;
* :class:`~harness.labgrid.strategy.UBoot114Strategy`, which takes a target from power-off
  to the boot loader's prompt (``hilinux # `` on the Hi3511).

An environment file names the package under ``imports:`` (examples/labgrid/*.yaml,
docs/labs.md). Nothing in harness/ or recovery/ imports it: labgrid is optional.
"""

from harness.labgrid.strategy import Status, UBoot114Strategy
from harness.labgrid.ubootdriver import FAILURE_PATTERNS, UBoot114Driver

__all__ = ["FAILURE_PATTERNS", "Status", "UBoot114Driver", "UBoot114Strategy"]
