"""Bad input, everywhere (issue 8): the engine's command line, scenario files, and the
embedded TFTP server.

Every refusal must exit non-zero with a JSON message that says what is wrong and
what to do, and touch nothing: the emulated camera's flash is compared byte for
byte before and after, what the host typed on its console is checked to be
empty when the input can be refused before the port is opened, and no output
file may appear. The engine runs in-process (``recovery.cli.main`` via the lab)
as the ``camrescue`` command does.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import tftpy

from harness import fuzz
from harness import lab as labmod
from harness.firmware import xr872 as xfw
from harness.firmware.hi3511 import root_image
from recovery.tftp.server import TftpServer

HI_BACKUP = (0x100000, 0x1000000)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[labmod.Lab]:
    with labmod.Lab(tmp_path_factory.mktemp("badinput")) as lab:
        yield lab


_n = iter(range(1_000_000))


@contextmanager
def camera(lab: labmod.Lab, board: str, **kw) -> Iterator[labmod.LabDevice]:
    """A fresh camera of ``board`` in ``lab``, at its prompt (or booted, XR872)."""
    flash = {"hi3511": "vendor:A", "w90p745": None, "xr872": None}[board]
    power = "boot" if board == "xr872" else "prompt"
    dev = lab.start(board, name=f"{board}-{next(_n)}", flash=flash, power=power, **kw)
    try:
        yield dev
        assert dev.device.crash is None, dev.device.crash_text
    finally:
        dev.close()
        del lab.devices[dev.name]


class Cameras(dict):
    """One camera per board for the tests whose input is refused before the port is
    opened: a refusal leaves it as it was (each test still compares its own before/after)."""

    def __init__(self, lab: labmod.Lab) -> None:
        super().__init__()
        self.lab = lab

    def __missing__(self, board: str) -> labmod.LabDevice:
        power = "boot" if board == "xr872" else "prompt"
        flash = "vendor:A" if board == "hi3511" else None
        dev = self.lab.start(board, name=f"shared-{board}", flash=flash, power=power)
        self[board] = dev
        return dev


@pytest.fixture(scope="module")
def cams(lab: labmod.Lab) -> Iterator[Cameras]:
    c = Cameras(lab)
    yield c
    for dev in c.values():
        assert dev.device.crash is None, dev.device.crash_text


def typed(dev: labmod.LabDevice, since: int = 0) -> bytes:
    """What the host sent to the device (after ``since`` transcript chunks)."""
    chunks = list(dev.transcript.chunks)[since:]
    return b"".join(c.data for c in chunks if c.direction == "host")


def refused(r: labmod.EngineResult, *words: str) -> dict:
    """The engine said no, clearly: non-zero exit, one JSON object with the words."""
    assert r.exit != 0, (r.exit, r.stdout)
    assert not r.timed_out and not r.crashed, r.stderr[-2000:]
    j = r.json
    assert isinstance(j, dict) and j["ok"] is False, r.stdout
    assert j["exit_code"] == r.exit
    text = f"{j['message']} {j.get('hint') or ''}".lower()
    for w in words:
        assert w.lower() in text, (w, j["message"], j.get("hint"))
    assert "internal error" not in j["message"]
    return j


def run(dev: labmod.LabDevice, argv: list[str], **kw) -> tuple[labmod.EngineResult, bool, bytes]:
    """Run the engine; return the result, whether the flash is unchanged, what was typed."""
    before = dev.flash_bytes()
    mark = len(dev.transcript.chunks)
    r = dev.engine(argv, timeout=kw.pop("timeout", 60), **kw)
    return r, dev.flash_bytes() == before, typed(dev, mark)


# -- valid inputs (so that only the one thing under test is wrong) ---------------------------


@pytest.fixture(scope="module")
def inputs(lab: labmod.Lab) -> dict[str, Path]:
    w = lab.work
    flash_a = labmod.build_image("hi3511", "vendor", firmware="A")
    (w / "instar.jffs2").write_bytes(root_image("B"))
    (w / "seed-dump.bin").write_bytes(flash_a[HI_BACKUP[0] : HI_BACKUP[1]])  # as in seed 000
    (w / "xr_system.img").write_bytes(xfw.build_image(xfw.xr872_sections(12)))
    (w / "donor.bin").write_bytes(xfw.xr872_flash(11))
    for name, data in fuzz.w90_user_dump("quick").items():  # a dump of a 16 KiB image
        (w / name).parent.mkdir(parents=True, exist_ok=True)
        (w / name).write_bytes(data)
    return {
        "image": w / "instar.jffs2",
        "backup": w / "seed-dump.bin",
        "xr_image": w / "xr_system.img",
        "donor": w / "donor.bin",
        "dump": w / "userdump",
    }


def op_argv(op: str, inputs: dict[str, Path], out: Path) -> list[str]:
    return {
        "hi3511 backup": ["hi3511", "backup", "--out", str(out / "b.bin")],
        "hi3511 flash": [
            "hi3511",
            "flash",
            str(inputs["image"]),
            "--backup-out",
            str(out / "b.bin"),
        ],
        "hi3511 restore": ["hi3511", "restore", str(inputs["backup"])],
        "w90p745 dump": ["w90p745", "dump", "--out", str(out / "dump")],
        "w90p745 restore": ["w90p745", "restore", str(inputs["dump"])],
        "xr872 dump": ["xr872", "dump", "--out", str(out / "x.bin")],
        "xr872 write": ["xr872", "write", str(inputs["xr_image"]), "--backup", str(out / "k.bin")],
        "xr872 clone": [
            "xr872",
            "clone",
            "--from",
            str(inputs["donor"]),
            "--backup",
            str(out / "k.bin"),
        ],
    }[op]


OPS = [f"{b} {o}" for b, ops in fuzz.BOARD_OPS.items() for o in ops]


# -- ports ---------------------------------------------------------------------------------


@pytest.mark.parametrize("op", OPS)
def test_a_missing_port(lab, inputs, tmp_path, op):
    out = tmp_path / "out"
    out.mkdir()
    argv = [*op_argv(op, inputs, out), "--port", "/dev/ttyUSB-not-here", "--json"]
    if not op.startswith("xr872"):
        argv += ["--wait", "1"]  # they wait that long for an adapter to be plugged in
    if op.startswith("hi3511") and op != "hi3511 restore":
        argv += ["--tftp-bind", "127.0.0.1:0"]
    r = labmod.run_engine_inprocess(labmod.engine_main("hi3511"), argv, 60)
    res = labmod.EngineResult(argv, r[0], r[1], r[2], labmod.parse_json_output(r[1]), 0, r[3], r[4])
    j = refused(res, "/dev/ttyUSB-not-here", "does not exist", "camrescue ports")
    assert res.exit == 4 and str(j["flash_state"]).startswith("untouched")
    assert list(out.iterdir()) == []  # no output file, no dump directory


@pytest.mark.parametrize("kind", ["/dev/null", "regular file", "directory"])
@pytest.mark.parametrize("op", ["hi3511 backup", "w90p745 dump", "xr872 dump"])
def test_a_port_that_is_not_a_serial_device(lab, inputs, tmp_path, op, kind):
    port = {
        "/dev/null": "/dev/null",
        "regular file": str(tmp_path / "f"),
        "directory": str(tmp_path),
    }[kind]
    (tmp_path / "f").write_bytes(b"AT\r\n")
    out = tmp_path / "out"
    out.mkdir()
    argv = [*op_argv(op, inputs, out), "--port", port, "--json"]
    r = labmod.run_engine_inprocess(labmod.engine_main("hi3511"), argv, 60)
    res = labmod.EngineResult(argv, r[0], r[1], r[2], labmod.parse_json_output(r[1]), 0, r[3], r[4])
    refused(res, port, "serial port")
    assert res.exit == 4 and list(out.iterdir()) == []
    assert (tmp_path / "f").read_bytes() == b"AT\r\n"  # nothing was written to the file


class _Picocom:
    """Another program that has the port open, locked and reading (picocom does
    ``flock(LOCK_EX | LOCK_NB)`` on the tty and reads everything)."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._stop = threading.Event()
        self.got = bytearray()
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        import select

        while not self._stop.is_set():
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if r:
                try:
                    self.got += os.read(self.fd, 4096)
                except OSError:
                    return

    def close(self) -> None:
        self._stop.set()
        self._t.join(2)
        os.close(self.fd)


