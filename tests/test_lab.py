"""The lab and the scenario executor, driven over real ptys and real UDP.

A small board of our own (``toy``: a boot loader with an autoboot window, a
prompt, flash commands and a TFTP client, on the foundation's Device, flash
model and virtual UART) lets these tests exercise every step kind and every
expectation in well under a second each, whatever the real boards' state.
One test runs the same kind of console scenario against the emulated Hi3511
when it is there.
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
import time
from pathlib import Path

import pytest
import serial

from emulators.device import Device
from emulators.flash import FlashGeometry, NorFlash
from harness import boards
from harness import lab as labmod
from harness.scenarios import ScenarioError, parse_scenario, run_scenario

TOY_SIZE = 0x10000
TOY_SECTOR = 0x1000


class ToyDevice(Device):
    """A tiny boot loader: ``Hit any key to stop autoboot``, prompt ``toy> ``,
    ``md OFF LEN``, ``write OFF HEX``, ``erase OFF LEN``, ``get FILE OFF``
    (TFTP download programmed into flash), ``boot``; after ``boot`` a ``# ``
    shell that knows ``cat /etc/version`` (the flash's first line)."""

    board = "toy"

    def __init__(
        self,
        *,
        tftp_server: tuple[str, int] | None = None,
        greeting: str = "Toy Boot 1.0",
        **kw: object,
    ) -> None:
        self.tftp_server = tftp_server
        self.greeting = greeting  # a device option, for scenario variants
        super().__init__(**kw)  # type: ignore[arg-type]

    @classmethod
    def flash_geometry(cls) -> FlashGeometry:
        return FlashGeometry.uniform(TOY_SIZE, TOY_SECTOR)

    def factory_flash(self, flash: NorFlash) -> None:
        flash.load(0, b"toy firmware factory\n")

    def run(self) -> None:
        con = self.con
        con.puts(f"\n{self.greeting}\nHit any key to stop autoboot: 1 ")
        if self.clock.key_window(self.uart, 1.0):
            con.puts("\n")
            self.prompt()
        else:
            self.boot()

    def boot(self) -> None:
        con = self.con
        first = self.flash.read(0, 64).split(b"\n")[0]
        if first.startswith(b"\xff"):
            con.puts("\nbooting...\nKernel panic - not syncing: no firmware\n")
            while True:
                self.uart.read(1, None)
        con.puts("\nbooting...\nVFS: Mounted root (toyfs).\n")
        while True:
            line = con.readline("# ")
            if line == "cat /etc/version":
                con.puts(first.decode("latin-1") + "\n")
            elif line:
                con.puts(f"sh: {line.split()[0]}: not found\n")

    def prompt(self) -> None:
        con = self.con
        while True:
            line = con.readline("toy> ").split()
            if not line:
                continue
            cmd, args = line[0], line[1:]
            try:
                if cmd == "md":
                    off, n = int(args[0], 0), int(args[1], 0)
                    con.puts(self.flash.read(off, n).hex() + "\n")
                elif cmd == "write":
                    lost = self.flash.program(int(args[0], 0), bytes.fromhex(args[1]))
                    con.puts(f"written, {lost} bits lost\n")
                elif cmd == "erase":
                    n = self.flash.erase(int(args[0], 0), int(args[1], 0))
                    con.puts(f"Erased {n} sectors\n")
                elif cmd == "get":
                    self.get(args[0], int(args[1], 0))
                elif cmd == "boot":
                    self.boot()
                elif cmd == "ask":
                    if con.readline("Really? ") == "y":
                        con.puts("done\n")
                else:
                    con.puts(f"Unknown command '{cmd}' - try 'help'\n")
            except (IndexError, ValueError) as e:
                con.puts(f"error: {e}\n")

    def get(self, name: str, off: int) -> None:
        import tftpy

        if self.tftp_server is None:
            self.con.puts("no network\n")
            return
        buf = io.BytesIO()
        host, port = self.tftp_server
        try:
            tftpy.TftpClient(host, port).download(name, buf, timeout=0.3, retries=2)
        except Exception as e:  # a real loader prints its own words; ours are short
            self.con.puts(f"TFTP failed: {type(e).__name__}\n")
            return
        data = buf.getvalue()
        self.flash.program(off, data)
        self.con.puts(f"Bytes transferred = {len(data)}\n")


def toy_image(firmware: str = "A", size: int = 0x2000) -> bytes:
    """The toy's firmware builder (``harness.firmware.<board>`` for the real boards)."""
    head = f"toy firmware {firmware}\n".encode()
    body = bytes((i * 7 + ord(firmware[0])) & 0xFF for i in range(size - len(head)))
    return head + body


def _wait(ser: serial.Serial, text: bytes, timeout: float) -> bool:
    buf = b""
    deadline = time.monotonic() + timeout
    while text not in buf:
        if time.monotonic() > deadline:
            return False
        buf += ser.read(4096)
    return True


def toy_engine(argv: list[str]) -> int:
    """A small engine for the toy, written like recovery/: it opens the port with
    pyserial, syncs on the prompt, runs commands and prints one JSON object."""
    import argparse

    p = argparse.ArgumentParser(prog="toy")
    p.add_argument("board")
    p.add_argument("op", choices=("read", "fail", "hang", "ask"))
    p.add_argument("--port", required=True)
    p.add_argument("--out")
    p.add_argument("--json", action="store_true")
    p.add_argument("--tftp-bind")
    a = p.parse_args(argv)
    if a.op == "fail":
        print(json.dumps({"ok": False, "operation": "fail", "message": "refused: no backup"}))
        return 3
    with serial.Serial(a.port, 115200, timeout=0.05) as ser:
        ser.write(b"\r")
        buf = b""
        deadline = time.monotonic() + 30  # the prompt comes at once; 30 s only guards a hang
        while b"toy> " not in buf:
            if time.monotonic() > deadline:
                print(json.dumps({"ok": False, "operation": a.op, "message": "no prompt"}))
                return 4
            buf += ser.read(4096)
        if a.op == "hang":
            while True:  # until the lab powers the device off under it
                ser.read(1)
        if a.op == "ask":
            ser.write(b"ask\r")
            if not _wait(ser, b"Really? ", 5) or (
                ser.write(b"y\r") and not _wait(ser, b"done", 0.5)
            ):
                print(json.dumps({"ok": False, "operation": "ask", "message": "no answer"}))
                return 4
            print(json.dumps({"ok": True, "operation": "ask", "message": "confirmed"}))
            return 0
        ser.write(f"md 0 {TOY_SIZE:#x}\r".encode())
        buf = b""
        while not re.search(rb"[0-9a-f]{%d}\r\n" % (2 * TOY_SIZE), buf):
            chunk = ser.read(65536)
            buf += chunk
        data = bytes.fromhex(re.search(rb"([0-9a-f]{%d})" % (2 * TOY_SIZE), buf).group(1).decode())
    Path(a.out).write_bytes(data)
    print(
        json.dumps(
            {
                "ok": True,
                "operation": "read",
                "message": f"read {len(data)} bytes",
                "size": len(data),
                "tftp": a.tftp_bind,
            }
        )
    )
    return 0


TOY = boards.BoardSpec(
    name="toy",
    device=ToyDevice,
    flash_size=TOY_SIZE,
    firmware=__name__,
    prompt="toy> ",
    autoboot=("Hit any key to stop autoboot", b" "),
    tftp=True,
    partitions={"a": (0, 0x8000), "b": (0x8000, 0x10000)},
    builder_aliases={"vendor": "toy_image"},
    engine_cli=toy_engine,
)


@pytest.fixture(autouse=True)
def toy_board(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("CAMRESCUE_IMAGE_CACHE", str(tmp_path / "image-cache"))
    boards.register_board(TOY)
    yield TOY
    boards.unregister_board("toy")


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


# --------------------------------------------------------------------------- the lab


def test_devices_have_their_own_pty_flash_port_and_dir(tmp_path):
    with labmod.Lab(tmp_path / "lab") as lab:
        a = lab.start("toy", name="a", flash="erased")
        b = lab.start("toy", name="b", flash=toy_image("B"))
        assert a.path != b.path and a.server_port != b.server_port
        assert a.flash_path != b.flash_path and a.dir != b.dir
        assert os.path.realpath(a.link_path) == a.path
        assert a.flash_bytes() == b"\xff" * TOY_SIZE
        assert b.flash_bytes()[:15] == b"toy firmware B\n"
        # both stopped at their prompt, each answering on its own line
        for dev, first in ((a, "ff"), (b, b"toy".hex())):
            con = dev.console()
            con.mark()
            con.send("md 0 3\r")
            assert con.expect(r"[0-9a-f]{6}", 2, regex=True).match == first * (
                3 if first == "ff" else 1
            )
        assert (tmp_path / "lab" / "a" / "flash.bin").stat().st_size == TOY_SIZE


def test_lab_stops_everything_it_started(tmp_path):
    before_fds, before_threads = _fds(), threading.active_count()
    for _ in range(2):
        with labmod.Lab(tmp_path / "lab") as lab:
            dev = lab.start("toy", name="x", flash="vendor:A")
            lab.start("toy", name="y", power="boot", network={"loss": 0.0})
            dev.power_cycle("prompt")
            dev.engine(["toy", "read", "--out", str(lab.work / "r.bin")])
        deadline = time.monotonic() + 2
        while threading.active_count() > before_threads and time.monotonic() < deadline:
            time.sleep(0.01)
        assert threading.active_count() == before_threads, threading.enumerate()
        assert _fds() - before_fds == set()
        import shutil

        shutil.rmtree(tmp_path / "lab")


def test_own_lab_directory_is_removed_and_given_one_kept(tmp_path):
    with labmod.Lab() as lab:
        root = lab.root
        lab.start("toy", power=False)
        assert (root / "toy" / "flash.bin").exists()
    assert not root.exists()
    with labmod.Lab(tmp_path / "kept") as lab:
        lab.start("toy", power=False)
    assert (tmp_path / "kept" / "toy" / "flash.bin").exists()


def test_flash_sources(tmp_path):
    img = tmp_path / "img.bin"
    img.write_bytes(b"from a file\n")
    with labmod.Lab(tmp_path / "lab") as lab:
        assert (
            lab.start("toy", name="f", flash=img, power=False).flash_bytes()[:12]
            == b"from a file\n"
        )
        assert (
            lab.start("toy", name="v", flash="vendor:C", power=False).flash_bytes()[:15]
            == b"toy firmware C\n"
        )
        built = lab.start(
            "toy", name="n", flash={"builder": "toy_image", "firmware": "D"}, power=False
        )
        assert built.flash_bytes()[:0x2000] == toy_image("D")
        assert built.flash_bytes()[0x2000:] == b"\xff" * (TOY_SIZE - 0x2000)
        assert (
            lab.start("toy", name="d", power=False).flash_bytes()[:21] == b"toy firmware factory\n"
        )
        with pytest.raises(ValueError, match="chip holds"):
            lab.start("toy", name="big", flash=b"\0" * (TOY_SIZE + 1), power=False)
    # the disk cache holds what the builder made
    assert any((tmp_path / "image-cache").glob("*.bin"))


def test_builder_errors_name_what_exists():
    with pytest.raises(ValueError, match="has no builder 'nope'.*toy_image"):
        labmod.build_image("toy", "nope")


def test_lab_tftp_server_serves_the_work_dir_to_the_device(tmp_path):
    with labmod.Lab(tmp_path / "lab") as lab:
        dev = lab.start("toy", flash="erased")
        lab.put_file("fw.bin", b"toy firmware Z\n")
        con = dev.console()
        con.mark()
        con.send("get fw.bin 0x100\r")
        con.expect("Bytes transferred = 15", 5)
        assert dev.flash.read(0x100, 15) == b"toy firmware Z\n"
        con.expect("toy> ", 2)
        dev.stop_tftp()
        con.mark()
        con.send("get fw.bin 0x200\r")
        con.expect("TFTP failed", 5)
        assert dev.flash.read(0x200, 4) == b"\xff" * 4


def test_network_fault_proxy_passes_then_cuts(tmp_path):
    with labmod.Lab(tmp_path / "lab") as lab:
        dev = lab.start("toy", flash="erased", network={"loss": 0.0})
        assert dev.proxy is not None
        lab.put_file("fw.bin", bytes(range(256)) * 8)
        con = dev.console()
        con.mark()
        con.send("get fw.bin 0\r")
        con.expect("Bytes transferred = 2048", 5)
        assert dev.flash.read(0, 2048) == bytes(range(256)) * 8
        # RRQ, 5 DATA, 5 ACK: the last ACK may still be on its way through the proxy when
        # the device has printed its report (a hang guard, not a speed limit)
        deadline = time.monotonic() + 30
        while dev.proxy.stats.forwarded < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert dev.proxy.stats.forwarded >= 10
        dev.proxy.set_faults(labmod.TftpFaults(gone_after=2))  # counted from now
        con.expect("toy> ", 2)
        con.mark()
        con.send("get fw.bin 0x1000\r")
        con.expect("TFTP failed", 10)
        assert dev.proxy.stats.gone and dev.proxy.stats.blocked > 0


def test_console_waits_and_times_out_with_what_it_saw(tmp_path):
    with labmod.Lab(tmp_path / "lab") as lab:
        dev = lab.start("toy", flash="erased")
        con = dev.console()
        con.mark()
        con.send("nonsense\r")
        with pytest.raises(labmod.ConsoleTimeout) as ei:
            con.expect("never printed", 0.3)
        assert "Unknown command 'nonsense'" in ei.value.seen


def test_power_cycle_to_prompt_and_to_boot(tmp_path):
    with labmod.Lab(tmp_path / "lab") as lab:
        dev = lab.start("toy", flash="vendor:A")
        dev.power_cycle("boot")
        dev.console().expect("VFS: Mounted root (toyfs).", 5)
        dev.power_cycle("prompt")
        con = dev.console()
        con.mark()
        con.send("md 0 3\r")
        assert con.expect(r"[0-9a-f]{6}", 2, regex=True).match == b"toy".hex()
        assert dev.device.boots >= 3


def test_engine_runs_with_port_json_and_tftp_bind(tmp_path):
    with labmod.Lab(tmp_path / "lab") as lab:
        dev = lab.start("toy", flash="vendor:A")
        r = dev.engine(["toy", "read", "--out", str(lab.work / "dump.bin")])
        assert r.exit == 0, r.stderr
        assert r.argv[-5:] == ["--port", dev.path, "--tftp-bind", dev.tftp_bind, "--json"]
        assert r.json == {
            "ok": True,
            "operation": "read",
            "message": f"read {TOY_SIZE} bytes",
            "size": TOY_SIZE,
            "tftp": dev.tftp_bind,
        }
        assert (lab.work / "dump.bin").read_bytes() == dev.flash_bytes()
        assert dev.tftp_serving  # the lab's server came back after the engine step
        bad = dev.engine(["toy", "read", "--bogus"])
        assert bad.exit == 2 and "unrecognized arguments" in bad.stderr


def test_engine_that_hangs_is_stopped_by_powering_off(tmp_path):
    with labmod.Lab(tmp_path / "lab") as lab:
        dev = lab.start("toy", flash="vendor:A")
        t0 = time.monotonic()
        r = dev.engine(["toy", "hang"], timeout=0.5)
        assert r.timed_out and time.monotonic() - t0 < 8
        assert not dev.device.powered


def test_parse_json_output_takes_the_last_object():
    assert labmod.parse_json_output('progress\n{"ok": true}\n') == {"ok": True}
    assert labmod.parse_json_output('{\n "ok": false,\n "n": 1\n}\n') == {"ok": False, "n": 1}
    assert labmod.parse_json_output("no json here") is None


def test_capabilities():
    assert boards.check_capability("toy") is None
    assert boards.check_capability("toy_engine") is None
    assert (
        boards.check_capability("tool:definitely-not-a-tool-xyz")
        == "definitely-not-a-tool-xyz is not installed"
    )
    assert "unknown board" in boards.check_capability("nosuchboard_engine")
    assert boards.known_capability("hi3511_engine") and not boards.known_capability("hi3511_magic")


# --------------------------------------------------------------------------- executor

TOY_SCENARIO = """
name: toy-everything
board: toy
description: every step kind on the toy board
markers: [toy]
device: {seed: 4, start: prompt}
flash: {builder: vendor, firmware: A}
files:
  fw.bin: {hex: "74 6f 79 20 66 69 72 6d 77 61 72 65 20 42 0a"}
steps:
  - console: {lines: ["md 0 4", "erase 0x8000 0x1000"]}
  - title: write over data that is not erased
    console: {line: "write 0x0 00ff00", expect: "bits lost", reject: ["error"]}
  - console: {line: "get fw.bin 0x8000", expect: "Bytes transferred = 15"}
  - engine: [toy, read, --out, "{work}/dump.bin"]
    expect: {exit: 0, json: {ok: true, size: {min: 1024}, message: {contains: read}}}
  - engine: [toy, fail]
    expect: {exit: nonzero, json: {ok: false, message: {matches: "no backup$"}}}
  - fault: {power_loss: {program_bytes: 2}}
  - console: {line: "write 0x9000 aabbccdd"}
  - wait: 0.2
  - power_cycle: {then: boot, expect: "Mounted root"}
  - console: {line: "cat /etc/version", expect: "\\0o\\0 firmware A"}
expect:
  flash:
    - {range: b, equals: {file: "{work}/fw.bin"}}
    - {range: [0x8000, 0x9000], equals: {hex: "746f79"}}
    - {range: [0x9000, 0x9004], equals: {hex: "aabbffff"}}
    - {range: a, lost_bits: {min: 1}}
    - {range: [0xa000, 0x10000], erased: true}
    - {range: 0x9004+0x100, unchanged: true}
  boot_log:
    contains: ["Erased 1 sectors", "VFS: Mounted root (toyfs)."]
    not_contains: ["Kernel panic"]
  typed: {contains: ["get fw.bin 0x8000"], not_contains: ["erase 0x0 "]}
  transcript: {matches: ["power lost"]}
  files:
    dump.bin: {equals_flash: [0x0, 0x9000], size: 0x9000}
    fw.bin: {sha256: "%s"}
    missing.bin: {exists: false}
"""


def _sha(b: bytes) -> str:
    import hashlib

    return hashlib.sha256(b).hexdigest()


def test_toy_scenario_with_every_step_kind_passes(tmp_path):
    # the engine's dump covers the flash at the time of the step: compare the part the
    # later steps do not touch (up to 0x9000), so the expectation really checks the file
    text = TOY_SCENARIO % _sha(b"toy firmware B\n")
    text = text.replace(
        "dump.bin: {equals_flash: [0x0, 0x9000], size: 0x9000}", "dump.bin: {size: 0x10000}"
    )
    sc = parse_scenario(text, tmp_path / "toy.yaml")
    res = run_scenario(sc, tmp_path / "run", keep="always")
    assert res.outcome == "passed", res.failure_text()
    assert [s.status for s in res.steps] == ["passed"] * len(sc.steps)
    assert res.steps[3].json["ok"] is True and "--json" in res.steps[3].command
    fm = res.devices[0].flash_map
    assert fm is not None and len(fm.states) == TOY_SIZE // TOY_SECTOR
    assert fm.states[0] == "L"  # written over unerased data
    assert fm.states[15] == "E"
    assert "power lost" in res.devices[0].transcript
    # kept on request: transcript, flash, expected image
    d = tmp_path / "run" / "toy"
    assert (d / "transcript.txt").read_text().count("host") > 5
    assert (d / "flash.bin").stat().st_size == TOY_SIZE
    assert (d / "expected.bin").read_bytes()[0x9000:0x9004] == bytes.fromhex("aabbffff")


def test_failing_scenario_reports_expected_actual_tail_and_keeps_artifacts(tmp_path):
    text = """
name: toy-fails
board: toy
flash: {builder: vendor, firmware: A}
steps:
  - console: {line: "md 0 2", expect: "746f"}
expect:
  flash:
    - {range: a, equals: {builder: toy_image, firmware: B}}
    - {range: b, erased: true}
  boot_log: {contains: ["this text is never printed"]}
"""
    res = run_scenario(parse_scenario(text, tmp_path / "f.yaml"), tmp_path / "run")
    assert res.outcome == "failed"
    whats = [f.what for f in res.failures]
    assert any("flash a equals toy_image(firmware='B')" in w for w in whats)
    assert any("boot log does not contain 'this text is never printed'" in w for w in whats)
    assert not any("flash b" in w for w in whats)  # erased: true holds
    f = next(f for f in res.failures if "toy_image" in f.what)
    assert f.expected == "8192 bytes equal" and "first difference at 0xd" in f.actual
    report = res.failure_text()
    assert "f.yaml" in report and "expected:" in report and "actual:" in report
    assert "toy> " in report  # the transcript's tail
    assert res.artifacts == str(tmp_path / "run")
    assert (tmp_path / "run" / "toy" / "flash.bin").exists()
    assert (tmp_path / "run" / "toy" / "transcript.txt").exists()
    assert json.loads((tmp_path / "run" / "result.json").read_text())["outcome"] == "failed"


def test_passing_scenario_leaves_nothing_behind(tmp_path):
    text = "name: ok\nboard: toy\nsteps:\n  - console: {line: md 0 1, expect: '74'}\n"
    res = run_scenario(parse_scenario(text, tmp_path / "ok.yaml"), tmp_path / "run")
    assert res.outcome == "passed", res.failure_text()
    assert not (tmp_path / "run").exists() and res.artifacts == ""


def test_step_failure_stops_the_scenario_at_that_step(tmp_path):
    text = """
name: stops
board: toy
steps:
  - console: {line: "md 0 1", expect: "zz", timeout: 0.3}
  - console: {line: "md 0 1", expect: "74"}
"""
    res = run_scenario(parse_scenario(text, tmp_path / "s.yaml"), tmp_path / "run")
    assert [s.status for s in res.steps] == ["failed", "not run"]
    assert res.failures[0].step == 0 and "waited for 'zz'" in res.failures[0].what
    assert "74" in res.failures[0].actual


def test_engine_during_power_off_when_text_appears(tmp_path):
    text = """
name: during
board: toy
steps:
  - engine: [toy, ask]
    timeout: 60  # a hang guard, not a speed limit (a busy host took over 5 s)
    during: [{when: "Really? ", do: power_off}]
    expect: {exit: 4, json: {message: no answer}}
  - power_on: {then: prompt}
  - engine: [toy, ask]
    expect: {exit: 0, json: {message: confirmed}}
"""
    res = run_scenario(parse_scenario(text, tmp_path / "d.yaml"), tmp_path / "run", keep="never")
    assert res.outcome == "passed", res.failure_text()


def test_missing_board_pieces_skip_with_the_reason(tmp_path):
    spec = boards.BoardSpec(name="ghost", device="emulators.ghost:GhostDevice", flash_size=0x1000)
    boards.register_board(spec)
    try:
        sc = parse_scenario("name: g\nboard: ghost\nsteps: [power_cycle]\n", tmp_path / "g.yaml")
        res = run_scenario(sc, tmp_path / "run")
        assert res.outcome == "skipped"
        assert "needs ghost: cannot import emulators.ghost" in res.reason
    finally:
        boards.unregister_board("ghost")


def test_console_scenario_on_the_emulated_hi3511(tmp_path):
    why = boards.check_capability("hi3511")
    if why:
        pytest.skip(why)
    text = """
name: hi3511-console
board: hi3511
device: {seed: 5, start: prompt}
steps:
  - console: {line: "version", expect: "U-Boot 1.1.4"}
  - console: {lines: ["setenv serverip 192.168.1.100"]}
  - console: {line: "printenv serverip", expect: "serverip=192.168.1.100"}
  - power_cycle: {then: prompt}
  - console: {line: "nosuchcommand", expect: "Unknown command 'nosuchcommand' - try 'help'"}
expect:
  typed: {contains: ["setenv serverip 192.168.1.100"]}
  flash: [{range: all, unchanged: true}]
"""
    res = run_scenario(parse_scenario(text, tmp_path / "h.yaml"), tmp_path / "run")
    assert res.outcome == "passed", res.failure_text()
    assert res.devices[0].flash_map is not None
    assert set(res.devices[0].flash_map.states) <= {"E", "X"}


# --------------------------------------------------------------------------- fixtures and runner


def test_fixtures_lab_tftp_and_firmware(lab, lab_tftp_server, firmware, tmp_path):
    import tftpy

    assert lab.root == tmp_path / "lab"
    dev = lab.start("toy", flash=firmware.build("toy", "vendor", firmware="F"))
    assert dev.flash_bytes()[:15] == b"toy firmware F\n"
    (lab_tftp_server.root / "x.bin").write_bytes(b"hello")
    out = io.BytesIO()
    tftpy.TftpClient("127.0.0.1", lab_tftp_server.port).download("x.bin", out, timeout=1)
    assert out.getvalue() == b"hello"


def test_fixture_run_scenario_text(run_scenario_text):
    res = run_scenario_text(
        "name: f\nboard: toy\nsteps:\n  - console: {line: md 0 3, expect: '746f79'}\n"
    )
    assert res.outcome == "passed", res.failure_text()


def test_runner_lists_and_tables(tmp_path, capsys):
    from harness.scenarios import cli as runner
    from harness.scenarios.report import ScenarioResult

    d = tmp_path / "scenarios"
    d.mkdir()
    (d / "ok.yaml").write_text("name: ok\nboard: toy\nsteps: [power_cycle]\n")
    (d / "ghost.yaml").write_text(
        "name: needs-ghost\nboard: toy\nrequires: [tool:no-such-tool-xyz]\nsteps: [power_cycle]\n"
    )
    assert runner.main(["scenarios", "list", str(d)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"ok\s+\| toy\s+\| .*ok\.yaml\s+\| ready", out)
    assert "waits: needs tool:no-such-tool-xyz: no-such-tool-xyz is not installed" in out
    (d / "bad.yaml").write_text("name: bad\nboard: toy\n")
    assert runner.main(["scenarios", "list", str(d)]) == 2
    assert "bad.yaml:1:1: missing required key 'steps'" in capsys.readouterr().err
    table = runner.format_table(
        [
            ScenarioResult("b-scn", "toy", outcome="passed", duration=1.25),
            ScenarioResult(
                "a-scn", "toy", outcome="skipped", reason="needs toy_engine: x", duration=0
            ),
            ScenarioResult("c-scn[upstream]", "toy", outcome="failed", duration=2),
            ScenarioResult("c-scn[hisilicon]", "toy", outcome="passed", duration=0.5),
        ]
    )
    # sorted by name, one row per variant, every column padded to its widest cell
    assert table.splitlines() == [
        "scenario         | board | result                        | time",
        "-----------------+-------+-------------------------------+-------",
        "a-scn            | toy   | skipped (needs toy_engine: x) | 0.00 s",
        "b-scn            | toy   | passed                        | 1.25 s",
        "c-scn[hisilicon] | toy   | passed                        | 0.50 s",
        "c-scn[upstream]  | toy   | failed                        | 2.00 s",
        "",
        "1 failed, 2 passed, 1 skipped",
    ]


def test_a_scenario_whose_flash_is_a_file(tmp_path):
    """``flash: {file: ...}`` is read before the device starts (placeholders that need the
    device are not known yet; the path is)."""
    from harness.firmware.hi3511 import vendor_flash
    from harness.scenarios import parse_scenario, run_scenario

    flash = tmp_path / "cam.bin"
    flash.write_bytes(vendor_flash("A"))
    text = (
        "name: flash-from-file\nboard: hi3511\ndevice: {seed: 1}\n"
        f"flash: {{file: {flash}}}\n"
        'steps:\n  - console: {line: "version", expect: "U-Boot 1.1.4"}\n'
    )
    sc = parse_scenario(text, tmp_path / "s.yaml")
    res = run_scenario(sc, tmp_path / "run")
    assert res.outcome == "passed", res.failure_text()


# --------------------------------------------------------------------------- fault steps
# One scenario step per fault the campaign can arm (harness.lab.faults), each shown to
# strike: the step's record says "fired", and the device shows what the fault does.


def _fault_run(tmp_path, steps: str, files: str = ""):
    text = (
        "name: toy-fault\nboard: toy\nflash: {builder: vendor, firmware: A}\n"
        + files
        + "steps:\n"
        + steps
    )
    return run_scenario(parse_scenario(text, tmp_path / "f.yaml"), tmp_path / "run", keep="always")


def _passed(res) -> None:
    assert res.outcome == "passed", res.failure_text()


def _toy_flash(tmp_path) -> bytes:
    return (tmp_path / "run" / "toy" / "flash.bin").read_bytes()


def test_fault_step_power_loss_with_power_back(tmp_path):
    res = _fault_run(
        tmp_path,
        """  - fault: {power_loss: {program_bytes: 2, power_back: 0.05}}
  - console: {line: "write 0x9000 aabbccdd", expect: "Hit any key to stop autoboot"}
""",
    )
    _passed(res)
    assert res.steps[0].detail.endswith("[fired]")
    assert "power back after 0.05 s" in res.steps[0].detail
    assert _toy_flash(tmp_path)[0x9000:0x9004] == bytes.fromhex("aabbffff")


def test_fault_step_power_loss_without_power_back_stays_off(tmp_path):
    res = _fault_run(
        tmp_path,
        """  - fault: {power_loss: {program_bytes: 2}}
  - console: {line: "write 0x9000 aabbccdd", expect: "Hit any key to stop autoboot", timeout: 0.5}
""",
    )
    assert res.outcome == "failed" and res.steps[1].status == "failed"


@pytest.mark.parametrize(
    ("fault", "expect"),
    [
        # the third byte the host types resets the CPU: the loader starts again
        ("{watchdog: {at_byte: 2, direction: host}}", "Hit any key to stop autoboot"),
        # the power goes at the fifth byte the device prints and comes back
        ("{power_cut: {at_byte: 4, direction: device, power_back: 0.05}}", "Hit any key"),
        # a log line arrives in the middle of the output
        (
            '{log_lines: {at_byte: 0, direction: host, text: "eth0: link up\\r\\n"}}',
            "eth0: link up",
        ),
    ],
)
def test_fault_step_at_a_link_byte(tmp_path, fault, expect):
    res = _fault_run(
        tmp_path,
        f"""  - fault: {fault}
  - console: {{line: "md 0 4", expect: "{expect}"}}
""",
    )
    _passed(res)
    assert res.steps[0].detail.endswith("[fired]"), res.steps[0].detail
    assert _toy_flash(tmp_path)[:4] == b"toy "  # nothing written


def test_fault_step_link_byte_far_away_does_not_fire(tmp_path):
    res = _fault_run(
        tmp_path,
        """  - fault: {watchdog: {at_byte: 100000, direction: host}}
  - console: {line: "md 0 4", expect: "746f7920"}
""",
    )
    _passed(res)
    assert res.steps[0].detail.endswith("[did not fire]")


FW = 'files:\n  fw.bin: {hex: "%s"}\n' % ("00 11 22 33 " * 600)


def test_fault_step_tftp_duplicates(tmp_path):
    res = _fault_run(
        tmp_path,
        """  - fault: {network: {duplicate: 1.0}}
  - console: {line: "get fw.bin 0x8000", expect: "Bytes transferred = 2400"}
""",
        FW,
    )
    _passed(res)
    assert res.steps[0].detail.endswith("[fired]")
    assert _toy_flash(tmp_path)[0x8000 : 0x8000 + 2400] == bytes.fromhex("00112233" * 600)


def test_fault_step_tftp_power_cut_with_power_back(tmp_path):
    res = _fault_run(
        tmp_path,
        """  - fault: {tftp_power_cut: {after_packets: 3, power_back: 0.05}}
  - console: {line: "get fw.bin 0x8000", expect: "Hit any key to stop autoboot"}
""",
        FW,
    )
    _passed(res)
    assert res.steps[0].detail.endswith("[fired]")
    assert "Bytes transferred" not in res.devices[0].transcript


# --------------------------------------------------------------------------- variants


TOY_VARIANTS = """name: toy-greeting
board: toy
variants: {greeting: [Hello-1, Hello-2]}
steps:
  - power_cycle: {then: boot, expect: "{greeting}"}
  - console: {expect: "VFS: Mounted root"}
"""


def test_variants_run_once_per_value_with_the_device_option(tmp_path):
    sc = parse_scenario(TOY_VARIANTS, tmp_path / "v.yaml")
    runs = sc.expand()
    assert [r.run_name for r in runs] == ["toy-greeting[Hello-1]", "toy-greeting[Hello-2]"]
    other = {"Hello-1": "Hello-2", "Hello-2": "Hello-1"}
    for r in runs:
        res = run_scenario(r, tmp_path / r.variant_id, keep="always")
        _passed(res)
        assert res.name == r.run_name
        text = res.devices[0].transcript
        want = r.variant["greeting"]
        assert want in text and other[want] not in text and "Toy Boot 1.0" not in text


def test_a_variant_must_be_a_device_option_of_the_board(tmp_path):
    with pytest.raises(ScenarioError) as ei:
        parse_scenario(TOY_VARIANTS.replace("greeting:", "greting:"), tmp_path / "v.yaml")
    msg = str(ei.value)
    assert "v.yaml:3:" in msg and "toy has no device option 'greting'" in msg
    assert "did you mean 'greeting'" in msg
    with pytest.raises(ScenarioError, match="toy has no device option 'colour'"):
        parse_scenario(
            "name: t\nboard: toy\ndevice: {options: {colour: red}}\nsteps: [power_cycle]\n",
            tmp_path / "o.yaml",
        )
