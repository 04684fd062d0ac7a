"""recovery's shared parts (errors, files, progress, jsonout, cliutil): exit codes, errors, atomic files, progress bars, JSON results, CLI helpers."""

from __future__ import annotations

import argparse
import io
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recovery import cliutil, jsonout
from recovery.cliutil import parse_host_port, parse_int, run_operation
from recovery.errors import (
    EXIT_CODES,
    BootError,
    ConsoleError,
    DeviceError,
    ImageError,
    Interrupted,
    NetworkError,
    RecoveryError,
    RefusedError,
    UsageError,
    VerifyError,
    exit_codes_epilog,
)
from recovery.files import atomic_write_bytes, atomic_write_json, atomic_writer
from recovery.jsonout import to_jsonable
from recovery.progress import Progress


def test_every_error_class_has_its_own_documented_exit_code():
    classes = [
        UsageError,
        ImageError,
        ConsoleError,
        NetworkError,
        VerifyError,
        DeviceError,
        BootError,
        RefusedError,
        Interrupted,
    ]
    codes = [c.exit_code for c in classes]
    assert len(set(codes)) == len(codes)
    assert RecoveryError.exit_code == 1
    epilog = exit_codes_epilog()
    for code in [*codes, 0, 1]:
        assert code in EXIT_CODES
        assert f"{code:>3}  {EXIT_CODES[code]}" in epilog


def test_describe_says_flash_state_and_what_to_do():
    e = VerifyError("crc mismatch", flash_state="rootfs erased", hint="run restore")
    assert e.describe() == "crc mismatch\nFlash: rootfs erased\nWhat to do: run restore"
    assert ImageError("bad").describe() == "bad"


def test_atomic_write_replaces_and_is_private(tmp_path):
    """Backups hold Wi-Fi passwords: written 0600 whatever the umask (issue 17)."""
    target = tmp_path / "sub" / "out.bin"
    atomic_write_bytes(target, b"one")
    old = os.umask(0)
    try:
        atomic_write_bytes(target, b"two")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]


def test_atomic_writer_leaves_the_old_file_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_writer(target) as f:
        f.write(b"half of the new")
        raise RuntimeError("disk pulled")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_write_json(tmp_path):
    @dataclass
    class R:
        path: Path
        crc: bytes

    p = atomic_write_json(tmp_path / "m.json", {"r": R(Path("/x"), b"\x01\x02")})
    assert json.loads(p.read_text()) == {"r": {"path": "/x", "crc": "0102"}}


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_file_prints_only_the_final_line():
    out = io.StringIO()
    with Progress("tftp rootfs", 1 << 20, stream=out) as bar:
        for _ in range(16):
            bar.advance(1 << 16)
    text = out.getvalue()
    assert text.count("\n") == 1 and "\r" not in text
    assert text.startswith("tftp rootfs")
    assert "100%" in text and "1.0 MiB/1.0 MiB" in text and "/s" in text


def test_progress_on_a_terminal_redraws_and_shows_eta():
    out = _Tty()
    bar = Progress("erase rootfs", 104, unit="sectors", stream=out, min_interval=0)
    bar.update(52)
    assert out.getvalue().startswith("\rerase rootfs")
    assert "52/104 sectors" in out.getvalue() and " 50%" in out.getvalue()
    assert "ETA" in out.getvalue()
    bar.close(ok=False)
    assert out.getvalue().endswith("FAILED\x1b[K\n")


def test_progress_disabled_prints_nothing():
    out = _Tty()
    with Progress("x", 10, enabled=False, stream=out) as bar:
        bar.update(5)
    assert out.getvalue() == ""


@given(st.integers(min_value=0, max_value=2**40))
def test_parse_int_reads_hex_and_decimal(n):
    assert parse_int(hex(n)) == n
    assert parse_int(str(n)) == n
    assert parse_int(hex(n).upper().replace("0X", "0x")) == n