INFO = {
    "hi3511": ["hi3511", "info", "--wait", "3"],
    "w90p745": ["w90p745", "info", "--wait", "3"],
    "xr872": ["xr872", "info"],
}


_BUSY: dict[str, tuple[labmod.EngineResult, bool]] = {}


def _busy_run(lab: labmod.Lab, board: str) -> tuple[labmod.EngineResult, bool]:
    """One engine run against a port another program holds (shared by two tests)."""
    if board in _BUSY:
        return _BUSY[board]
    with camera(lab, board) as dev:
        dev.release_console()
        holder = _Picocom(dev.path)
        try:
            r, same, _ = run(dev, INFO[board])
        finally:
            holder.close()
    _BUSY[board] = (r, same)
    return r, same


@pytest.mark.parametrize(
    "board",
    [
        "hi3511",
        "w90p745",
        "xr872",
    ],
)
def test_a_busy_port_fails_clearly_and_touches_nothing(lab, board):
    r, same = _busy_run(lab, board)
    assert same
    refused(r)
    assert r.exit == 4


@pytest.mark.parametrize("board", ["hi3511", "w90p745", "xr872"])
def test_a_busy_port_is_named_busy(lab, board):
    r, _ = _busy_run(lab, board)
    j = refused(r)
    text = f"{j['message']} {j.get('hint')}".lower()
    assert "busy" in text or "in use" in text or "locked" in text, j


