"""Issue 17, board by board: the W90P745 and XR872 items of docs/guarantees.md.

Each test drives the real engine (``python -m recovery``, a process of its own)
against an emulated camera over its pty.
"""

from __future__ import annotations

import json
import shlex
import signal
import time
from pathlib import Path

import test_safety_signals
from test_safety_signals import W90_BASE, _w90_prepared, engine, talking

w90_dump = test_safety_signals.w90_dump  # the module's fixture: one dump for these tests too


def _one_json(proc, timeout: float = 600) -> dict:
    out, err = proc.communicate(timeout=timeout)
    lines = out.strip().splitlines()
    assert len(lines) == 1, (out, err[-3000:])
    return json.loads(lines[0])


def _sent_since(dev, mark: int) -> int:
    return sum(len(c.data) for c in dev.transcript.chunks[mark:] if c.direction == "host")


def _dumped(dump_dir: Path) -> list[tuple[int, bytes]]:
    manifest = json.loads((dump_dir / "manifest.json").read_text())
    return [(int(r["base"]), (dump_dir / r["file"]).read_bytes()) for r in manifest["images"]]


# -- W90P745 ------------------------------------------------------------------------------


def test_w90p745_ctrl_c_mid_transfer_then_the_printed_resume_command_finishes(w90_dump):
    """SIGINT while fx receives: the loader is sent CAN and left at its prompt, so the
    resume command the report prints (run as printed, on the same port) restores the
    image and verifies it."""
    argv = ["w90p745", "restore", str(w90_dump), "--json", "--images", "webui"]
    dev = _w90_prepared()
    try:
        proc = engine([*argv, "--port", dev.path])
        started = talking(dev)
        deadline = time.monotonic() + 120
        while not started() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        mark = len(dev.transcript.chunks)
        while proc.poll() is None and time.monotonic() < deadline:
            if (
                b"fx "
                in b"".join(c.data for c in dev.transcript.chunks[mark:] if c.direction == "host")
                and _sent_since(dev, mark) > 40_000
            ):
                break  # inside the Xmodem transfer
            time.sleep(0.002)
        assert proc.poll() is None, "the restore ended before it was interrupted"
        proc.send_signal(signal.SIGINT)
        r = _one_json(proc)
        assert proc.returncode == 130 and r["error"] == "Interrupted", r
        status = r["flash_status"]
        assert status["state"] == "partially written", status
        words = shlex.split(status["resume"])
        assert words[:3] == ["camrescue", "w90p745", "restore"], status
        proc = engine([*words[1:], "--json"])
        r2 = _one_json(proc)
        assert proc.returncode == 0 and r2["ok"], r2
        assert r2["flash_status"]["state"] == "verified", r2
        for base, data in _dumped(w90_dump):
            assert dev.flash.read(base - W90_BASE, len(data)) == data
    finally:
        dev.close()


class _CtrlCPort:
    """Makes a Port raise KeyboardInterrupt (Ctrl-C: the engine's SIGINT and SIGTERM
    path) the first time it reads after ``after`` was written: an interruption at an
    exact moment, which a signal from outside cannot aim at. The line itself is the
    emulator's pty."""

    @staticmethod
    def make(url: str, after: str):
        from recovery.transport import Port

        class Interrupting(Port):
            armed = False
            fired = False

            def write(self, data: bytes | str) -> None:
                super().write(data)
                raw = data.encode("latin-1") if isinstance(data, str) else data
                if not self.fired and raw.startswith(after.encode()):
                    self.armed = True

            def read_some(self, size: int, timeout: float | None) -> bytes:
                if self.armed and not self.fired:
                    self.fired = True
                    raise KeyboardInterrupt
                return super().read_some(size, timeout)

        return Interrupting(url)


def test_w90p745_ctrl_c_while_fx_is_typed_leaves_a_clean_prompt(w90_dump):
    """Ctrl-C after the fx command line was typed, before its CR: the line must not be
    left in the loader's buffer (the next run's first CR would start fx and leave the
    loader in its receiver, which never times out); the command the report names then
    finishes the job."""
    import pytest

    from recovery.errors import Interrupted
    from recovery.w90p745.operations import restore

    dev = _w90_prepared()
    try:
        with _CtrlCPort.make(dev.path, "fx ") as port, pytest.raises(Interrupted) as caught:
            restore(port, w90_dump, images=["webui"], progress=False, notify=lambda _m: None)
        hint = caught.value.hint or ""
        command = hint[hint.index("'camrescue ") + 1 :]
        command = command[: command.index("'")]
        words = shlex.split(command)
        proc = engine([*words[1:], "--port", dev.path, "--json", "--wait", "10"])
        r = _one_json(proc)
        assert proc.returncode == 0 and r["ok"], r
        for base, data in _dumped(w90_dump):
            assert dev.flash.read(base - W90_BASE, len(data)) == data
    finally:
        dev.close()
