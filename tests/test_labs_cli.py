"""``camrescue emulate BOARD --serve URL --control PATH`` and ``camrescue power``, run as a
person (or a lab's power driver) runs them: separate processes, the engine on the served
URL, power switched from outside.
"""

from __future__ import annotations

import contextlib
import io
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from recovery.cli import main as engine_main

CAMRESCUE = [sys.executable, "-m", "harness.cli"]


class Emulator:
    """A ``camrescue emulate`` process and the lines it prints."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*CAMRESCUE, "emulate", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        for line in self.seen:
            if text in line:
                self.seen.remove(line)
                return line
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no {text!r} from camrescue emulate; seen {self.seen}"
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if text in line:
                return line
            self.seen.append(line)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(15)


@contextlib.contextmanager
def emulator(*args: str) -> Iterator[Emulator]:
    emu = Emulator(*args)
    try:
        yield emu
    finally:
        if emu.proc.poll() is None:
            emu.proc.kill()
            emu.proc.wait(5)


def power(*args: str) -> tuple[int, str, str]:
    r = subprocess.run([*CAMRESCUE, "power", *args], capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout.strip(), r.stderr.strip()


def test_emulate_serves_rfc2217_and_takes_power_from_outside(tmp_path):
    control = tmp_path / "cam.ctl"
    with emulator(
        "w90p745", "--flash", str(tmp_path / "w90.bin"),
        "--serve", "rfc2217://127.0.0.1:0", "--control", str(control),
    ) as emu:  # fmt: skip
        url = emu.wait_for("serving rfc2217://").split("serving ")[1].split()[0]
        assert url.startswith("rfc2217://127.0.0.1:")
        pid = int(emu.wait_for("kill -HUP").split("kill -HUP ")[1].split()[0])
        assert pid == emu.proc.pid
        emu.wait_for("--control")
        assert power("status", "--control", str(control))[:2] == (0, "on")
        assert power("off", "--control", str(control))[:2] == (0, "off")
        assert power("status", "--control", str(control))[:2] == (0, "off")

        # the engine waits on the served port; the camera is plugged in from outside
        result: dict[str, object] = {}

        def engine() -> None:
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
                result["code"] = engine_main(
                    ["w90p745", "info", "--port", url, "--json", "--wait", "30"]
                )
            result["json"] = json.loads(out.getvalue().strip().splitlines()[-1])

        t = threading.Thread(target=engine)
        t.start()
        emu.wait_for("connected")
        assert power("on", "--control", str(control))[:2] == (0, "on")
        t.join(120)
        assert result["code"] == 0, result
        emu.wait_for("gone")

        # SIGHUP: the same switch, asynchronously
        code, out, _ = power("cycle", "--pid", str(pid))
        assert code == 0
        emu.wait_for("power cycle: on")
        assert power("off", "--pid", str(pid))[0] == 2  # only cycle goes by signal
        assert emu.stop() == 0
    assert not control.exists()
    code, _, err = power("status", "--control", str(control))
    assert code == 4 and "no emulator listening" in err


@pytest.mark.parametrize(
    "url", ["tcp://127.0.0.1:5000", "rfc2217://127.0.0.1", "socket://127.0.0.1:99999"]
)
def test_a_bad_serve_url_is_a_usage_error(url):
    r = subprocess.run(
        [*CAMRESCUE, "emulate", "hi3511", "--serve", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "rfc2217://HOST:PORT" in r.stderr


def test_power_help_names_the_control_socket():
    r = subprocess.run([*CAMRESCUE, "power", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--control" in r.stdout and "--pid" in r.stdout


def test_emulate_keeps_an_existing_transcript_unless_forced(tmp_path):
    """The transcript file is a person's: an existing one is refused before anything starts,
    and ``--force`` replaces it with this session's when the emulator stops."""
    kept = tmp_path / "session.txt"
    kept.write_text("last week's session\n")
    r = subprocess.run(
        [*CAMRESCUE, "emulate", "hi3511", "--transcript", str(kept)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert "already exists" in r.stderr and "--force" in r.stderr
    assert kept.read_text() == "last week's session\n"
    with emulator("hi3511", "--transcript", str(kept), "--force") as emu:
        emu.wait_for("Ctrl-C stops it")
        assert emu.stop() == 0
    text = kept.read_text()
    assert "last week's session" not in text and "U-Boot 1.1.4" in text