@pytest.mark.parametrize(
    "board",
    [
        "hi3511",
        "w90p745",
        "xr872",
    ],
)
def test_a_port_that_vanishes_while_the_engine_listens(lab, board):
    """The adapter is pulled 0.5 s into the run: the engine is still waiting for the
    camera (U-Boot's prompt, the loader's banner, the quiet line before the ROM sync)."""
    argv = {
        "hi3511": ["hi3511", "info", "--wait", "5"],
        "w90p745": ["w90p745", "info", "--wait", "5"],
        "xr872": ["xr872", "info", "--settle", "3"],
    }[board]
    with camera(lab, board) as dev:
        dev.power_off()  # a camera that says nothing: the engine keeps listening

        def pull() -> None:
            threading.Event().wait(0.5)
            dev.device.uart.close()

        r, same, _ = run(dev, argv, during=pull)
    assert same
    refused(r, "lost the serial port")
    assert r.exit == 4


@pytest.mark.parametrize(
    ("board", "baud"),
    [(b, v) for b in ("hi3511", "w90p745", "xr872") for v in ("0", "-1", "abc", "50", "123456789")],
)
def test_nonsense_baud(lab, board, baud):
    argv = {
        "hi3511": ["hi3511", "info", "--wait", "2"],
        "w90p745": ["w90p745", "info", "--wait", "2"],
        "xr872": ["xr872", "info", "--timeout", "0.5", "--settle", "0.1"],
    }[board]
    with camera(lab, board) as dev:
        r, same, _ = run(dev, [*argv, "--baud", baud], timeout=60)
        assert same
        j = refused(r)
        text = f"{j['message']} {j.get('hint')}".lower()
        assert "baud" in text, j


def test_a_baud_that_is_not_a_number_is_a_usage_error_in_json(lab):
    with camera(lab, "xr872") as dev:
        r, same, keys = run(dev, ["xr872", "dump", "--out", "x.bin", "--baud", "fast"])
    assert same and keys == b""
    assert r.exit == 2 and "'fast' is not a standard baud rate" in r.json["message"]


# -- input files ---------------------------------------------------------------------------


def _bad_file(kind: str, tmp_path: Path) -> Path:
    p = tmp_path / f"bad-{kind}"
    if kind == "missing":
        return p
    if kind == "directory":
        p.mkdir()
        return p
    p.write_bytes(b"")
    return p


