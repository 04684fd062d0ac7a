"""Issue 17: a Hi3511 power cut while the engine is typing a command is reported at once.

The power is cut at the N-th byte the engine sends of one command line (a
:class:`harness.lab.faults.LinkByteFault`, direction host, action power_cut, armed
just before that line is typed), and comes back 50 ms later: the emulated camera
restarts and prints U-Boot's power-on banner instead of the line's echo. The engine
must say that the camera restarted during the typing of that line (it saw the
banner; before the fix it reported "did not echo" after the echo's timeout), stop
the countdown so the camera stays in U-Boot, and give the flash state and the
command that finishes the job; that command, run next, does.
"""

from __future__ import annotations

import shlex
from types import SimpleNamespace

import pytest
from test_hi3511_engine import camera, run_engine

from harness.firmware import root_image, vendor_flash
from harness.lab.faults import LinkByteFault, arm
from recovery.hi3511.driver import UBoot
from recovery.transport import Port


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("cut") / "instar.jffs2"
    path.write_bytes(root_image("B"))
    return path


def _arm_on_typing(monkeypatch, dev, verb: str, at_byte: int) -> list:
    """Arm the power cut just before the engine types its first line starting ``verb``."""
    armed: list = []
    real_send = UBoot._send

    def send(self: UBoot, line: str) -> None:
        if not armed and line.startswith(verb + " "):
            fault = LinkByteFault("power_cut", at_byte, "host", power_back=0.05)
            armed.append((line, arm(SimpleNamespace(device=dev), fault)))
        real_send(self, line)

    monkeypatch.setattr(UBoot, "_send", send)
    return armed


@pytest.mark.parametrize(
    ("verb", "state"),
    [("tftp", "untouched"), ("cp.b", "partially written")],
)
def test_power_cut_while_typing_is_reported_at_once(monkeypatch, image, verb, state):
    before = vendor_flash("A")
    img = image.read_bytes()
    after = before[:0x200000] + img + b"\xff" * (0xD00000 - len(img)) + before[0xF00000:]
    with camera(before) as (dev, opts):
        armed = _arm_on_typing(monkeypatch, dev, verb, at_byte=6)
        argv = ["hi3511", "flash", str(image), *opts, "--no-backup", "--no-boot"]
        code, r, _err = run_engine(*argv)
        assert armed, "the command was never typed"
        line, fault = armed[0]
        assert fault.fired, "the power cut did not strike"
        fault.stop()
        assert code != 0 and r["ok"] is False, r
        # the banner was seen while the line was typed: not "did not echo" after a timeout
        assert (
            f"the camera restarted (power cut or watchdog) during the typing of {line!r}"
            in (r["message"])
        ), r
        assert "stopped at the U-Boot prompt" in r["message"], r
        assert "check the camera's power supply" in r["hint"], r
        if status_resume := r["flash_status"]["resume"]:
            assert status_resume in r["hint"], r  # what finishes the job comes first
        status = r["flash_status"]
        assert status["state"] == state, status
        if state == "untouched":
            assert r["flash_state"] == "untouched"
            assert dev.flash.read(0, len(before)) == before
            return
        assert "erased and being written" in r["flash_state"], r
        assert dev.flash.read(0x200000, 0x20000) == b"\xff" * 0x20000  # erased, not written
        # the camera was kept in U-Boot: the command named finishes the job as it is
        monkeypatch.undo()
        words = shlex.split(status["resume"])
        assert words[:3] == ["camrescue", "hi3511", "flash"], status
        code, r2, _ = run_engine(*words[1:], *opts[2:], "--no-boot")
        assert code == 0, r2
        assert dev.flash.read(0, len(before)) == after


def test_a_restart_while_the_sync_marker_is_typed_is_met_once_more():
    """The power comes back as the engine attaches (a person cycling it, as told): the
    banner arrives instead of the sync marker's answer. Nothing was written yet, so the
    driver stops the new countdown and syncs again instead of failing."""
    with camera(vendor_flash("A")) as (dev, _opts), Port(dev.path) as port:
        ub = UBoot(port)
        boots = dev.boots
        fault = LinkByteFault("power_cut", 4, "host", power_back=0.05)
        armed = arm(SimpleNamespace(device=dev), fault)
        try:
            ub.sync()  # Ctrl-C, then "echo CRSYNC...": the cut lands in "ech"
        finally:
            armed.stop()
        assert armed.fired and dev.boots == boots + 1
        assert ub.version().startswith("U-Boot 1.1.4")  # at the prompt, in sync
