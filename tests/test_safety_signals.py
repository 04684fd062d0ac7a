"""Issue 17: an interruption at any moment ends with a flash state that is true.

The real engine (``python -m recovery``, a process of its own) writes to an emulated
camera and gets SIGINT (Ctrl-C) or SIGTERM at 20 random moments of a Hi3511 restore
and flash and of an XR872 write (the moments are drawn from a fixed seed over the
length of an uninterrupted run: where the signal lands varies with the machine's
speed, what is checked does not). Every run must end with one JSON object whose
``flash_status`` matches the emulated flash, byte for byte:

* ``untouched``: the flash is as it was;
* ``partially written``: outside the ranges named, the flash is as it was; ranges
  named ``verified`` or ``complete but unverified`` hold the new bytes; and the
  command in ``resume``, run afterwards, finishes the job;
* ``verified``: the flash holds the result.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_hi3511_engine import camera, run_engine

from emulators.xr872 import XR872Device
from harness.firmware import root_image, vendor_flash
from harness.firmware import xr872 as xfw

HI_BASE = 0x34000000
XR_FAST = ["--boot-wait", "0.5", "--timeout", "0.5", "--settle", "0.1"]
POINTS = 10  # per operation: 2 x 10 on the Hi3511, 20 on the XR872


def engine(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "recovery", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def talking(dev) -> Callable[[], bool]:
    """True once the engine has sent the device something (the operation has begun:
    moments are counted from there, not from the interpreter's start)."""
    mark = len(dev.transcript.chunks)
    return lambda: any(c.direction == "host" for c in dev.transcript.chunks[mark:])


def interrupt_at(
    argv: list[str], delay: float, sig: int, started: Callable[[], bool]
) -> tuple[int, dict]:
    proc = engine(argv)
    deadline = time.monotonic() + 60
    while not started() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    try:
        proc.wait(delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    lines = out.strip().splitlines()
    assert len(lines) == 1, (out, err[-3000:])
    return proc.returncode, json.loads(lines[0])


def check_state(status: dict, now: bytes, before: bytes, after: bytes, base: int) -> None:
    """``flash_status`` against the emulated flash (see the module docstring)."""
    state = status["state"]
    if state == "untouched":
        assert now == before, "said untouched, but the flash changed"
        return
    if state == "verified":
        assert now == after, "said verified, but the flash is not the result"
        return
    assert state in ("partially written", "complete but unverified"), status
    assert status["ranges"], status
    assert status["resume"], status
    covered = bytearray(len(now))
    for r in status["ranges"]:
        lo, hi = int(r["start"], 16) - base, int(r["end"], 16) - base  # hex strings
        covered[lo:hi] = b"\1" * (hi - lo)
        if r["state"] in ("verified", "complete but unverified"):
            assert now[lo:hi] == after[lo:hi], r
        if r["state"].startswith("not yet written"):
            covered[lo:hi] = b"\0" * (hi - lo)  # must still hold the old bytes
    for off in range(0, len(now), 0x10000):  # outside the ranges: as before
        piece = slice(off, off + 0x10000)
        if not any(covered[piece]):
            assert now[piece] == before[piece], f"changed outside the ranges at {off:#x}"
    if state == "partially written":  # a range being written, or one not yet begun
        assert {r["state"] for r in status["ranges"]} & {
            "partially written",
            "not yet written (old contents)",
        }, status


def moments(seed: str, total: float) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(0.0, total) for _ in range(POINTS)]


def resume_argv(status: dict, extra: list[str]) -> list[str]:
    words = shlex.split(status["resume"])
    assert words[0] == "camrescue", status["resume"]
    return [*words[1:], *extra]


# -- Hi3511 ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hi_files(tmp_path_factory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("sig")
    flash_a, flash_b = vendor_flash("A"), vendor_flash("B")
    backup = d / "cam-B.bin"
    with camera(flash_b) as (_dev, opts):
        code, r, _ = run_engine("hi3511", "backup", *opts, "--out", str(backup))
    assert code == 0, r
    image = d / "instar.jffs2"
    image.write_bytes(root_image("B"))
    return {"a": flash_a, "b": flash_b, "backup": backup, "image": image}


def _hi_target(op: str, files: dict) -> bytes:
    a, b = files["a"], files["b"]
    if op == "restore":
        return a[:0x100000] + b[0x100000:]
    img = files["image"].read_bytes()
    root = img + b"\xff" * (0xD00000 - len(img))
    return a[:0x200000] + root + a[0xF00000:]


def _hi_argv(op: str, files: dict, opts: list[str]) -> list[str]:
    if op == "restore":
        return ["hi3511", "restore", str(files["backup"]), *opts, "--no-backup", "--no-boot",
                "--other-camera"]  # fmt: skip
    return ["hi3511", "flash", str(files["image"]), *opts, "--no-backup", "--no-boot"]


@pytest.mark.parametrize("op", ["restore", "flash"])
def test_hi3511_sigint_at_random_moments_reports_the_true_flash_state(hi_files, op):
    before, after = hi_files["a"], _hi_target(op, hi_files)
    with camera(before) as (dev, opts):  # one uninterrupted run: how long it takes
        t0 = time.monotonic()
        code, r = interrupt_at(_hi_argv(op, hi_files, opts), 600, signal.SIGINT, talking(dev))
        total = time.monotonic() - t0
        assert code == 0, r
        assert dev.flash.read(0, len(before)) == after
        check_state(r["flash_status"], dev.flash.read(0, len(before)), before, after, HI_BASE)
    states = []
    ctrl_c = []  # exit codes of the runs that got SIGINT
    resumed = 0
    for i, delay in enumerate(moments(f"hi3511-{op}", total)):
        sig = signal.SIGTERM if i % 5 == 4 else signal.SIGINT
        with camera(before) as (dev, opts):
            code, r = interrupt_at(_hi_argv(op, hi_files, opts), delay, sig, talking(dev))
            if sig == signal.SIGINT:
                ctrl_c.append(code)
            status = r["flash_status"]
            states.append(status["state"])
            # a signal that lands after the result was printed ends the interpreter
            assert code in (0, 130) or (r["ok"] and code in (-2, -15)), (code, r)
            if code == 130:
                assert r["error"] == "Interrupted" and r["flash_state"], r
            check_state(status, dev.flash.read(0, len(before)), before, after, HI_BASE)
            if status["state"] not in ("untouched", "verified") and resumed < 2:
                # the command it names finishes the job
                resumed += 1
                code, r2, _ = run_engine(*resume_argv(status, opts))
                assert code == 0, r2
                assert dev.flash.read(0, len(before)) == after
    assert len(states) == POINTS
    # Ctrl-C really reached the engine (an inherited SIG_IGN would pass every run as 0)
    assert 130 in ctrl_c, ctrl_c


# -- XR872 --------------------------------------------------------------------------------


def test_xr872_sigint_at_random_moments_reports_the_true_flash_state(tmp_path):
    image = tmp_path / "xr_system.img"
    data = xfw.build_image(xfw.xr872_sections(12))
    image.write_bytes(data)
    argv = ["xr872", "write", str(image), "--no-backup", "--no-reboot", "--json", *XR_FAST]
    argv.append("--include-bootloader")  # the unit's boot section is another seed's

    def target(before: bytes) -> bytes:
        return data + before[len(data) :]

    with XR872Device(seed=21) as dev:
        before = dev.flash.snapshot()
        t0 = time.monotonic()
        code, r = interrupt_at([*argv, "--port", dev.path], 600, signal.SIGINT, talking(dev))
        total = time.monotonic() - t0
        assert code == 0, r
        assert dev.flash.snapshot() == target(before)
    states = []
    ctrl_c = []  # exit codes of the runs that got SIGINT
    for i, delay in enumerate(moments("xr872-write", total) + moments("xr872-write-2", total)):
        sig = signal.SIGTERM if i % 5 == 4 else signal.SIGINT
        with XR872Device(seed=21) as dev:
            before = dev.flash.snapshot()
            code, r = interrupt_at([*argv, "--port", dev.path], delay, sig, talking(dev))
            if sig == signal.SIGINT:
                ctrl_c.append(code)
            assert code in (0, 130) or (r["ok"] and code in (-2, -15)), (code, r)
            status = r["flash_status"]
            states.append(status["state"])
            check_state(status, dev.flash.snapshot(), before, target(before), 0)
    assert len(states) == 2 * POINTS
    # Ctrl-C really reached the engine (an inherited SIG_IGN would pass every run as 0)
    assert 130 in ctrl_c, ctrl_c


def test_sigterm_takes_the_ctrl_c_path_in_run_operation(tmp_path):
    """SIGTERM (kill) ends an operation with the same JSON as Ctrl-C, exit code 130."""
    code = (
        "import os, signal, time\n"
        "from argparse import Namespace\n"
        "from recovery.cliutil import run_operation\n"
        "def op():\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(5)\n"
        "raise SystemExit(run_operation(Namespace(json=True, quiet=True), 'xr872 dump', op))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 130, r
    payload = json.loads(r.stdout)
    assert payload["error"] == "Interrupted"
    assert payload["flash_status"]["state"] == "untouched"  # a dump only reads
    assert payload["flash_state"] == "untouched"
    assert Path(os.devnull).exists()


# -- W90P745 ------------------------------------------------------------------------------

W90_BASE = 0x7F000000


def _w90_at_prompt(delete: str | None = None):
    """A camera at its loader prompt (caught in this process, so the engine's start-up
    time never races the autoboot), with image ``delete`` deleted."""
    from emulators.w90p745 import W90P745Device
    from recovery.transport import Port
    from recovery.w90p745.driver import W90Console

    dev = W90P745Device(seed=31)
    dev.power_on()
    with Port(dev.path) as port:
        con = W90Console(port, notify=lambda _m: None)
        con.attach(30)
        if delete is not None:
            number = next(e.number for e in con.list_images() if e.name == delete)
            con.run(f"del {number}", timeout=30)
    return dev


@pytest.fixture(scope="module")
def w90_dump(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("w90") / "dump"
    dev = _w90_at_prompt()
    try:
        argv = ["w90p745", "dump", "--port", dev.path, "--out", str(out), "--images", "webui"]
        proc = engine([*argv, "--json"])
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, (stdout, stderr[-2000:])
    finally:
        dev.close()
    return out


def _w90_prepared():
    """A camera at its loader prompt whose webui image was deleted (restore re-creates it)."""
    return _w90_at_prompt(delete="webui")


def test_w90p745_sigint_at_random_moments_reports_the_true_flash_state(w90_dump):
    argv = ["w90p745", "restore", str(w90_dump), "--json", "--images", "webui"]
    dev = _w90_prepared()
    try:
        before = dev.flash.snapshot()
        t0 = time.monotonic()
        code, r = interrupt_at([*argv, "--port", dev.path], 600, signal.SIGINT, talking(dev))
        total = time.monotonic() - t0
        assert code == 0, r
        after = dev.flash.snapshot()
        assert after != before
        check_state(r["flash_status"], after, before, after, W90_BASE)
    finally:
        dev.close()
    states = []
    ctrl_c = []  # exit codes of the runs that got SIGINT
    for i, delay in enumerate(moments("w90-restore", total) + moments("w90-restore-2", total)):
        sig = signal.SIGTERM if i % 5 == 4 else signal.SIGINT
        dev = _w90_prepared()
        try:
            assert dev.flash.snapshot() == before
            code, r = interrupt_at([*argv, "--port", dev.path], delay, sig, talking(dev))
            if sig == signal.SIGINT:
                ctrl_c.append(code)
            assert code in (0, 130) or (r["ok"] and code in (-2, -15)), (code, r)
            status = r["flash_status"]
            states.append(status["state"])
            check_state(status, dev.flash.snapshot(), before, after, W90_BASE)
            if status["state"] == "partially written":
                assert "w90p745 restore" in status["resume"]
        finally:
            dev.close()
    assert len(states) == 2 * POINTS
    # Ctrl-C really reached the engine (an inherited SIG_IGN would pass every run as 0)
    assert 130 in ctrl_c, ctrl_c


# -- a power cut and a vanished port (Hi3511) -----------------------------------------------


@pytest.mark.parametrize(
    ("event", "during"),
    [("power cut", "tftp"), ("port vanishes", "tftp")],
)
def test_hi3511_power_cut_or_vanished_port_reports_the_true_flash_state(hi_files, event, during):
    """The camera loses power (it restarts into U-Boot) or the adapter is pulled once the
    restore has typed its first tftp: the JSON says what the flash holds, byte for byte.
    (Which command the cut lands in, and so the message, depends on timing: not checked.)"""
    before, after = hi_files["a"], _hi_target("restore", hi_files)
    with camera(before) as (dev, opts):
        started = talking(dev)
        proc = engine(_hi_argv("restore", hi_files, opts))
        deadline = time.monotonic() + 60
        while not started() and time.monotonic() < deadline:
            time.sleep(0.002)
        mark = len(dev.transcript.chunks)
        while proc.poll() is None and during.encode() not in b"".join(
            c.data for c in dev.transcript.chunks[mark:] if c.direction == "host"
        ):
            time.sleep(0.002)
        if event == "power cut":
            dev.power_cycle()
        else:
            dev.power_off()  # the adapter is pulled (with the camera's 3.3 V on it) ...
            dev.uart.close()  # ... and the pty goes away; the flash stays
        out, err = proc.communicate(timeout=300)
        lines = out.strip().splitlines()
        assert len(lines) == 1, (out, err[-3000:])
        r = json.loads(lines[0])
        assert r["ok"] is False and "internal error" not in r["message"], r
        check_state(r["flash_status"], dev.flash.read(0, len(before)), before, after, HI_BASE)


def test_xr872_dump_interrupted_says_untouched(tmp_path):
    """An interrupted XR872 dump said ``flash_state: null``; it only reads: untouched
    (and the .part it leaves resumes next time)."""
    out = tmp_path / "dump.bin"
    with XR872Device(seed=22) as dev:
        before = dev.flash.snapshot()
        argv = ["xr872", "dump", "--port", dev.path, "--out", str(out), "--json", *XR_FAST]
        proc = engine(argv)
        mark = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            part = out.with_name(out.name + ".part")
            if part.exists() and part.stat().st_size > mark + 0x10000:
                break  # reading is under way
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
        assert dev.flash.snapshot() == before
    r = json.loads(stdout)
    assert proc.returncode == 130 and r["error"] == "Interrupted", (r, stderr[-2000:])
    assert r["flash_state"] == "untouched"
    assert r["flash_status"] == {"state": "untouched", "ranges": [], "resume": None}
    assert not out.exists()


def _cut_power_midway(argv: list[str], dev, started: Callable[[], bool], after: int) -> dict:
    """Run the engine; once it has sent ``after`` bytes since it began, cut the camera's
    power (it restarts); return the one JSON object the engine printed."""
    proc = engine(argv)
    deadline = time.monotonic() + 120
    while not started() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    mark = len(dev.transcript.chunks)
    while proc.poll() is None and time.monotonic() < deadline:
        sent = sum(len(c.data) for c in dev.transcript.chunks[mark:] if c.direction == "host")
        if sent >= after:
            break
        time.sleep(0.002)
    dev.power_cycle()
    out, err = proc.communicate(timeout=600)
    lines = out.strip().splitlines()
    assert len(lines) == 1, (out, err[-3000:])
    return json.loads(lines[0])


def test_xr872_power_cut_during_write_reports_the_true_flash_state(tmp_path):
    image = tmp_path / "xr_system.img"
    data = xfw.build_image(xfw.xr872_sections(12))
    image.write_bytes(data)
    argv = ["xr872", "write", str(image), "--no-backup", "--no-reboot", "--json", *XR_FAST]
    argv.append("--include-bootloader")  # the unit's boot section is another seed's
    with XR872Device(seed=23) as dev:
        before = dev.flash.snapshot()
        r = _cut_power_midway([*argv, "--port", dev.path], dev, talking(dev), len(data) // 2)
        assert "internal error" not in r["message"], r
        check_state(r["flash_status"], dev.flash.snapshot(), before, data + before[len(data) :], 0)


def test_w90p745_power_cut_during_restore_reports_the_true_flash_state(w90_dump):
    argv = ["w90p745", "restore", str(w90_dump), "--json", "--images", "webui"]
    dev = _w90_prepared()
    try:  # the result of an uninterrupted restore onto a camera without the image
        code, r = interrupt_at([*argv, "--port", dev.path], 600, signal.SIGINT, lambda: True)
        assert code == 0, r
        after = dev.flash.snapshot()
    finally:
        dev.close()
    dev = _w90_prepared()
    try:
        before = dev.flash.snapshot()
        r = _cut_power_midway([*argv, "--port", dev.path], dev, talking(dev), 200_000)
        assert r["ok"] is False and "internal error" not in r["message"], r
        check_state(r["flash_status"], dev.flash.snapshot(), before, after, W90_BASE)
    finally:
        dev.close()