@pytest.mark.parametrize("kind", ["missing", "empty", "directory"])
@pytest.mark.parametrize(
    "op", ["hi3511 flash", "hi3511 restore", "xr872 write", "xr872 clone", "w90p745 restore"]
)
def test_unreadable_or_empty_input_files_are_refused_before_anything(cams, tmp_path, op, kind):
    bad = _bad_file(kind, tmp_path)
    if op == "w90p745 restore" and kind == "empty":
        bad.unlink()
        bad.mkdir()  # an empty dump directory
        (bad / "manifest.json").write_bytes(b"")  # ... with an empty manifest
    argv = {
        "hi3511 flash": ["hi3511", "flash", str(bad), "--no-backup"],
        "hi3511 restore": ["hi3511", "restore", str(bad)],
        "xr872 write": ["xr872", "write", str(bad), "--no-backup"],
        "xr872 clone": ["xr872", "clone", "--from", str(bad), "--no-backup"],
        "w90p745 restore": ["w90p745", "restore", str(bad)],
    }[op]
    dev = cams[op.split()[0]]
    r, same, keys = run(dev, argv)
    assert same, "the flash changed"
    assert keys == b"", f"the engine typed {keys[:80]!r} before refusing"
    j = refused(r)
    text = f"{j['message']} {j.get('hint')}".lower()
    assert bad.name.lower() in text, j  # names the input that is wrong
    assert r.exit in (2, 3), j
    assert str(j.get("flash_state")).startswith("untouched"), j  # and says the flash is as it was


WRONG_BOARD = {
    "an XR872 image to hi3511 flash": ("hi3511", ["hi3511", "flash", "{xr}", "--no-backup"], 3),
    "a JFFS2 root to xr872 write": ("xr872", ["xr872", "write", "{jffs2}", "--no-backup"], 3),
    "a JFFS2 root to xr872 clone": (
        "xr872",
        ["xr872", "clone", "--from", "{jffs2}", "--no-backup"],
        3,
    ),
    "an XR872 dump to hi3511 restore": ("hi3511", ["hi3511", "restore", "{donor}"], 3),
    "a W90 dump to hi3511 restore": ("hi3511", ["hi3511", "restore", "{dump}"], 3),
    "a Hi3511 backup to w90p745 restore": ("w90p745", ["w90p745", "restore", "{backup}"], 3),
    "an XR809 image to xr872 write": ("xr872", ["xr872", "write", "{xr809}", "--no-backup"], 3),
    "a Hi3511 root as a W90 dump directory": ("w90p745", ["w90p745", "restore", "{jffs2dir}"], 3),
}


@pytest.mark.parametrize("case", list(WRONG_BOARD))
def test_images_for_the_wrong_board(cams, inputs, tmp_path, case):
    board, argv, code = WRONG_BOARD[case]
    (tmp_path / "xr809.img").write_bytes(xfw.build_image(xfw.xr809_sections(0)))
    jdir = tmp_path / "jffs2dir"
    jdir.mkdir()
    shutil.copy(inputs["image"], jdir / "manifest.json")
    names = {
        "xr": str(inputs["xr_image"]),
        "jffs2": str(inputs["image"]),
        "donor": str(inputs["donor"]),
        "dump": str(inputs["dump"]),
        "backup": str(inputs["backup"]),
        "xr809": str(tmp_path / "xr809.img"),
        "jffs2dir": str(jdir),
    }
    argv = [a.format(**names) for a in argv]
    dev = cams[board]
    r, same, keys = run(dev, argv)
    assert same and keys == b"", keys[:80]
    refused(r)
    assert r.exit == code, r.json


@pytest.mark.parametrize(
    "name",
    [
        "fw\nreset.jffs2",
        "a b.jffs2",
        "fw\treset",
        "`reset`.jffs2",
        "x$(reset)",
        "fw;bootm",
        "fw%00",
    ],
)
def test_a_name_u_boot_would_split_is_refused_before_typing(cams, inputs, name):
    dev = cams["hi3511"]
    argv = ["hi3511", "flash", str(inputs["image"]), "--no-backup", "--remote-name", name]
    r, same, keys = run(dev, argv)
    assert same and keys == b""
    refused(r, "name")
    assert r.exit == 3


