"""A W90P745 restore says how many tries each image took: each retry is told (on
stderr with the CLI) as it happens, and the result (the JSON's images[]) carries
``attempts`` and ``retried_because``. The restores that need a retry (one block byte
flipped on the line, one ACK lost) are tests/test_w90_restore_link_faults.py's, which
check the report too; here a clean restore reports one try and no retry."""

from __future__ import annotations

from test_w90_restore_link_faults import dumped

from emulators.w90p745 import W90P745Device
from recovery.transport import Port
from recovery.w90p745.operations import restore


def test_a_clean_restore_reports_one_attempt(tmp_path):
    flash, out = dumped(tmp_path)
    told: list[str] = []
    with W90P745Device(seed=4, initial_flash=flash) as dev, Port(dev.path) as port:
        result = restore(port, out, progress=False, notify=told.append, baud=115200)
    assert result.images[0].attempts == 1 and result.images[0].retried_because == []
    assert not any("sending it again" in t for t in told) and "tries" not in result.message