def test_parse_int_suffixes_and_errors():
    assert parse_int("13M") == 13 << 20
    assert parse_int("128k") == 128 << 10
    assert parse_int("0xd00000") == 0xD00000
    for bad in ("", "0xZZ", "-1", "12Q"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_int(bad)


def test_parse_host_port():
    assert parse_host_port("127.0.0.1:6969", 69) == ("127.0.0.1", 6969)
    assert parse_host_port("10.0.0.2", 69) == ("10.0.0.2", 69)
    assert parse_host_port(":6969", 69) == ("0.0.0.0", 6969)
    for bad in ("host:port", "h:70000"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_host_port(bad, 69)


def _args(**kw):
    return argparse.Namespace(json=kw.pop("json", True), quiet=True, **kw)


def test_run_operation_json_success(capsys):
    code = run_operation(_args(), "info", lambda: {"message": "fine", "crc_errors": 0})
    out = capsys.readouterr().out
    assert code == 0 and out.count("\n") == 1
    assert json.loads(out) == {
        "ok": True,
        "operation": "info",
        "message": "fine",
        "exit_code": 0,
        "crc_errors": 0,
        "flash_status": {"state": "untouched", "ranges": [], "resume": None},
    }


def test_run_operation_error_carries_code_state_and_facts(capsys):
    def fail():
        raise BootError("panic", flash_state="written", facts={"crc_errors": 7})

    assert run_operation(_args(), "flash", fail) == BootError.exit_code
    payload = json.loads(capsys.readouterr().out)
    assert payload["ok"] is False and payload["exit_code"] == 8
    assert payload["crc_errors"] == 7 and payload["flash_state"] == "written"
    assert payload["error"] == "BootError"


def test_run_operation_text_mode_errors_go_to_stderr(capsys):
    def fail():
        raise NetworkError("no server", hint="check serverip")

    assert run_operation(_args(json=False), "backup", fail) == 5
    cap = capsys.readouterr()
    assert cap.out == ""
    assert "error: no server" in cap.err and "What to do: check serverip" in cap.err


def test_run_operation_turns_bugs_and_ctrl_c_into_codes(capsys):
    def bug():
        raise ZeroDivisionError("oops")

    def ctrl_c():
        raise KeyboardInterrupt

    assert run_operation(_args(), "info", bug) == 1
    assert "ZeroDivisionError" in json.loads(capsys.readouterr().out)["message"]
    assert run_operation(_args(), "info", ctrl_c) == 130


def test_to_jsonable_handles_nested_values():
    @dataclass
    class Inner:
        items: tuple[int, ...]

    assert to_jsonable({1: [Inner((1, 2))], "p": Path("a/b")}) == {
        "1": [{"items": [1, 2]}],
        "p": "a/b",
    }


def test_module_api_is_stable():
    for name in (
        "add_port_options",
        "add_output_options",
        "progress_enabled",
        "say",
        "warn",
    ):
        assert callable(getattr(cliutil, name))
    assert callable(jsonout.print_json)
    p = argparse.ArgumentParser()
    cliutil.add_port_options(p, baud=38400)
    cliutil.add_output_options(p)
    a = p.parse_args(["--port", "/dev/ttyUSB0", "--json", "--transcript", "t.txt"])
    assert (a.port, a.baud, a.json, a.quiet, a.transcript) == (
        "/dev/ttyUSB0",
        38400,
        True,
        False,
        "t.txt",
    )
    assert cliutil.progress_enabled(a) is False


# -- issue 17: output preflight, the flash tracker, protected areas, stale temporaries -------


def test_preflight_refuses_what_would_destroy_a_file(tmp_path):
    from recovery.files import Input, Output, preflight

    old = tmp_path / "old.bin"
    old.write_bytes(b"old")
    with pytest.raises(RefusedError, match="already exists") as e:
        preflight([Output("--out", old)], force=False)
    assert "--force" in (e.value.hint or "")
    preflight([Output("--out", old)], force=True)  # --force: replacing is allowed
    with pytest.raises(RefusedError, match="already exists") as e:
        preflight([Output("--backup", old)], force=False, force_flag=None)
    assert "--force" not in (e.value.hint or "")
    (tmp_path / "new.bin.json").write_text("{}")  # a manifest would be replaced
    with pytest.raises(RefusedError, match="manifest"):
        preflight([Output("--out", tmp_path / "new.bin", sidecars=(".json",))], force=False)
    link = tmp_path / "link.bin"
    link.symlink_to(old)
    for outs, ins in (
        ([Output("--out", old), Output("--transcript", link)], []),
        ([Output("--out", tmp_path / "a.bin", sidecars=(".json",))],
         [Input("--transcript", tmp_path / "a.bin.json")]),
        ([Output("--backup-out", tmp_path / "x" / ".." / "old.bin")], [Input("IMAGE", old)]),
    ):  # fmt: skip
        with pytest.raises(UsageError, match="same file"):
            preflight(outs, ins, force=True)
    for bad in ("", "   ", "/proc/x", "/sys/x", "/dev/x", str(tmp_path), "/nonexistent/dir/x"):
        with pytest.raises(UsageError):
            preflight([Output("--out", bad)], force=True)
    with pytest.raises(RefusedError, match="free space"):
        preflight([Output("--out", tmp_path / "huge.bin", size=1 << 62)], force=False)


def test_the_flash_tracker_states():
    from recovery.safety import FlashTracker

    t = FlashTracker(tracked=True)
    assert t.state == "untouched" and t.as_dict()["resume"] is None
    t.plan([(0, 10), (10, 20)])
    t.resume = "camrescue x restore"
    t.writing(0, 10)
    assert t.state == "partially written" and t.as_dict()["resume"] == "camrescue x restore"
    t.verified(0, 10)
    assert t.state == "partially written"  # (10, 20) has not begun: old and new mixed
    assert t.as_dict()["ranges"][1]["state"].startswith("not yet written")
    t.writing(10, 20)
    t.written(10, 20)
    assert t.state == "complete but unverified"
    t.verified(10, 20)
    assert t.state == "verified" and t.as_dict()["resume"] is None
    u = FlashTracker(tracked=True)  # no plan: only a finished operation is "verified"
    u.verified(0, 10)
    assert u.state == "partially written"
    u.finished = True
    assert u.state == "verified"
    assert FlashTracker().state == "unknown"


def test_run_operation_reports_the_tracker_on_ctrl_c(capsys):
    from recovery.safety import flash_tracker

    def op():
        t = flash_tracker()
        t.plan([(0x100, 0x200)])
        t.resume = "camrescue hi3511 restore b.bin"
        t.writing(0x100, 0x200)
        raise KeyboardInterrupt

    assert run_operation(_args(), "restore", op) == 130
    payload = json.loads(capsys.readouterr().out)
    assert payload["flash_status"]["state"] == "partially written"
    assert payload["flash_state"].startswith("partially written: 0x100..0x1ff")
    assert "camrescue hi3511 restore b.bin" in payload["hint"]


def test_protected_areas_are_judged_by_address():
    from recovery.safety import Area, check_protected

    boot = [Area("boot loader", 0x1000, 0x2000)]
    check_protected([("settings", 0x2000, 0x3000), ("x", 0, 0x1000)], boot, allowed=False)
    for start, end in ((0x1FFF, 0x3000), (0, 0x1001), (0x1800, 0x1900), (0, 0x10000)):
        with pytest.raises(RefusedError, match="boot loader"):
            check_protected([("settings", start, end)], boot, allowed=False)
        check_protected([("settings", start, end)], boot, allowed=True)


def test_stale_temporary_directories_of_dead_processes_are_removed(tmp_path):
    import subprocess
    import sys

    from recovery.files import make_tempdir, remove_stale_tempdirs

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(dead.stdout)
    stale = tmp_path / f"camrescue-{pid}-tftp-abcd"
    stale.mkdir()
    (stale / ".camrescue-owner").write_text(f"{pid}\n")
    unmarked = tmp_path / f"camrescue-{pid}-lab-efgh"  # no owner mark, and it holds a file:
    unmarked.mkdir()  # not known to be ours, kept
    (unmarked / "notes.txt").write_text("someone's\n")
    # killed between making its directory and marking it (seen under load): nothing in it,
    # or only an empty mark; removed
    bare = tmp_path / f"camrescue-{pid}-tftp-ijkl"
    bare.mkdir()
    half = tmp_path / f"camrescue-{pid}-tftp-mnop"
    half.mkdir()
    (half / ".camrescue-owner").write_text("")
    other = tmp_path / "camrescue-image-cache-0"
    other.mkdir()
    import tempfile

    old = tempfile.tempdir
    tempfile.tempdir = str(tmp_path)
    try:
        mine = make_tempdir("tftp")
    finally:
        tempfile.tempdir = old
    assert sorted(remove_stale_tempdirs(tmp_path)) == sorted([stale, bare, half])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [unmarked.name, other.name, mine.name]
    )
    assert stat.S_IMODE(mine.stat().st_mode) == 0o700


def test_check_manifest_compares_board_size_sha_and_flash_size(tmp_path):
    import hashlib

    from recovery.files import check_manifest

    data = b"flash" * 100
    good = {"board": "xr872", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    check_manifest("b.bin", data, good, board="xr872", flash_size=1 << 20)
    for bad, word in (
        ({**good, "board": "hi3511"}, "board"),
        ({**good, "size": 3}, "bytes"),
        ({**good, "sha256": "0" * 64}, "sha256"),
        ({**good, "flash_size": 2 << 20}, "flash"),
    ):
        with pytest.raises(ImageError, match=word):
            check_manifest("b.bin", data, bad, board="xr872", flash_size=1 << 20)