@pytest.mark.parametrize(
    "name", ["../escape.jffs2", "/tmp/escape.jffs2", "a/../../escape.jffs2", "..\\escape"]
)
def test_names_that_escape_the_tftp_root(cams, inputs, tmp_path, name):
    root = tmp_path / "srv" / "tftp"
    root.mkdir(parents=True)
    dev = cams["hi3511"]
    argv = ["hi3511", "flash", str(inputs["image"]), "--no-backup", "--remote-name", name]
    argv += ["--no-server", "--tftp-root", str(root)]
    r, same, keys = run(dev, argv)
    assert same and keys == b""
    refused(r)
    assert r.exit == 3
    assert not (tmp_path / "srv" / "escape.jffs2").exists()
    assert not Path("/tmp/escape.jffs2").exists()
    assert list(root.iterdir()) == []


def test_a_backup_of_another_camera_is_not_restored(lab, tmp_path):
    from harness.fuzz import hi3511_user_backup

    files = hi3511_user_backup()
    man = json.loads(files["user-backup.bin.json"])
    man["ethaddr"] = "00:25:07:00:00:99"  # another camera's
    (tmp_path / "other.bin").write_bytes(files["user-backup.bin"])
    (tmp_path / "other.bin.json").write_text(json.dumps(man))
    with camera(lab, "hi3511") as dev:
        dev.device.flash.load(0x100000, b"\x00" * 16)  # so that a restore would change it
        dev.initial_flash = dev.flash_bytes()
        argv = ["hi3511", "restore", str(tmp_path / "other.bin"), "--partition", "kernel"]
        r, same, _ = run(dev, [*argv, "--no-boot"])
        assert same, "another camera's backup was written"
        refused(r, "another camera")


def test_an_existing_backup_is_never_overwritten(cams, inputs, tmp_path):
    keep = tmp_path / "unit-before.bin"
    keep.write_bytes(b"the user's earlier backup")
    dev = cams["xr872"]
    r, same, _ = run(dev, ["xr872", "write", str(inputs["xr_image"]), "--backup", str(keep)])
    assert same
    refused(r, "already exists")
    assert r.exit == 9 and keep.read_bytes() == b"the user's earlier backup"


def test_a_dump_into_a_directory_of_another_camera_is_refused(lab, tmp_path):
    d = tmp_path / "dump"
    d.mkdir()
    (d / "manifest.json").write_text(
        json.dumps({"format": "camrescue-w90p745-dump/1", "table": [], "images": []})
    )
    with camera(lab, "w90p745") as dev:
        r, same, _ = run(dev, ["w90p745", "dump", "--out", str(d), "--images", "webui"])
    assert same
    refused(r, "different image table")
    assert sorted(p.name for p in d.iterdir()) == ["manifest.json"]


# -- scenario files (what tests/test_scenario_schema.py does not already cover) ----------------


def _load_problems(path: Path) -> list[str]:
    from harness.scenarios import ScenarioError, load_scenario

    with pytest.raises(ScenarioError) as e:
        load_scenario(path)
    return [str(p) for p in e.value.problems]


def test_a_scenario_file_that_is_not_text(tmp_path):
    p = tmp_path / "bin.yaml"
    p.write_bytes(b"name: x\nboard: \xff\xfe hi3511\n")
    (problem,) = _load_problems(p)
    assert problem.startswith(f"{p}:1:1:") and "cannot read the file" in problem


def test_a_scenario_path_that_is_a_directory(tmp_path):
    p = tmp_path / "dir.yaml"
    p.mkdir()
    (problem,) = _load_problems(p)
    assert "cannot read the file" in problem


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    p = tmp_path / "bomb.yaml"
    p.write_text("\n".join(lines) + "\nname: x\nboard: hi3511\nsteps: [power_cycle]\n")
    problems = _load_problems(p)
    assert any("unknown key 'a0'" in x for x in problems)


def test_a_deeply_nested_scenario(tmp_path):
    p = tmp_path / "deep.yaml"
    p.write_text(
        "name: x\nboard: hi3511\nsteps: [power_cycle]\ndescription: "
        + "[" * 5000
        + "]" * 5000
        + "\n"
    )
    problems = _load_problems(p)
    assert problems and all(x.startswith(str(p)) for x in problems)


def test_tabs_and_a_bad_document_start_point_at_their_line(tmp_path):
    p = tmp_path / "tabs.yaml"
    p.write_text("name: x\nboard: hi3511\nsteps:\n\t- power_cycle\n")
    (problem,) = _load_problems(p)
    assert problem.startswith(f"{p}:4:") and "not valid YAML" in problem


def test_scenarios_list_names_the_broken_file_and_fails(tmp_path, capsys):
    from harness.scenarios import cli as runner

    good = tmp_path / "good.yaml"
    good.write_text("name: good\nboard: hi3511\nsteps: [power_cycle]\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nboard: hi3511\nstepz: [power_cycle]\n")
    assert runner.main(["scenarios", "list", str(tmp_path)]) == 2
    out = capsys.readouterr()
    assert f"{bad}:3:1: unknown key 'stepz' (did you mean 'steps'?)" in out.err
    assert "2 scenario files, 1 invalid" in out.out


# -- the embedded TFTP server (what tests/test_recovery_tftp.py does not already cover) ----------


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    with TftpServer(root, ("127.0.0.1", 0)) as server:
        yield root, outside, server


def _raw_request(port: int, opcode: int, name: bytes, timeout: float = 5) -> bytes:
    """Send one RRQ/WRQ with an arbitrary name; return the first answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(struct.pack("!H", opcode) + name + b"\0octet\0", ("127.0.0.1", port))
        return s.recvfrom(600)[0]


@pytest.mark.parametrize(
    "name",
    [
        b"..\\outside\\secret.txt",
        b"sub\\..\\..\\outside\\secret.txt",
        b"C:secret.txt",
        b"../outside/secret.txt",
        b"/etc/passwd",
        b"caf\xc3\xa9.bin",  # UTF-8: killed tftpy's server (UnicodeDecodeError)
        b"\xff\xfe.bin",
        b"sub/",
        b".",
        b"a//b",
        b"x" * 300,
    ],
)
def test_tftp_answers_bad_names_with_an_error_and_keeps_serving(served, name, tmp_path):
    root, outside, server = served
    (outside / "secret.txt").write_text("not for the camera")
    server.publish("fw.bin", b"F" * 700)
    for opcode in (1, 2):  # RRQ, WRQ
        answer = _raw_request(server.port, opcode, name)
        assert answer[:2] == b"\x00\x05", answer  # an ERROR packet, no data, no ACK
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert list(root.iterdir()) == []
    assert {t.status for t in server.requests()} <= {"refused"}
    tftpy.TftpClient("127.0.0.1", server.port).download("fw.bin", str(tmp_path / "got"))
    assert (tmp_path / "got").read_bytes() == b"F" * 700


def test_tftp_a_nul_inside_a_name_is_an_error(served):
    """``a\\0b\\0octet\\0``: mode "b", an option without value: malformed, ERROR 4."""
    root, outside, server = served
    assert _raw_request(server.port, 2, b"a\0b")[:4] == b"\x00\x05\x00\x04"
    assert list(root.iterdir()) == [] and server.requests() == []


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        b"\x00",
        b"\x00\x01",
        b"\x00\x01fw.bin",  # no terminating NUL
        b"\x00\x01fw.bin\x00netascii\x00",  # not octet
        b"\x00\x01" + b"a" * 600 + b"\x00octet\x00",  # oversized request
        b"\x00\x03\x00\x01data",  # DATA to the request port
        b"\x00\x04\x00\x01",  # ACK to the request port
        b"\x00\x09junk",
        os.urandom(1400),
    ],
)
def test_tftp_garbage_datagrams_never_stop_the_server(served, packet, tmp_path):
    root, _, server = served
    server.publish("fw.bin", b"G" * 1000)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(packet, ("127.0.0.1", server.port))
    tftpy.TftpClient("127.0.0.1", server.port).download("fw.bin", str(tmp_path / "got"))
    assert (tmp_path / "got").read_bytes() == b"G" * 1000
    assert list(root.iterdir()) == []


def test_tftp_uploads_never_write_through_a_symlink_or_into_the_root(served, tmp_path):
    root, outside, server = served
    target = outside / "precious.bin"
    target.write_bytes(b"the user's precious file")
    (root / "dump.bin").symlink_to(target)
    (root / "sub").symlink_to(outside, target_is_directory=True)
    server.expect_upload("dump.bin", 4096)
    src = tmp_path / "payload"
    src.write_bytes(b"X" * 2000)
    client = tftpy.TftpClient("127.0.0.1", server.port)
    with pytest.raises(tftpy.TftpShared.TftpException):
        client.upload("sub/planted.bin", str(src), timeout=1)
    client.upload("dump.bin", str(src), timeout=1)  # the expected one: kept private
    assert server.take_upload("dump.bin") == b"X" * 2000
    assert target.read_bytes() == b"the user's precious file"
    assert sorted(p.name for p in outside.iterdir()) == ["precious.bin"]


def test_tftp_does_not_serve_directories_or_the_root_itself(served, tmp_path):
    root, outside, server = served
    (root / "sub").mkdir()
    client = tftpy.TftpClient("127.0.0.1", server.port)
    for name in ("sub", "sub/", "."):
        with pytest.raises(tftpy.TftpShared.TftpException):
            client.download(name, str(tmp_path / "got"), timeout=1)
    assert {t.status for t in server.requests()} <= {"missing", "refused"}


def test_tftp_publish_refuses_unsafe_names(served):
    from recovery.tftp.server import UnsafeName

    _, _, server = served
    for name in ("../x", "/abs", "a\\b", "", "a//b", "caf\u00e9"):
        with pytest.raises(UnsafeName):
            server.publish(name, b"x")


def test_tftp_a_client_that_vanishes_mid_download_does_not_kill_the_server(served, tmp_path):
    root, _, server = served
    blob = os.urandom(5000)
    server.publish("fw.bin", blob)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(b"\x00\x01fw.bin\0octet\0", ("127.0.0.1", server.port))
        first, _ = s.recvfrom(600)
        assert first[:4] == b"\x00\x03\x00\x01"  # DATA block 1 ... and no ACK ever comes
    client = tftpy.TftpClient("127.0.0.1", server.port)
    client.download("fw.bin", str(tmp_path / "got"), timeout=1)
    assert (tmp_path / "got").read_bytes() == blob
    assert server._thread is not None and server._thread.is_alive(), server._error


def test_tftp_300_half_open_sessions_do_not_stall_a_transfer(served, tmp_path):
    """Issue 17: 300 half-open sessions stalled the server for 5 s. The oldest half-open
    sessions are dropped for new ones; a transfer in progress goes on."""
    root, _, server = served
    blob = os.urandom(200_000)
    server.publish("fw.bin", blob)
    socks = []
    try:
        for _ in range(300):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(b"\x00\x01fw.bin\0octet\0", ("127.0.0.1", server.port))
            socks.append(s)
        client = tftpy.TftpClient("127.0.0.1", server.port)
        client.download("fw.bin", str(tmp_path / "got"), timeout=2)
    finally:
        for s in socks:
            s.close()
    assert (tmp_path / "got").read_bytes() == blob
    assert len(server._sessions) <= server.max_sessions
    # the server closes the download when the client's last ACK arrives, maybe just after
    # the client returned
    deadline = threading.Event()
    for _ in range(500):
        if any(t.status == "done" for t in server.requests("fw.bin")):
            break
        deadline.wait(0.01)
    assert any(t.status == "done" for t in server.requests("fw.bin"))
