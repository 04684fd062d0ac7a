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


ODD = ["--i-know-the-dump-is-odd"]  # a crafted manifest's image has another footer


def _one_json(proc, timeout: float = 600) -> dict:
    out, err = proc.communicate(timeout=timeout)
    lines = out.strip().splitlines()
    assert len(lines) == 1, (out, err[-3000:])
    return json.loads(lines[0])


def _sent_since(dev, mark: int) -> int:
    return sum(len(c.data) for c in dev.transcript.chunks[mark:] if c.direction == "host")


def _dumped(dump_dir: Path) -> list[tuple[int, bytes]]:
    manifest = json.loads((dump_dir / "manifest.json").read_text())
    return [(int(r["base"], 0), (dump_dir / r["file"]).read_bytes()) for r in manifest["images"]]


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


def _w90_intact():
    from test_safety_signals import _w90_at_prompt

    return _w90_at_prompt()


def test_w90p745_restore_backs_up_what_it_replaces(w90_dump, tmp_path):
    """restore first dumps the images it is about to replace into --backup-out (a
    dump directory restore takes back), and says where."""
    backup = tmp_path / "before"
    dev = _w90_intact()
    try:
        before = dev.flash.snapshot()
        argv = ["w90p745", "restore", str(w90_dump), "--port", dev.path, "--json"]
        proc = engine([*argv, "--backup-out", str(backup)])
        r = _one_json(proc)
        assert proc.returncode == 0 and r["ok"], r
    finally:
        dev.close()
    assert r["backup_dir"] == str(backup) and str(backup) in r["message"], r
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert [rec["name"] for rec in manifest["images"]] == ["webui"]
    for base, data in _dumped(backup):
        assert data == before[base - W90_BASE : base - W90_BASE + len(data)]
    assert (backup / manifest["images"][0]["file"]).stat().st_mode & 0o077 == 0


def test_w90p745_restore_backup_needs_room_first(w90_dump, tmp_path):
    """--no-backup and --backup-out together are a usage error; a --backup-out that is
    a file is refused before the port is opened."""
    afile = tmp_path / "f"
    afile.write_bytes(b"x")
    argv = ["w90p745", "restore", str(w90_dump), "--port", str(tmp_path / "none"), "--json"]
    proc = engine([*argv, "--backup-out", str(afile)])
    r = _one_json(proc)
    assert proc.returncode == 2 and "not a directory" in r["message"], r
    proc = engine([*argv, "--backup-out", str(tmp_path / "b"), "--no-backup"])
    r = _one_json(proc)
    assert proc.returncode == 2 and "contradict" in r["message"], r
    proc = engine([*argv, "--backup-out", str(w90_dump)])
    r = _one_json(proc)
    assert proc.returncode == 2 and "same file" in r["message"], r


def _crafted(w90_dump: Path, tmp_path: Path, **change) -> Path:
    """A copy of the dump whose manifest says something else of its webui image
    (the file, its size and sha256 unchanged)."""
    import shutil

    crafted = tmp_path / "crafted"
    shutil.copytree(w90_dump, crafted)
    m = json.loads((crafted / "manifest.json").read_text())
    for rec in m["images"]:
        rec.update(change)
    (crafted / "manifest.json").write_text(json.dumps(m))
    return crafted


def test_w90p745_boot_info_is_protected_by_address_whatever_the_manifest_says(w90_dump, tmp_path):
    """A manifest that places an ordinary image over BOOT INFO's block (where the
    camera's own table has it) is refused before anything is written, and the
    refusal names the override, which --help lists."""
    table = json.loads((w90_dump / "manifest.json").read_text())["table"]
    boot_info = next(e for e in table if e["number"] == 0)
    crafted = _crafted(w90_dump, tmp_path, base=boot_info["base"], is_boot_info=False)
    dev = _w90_intact()
    try:
        before = dev.flash.snapshot()
        argv = ["w90p745", "restore", str(crafted), "--port", dev.path, "--json", "--no-backup"]
        proc = engine([*argv, *ODD])
        r = _one_json(proc)
        assert dev.flash.snapshot() == before
    finally:
        dev.close()
    assert proc.returncode == 9 and r["flash_state"] == "untouched", r
    assert "BOOT INFO" in r["message"] and "--include-bootloader" in r["hint"], r
    proc = engine(["w90p745", "restore", "--help"])
    out, _err = proc.communicate(timeout=60)
    for option in ("--include-bootloader", "--no-backup", "--backup-out"):
        assert option in out


def _retyped(w90_dump: Path, tmp_path: Path, data: bytes | None, drop_footer: bool = False) -> Path:
    """A copy of the dump whose webui file holds ``data`` and whose manifest was
    updated to match it (size and sha256), as a careless or hostile edit would."""
    import hashlib

    crafted = _crafted(w90_dump, tmp_path)
    m = json.loads((crafted / "manifest.json").read_text())
    for rec in m["images"]:
        if data is not None:
            (crafted / rec["file"]).write_bytes(data)
            rec["sha256"] = hashlib.sha256(data).hexdigest()
        if drop_footer:
            rec.pop("footer", None)
    (crafted / "manifest.json").write_text(json.dumps(m))
    return crafted


def test_w90p745_a_dump_must_look_like_what_it_claims(w90_dump, tmp_path):
    """A dump whose image file was replaced (its manifest's sha256 updated to match)
    or whose footer record is missing is refused before the camera is touched, the
    refusal naming the override; a file that does not match its manifest is refused
    even with the override."""
    size = len(_dumped(w90_dump)[0][1])
    junk = bytes((i * 7) & 0xFF for i in range(size))
    cases = {
        "retyped": _retyped(w90_dump, tmp_path / "a", junk),
        "no footer": _retyped(w90_dump, tmp_path / "b", None, drop_footer=True),
    }
    for what, crafted in cases.items():
        argv = ["w90p745", "restore", str(crafted), "--port", str(tmp_path / "none"), "--json"]
        proc = engine([*argv, "--no-backup", "--wait", "0.2"])
        r = _one_json(proc)
        assert proc.returncode == 3 and r["flash_state"] == "untouched", (what, r)
        assert "does not look like image" in r["message"], (what, r)
        assert "--i-know-the-dump-is-odd" in r["hint"], (what, r)
    # the override lets the odd one through (here to the missing port), never a
    # file that does not match its manifest
    proc = engine([*argv, "--no-backup", "--wait", "0.2", *ODD])
    r = _one_json(proc)
    assert proc.returncode == 4 and "does not look like" not in r["message"], r
    (cases["retyped"] / "image8_webui.bin").write_bytes(junk[::-1])
    argv = ["w90p745", "restore", str(cases["retyped"]), "--port", str(tmp_path / "none")]
    proc = engine([*argv, "--json", "--no-backup", "--wait", "0.2", *ODD])
    r = _one_json(proc)
    assert proc.returncode == 3 and "sha256" in r["message"], r
    proc = engine(["w90p745", "restore", "--help"])
    out, _err = proc.communicate(timeout=60)
    assert "--i-know-the-dump-is-odd" in out


def test_w90p745_restore_backup_without_room_is_refused_before_anything(w90_dump, tmp_path):
    """A --backup-out on a disk without room for the backup: refused (exit 9) before the
    camera is written, and nothing is left on that disk."""
    import subprocess

    import pytest

    tiny = tmp_path / "tiny"
    tiny.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(tiny)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.decode().strip()}")
    dev = _w90_intact()
    try:
        before = dev.flash.snapshot()
        argv = ["w90p745", "restore", str(w90_dump), "--port", dev.path, "--json"]
        proc = engine([*argv, "--backup-out", str(tiny / "bk")])
        r2 = _one_json(proc)
        assert dev.flash.snapshot() == before
    finally:
        dev.close()
        listed = list(tiny.iterdir())
        subprocess.run(["umount", str(tiny)], check=False)
    assert proc.returncode == 9 and "free space" in r2["message"], r2
    assert listed == []


# -- XR872 --------------------------------------------------------------------------------


def test_xr872_ctrl_c_leaves_the_rom_at_115200_in_step_and_says_what_the_flash_holds(tmp_path):
    """SIGINT or SIGTERM at two points of a write at the raised rate: the engine
    finishes the exchange under way, puts the ROM back to 115200 and reports the
    flash state and what to do; the next run finds the ROM at 115200 on its first
    sync (not 'still at ... from an earlier run')."""
    from test_safety_signals import XR_FAST

    from emulators.xr872 import XR872Device
    from harness.firmware import xr872 as xfw

    image = tmp_path / "xr_system.img"
    data = xfw.build_image(xfw.xr872_sections(12))
    image.write_bytes(data)
    argv = ["xr872", "write", str(image), "--no-backup", "--no-reboot", "--json", *XR_FAST]
    argv.append("--include-bootloader")  # the unit's boot section is another seed's
    # the host sends about 210 kB in all (only changed sectors are written)
    for after, sig in ((60_000, signal.SIGINT), (140_000, signal.SIGTERM)):
        with XR872Device(seed=24) as dev:
            started = talking(dev)
            proc = engine([*argv, "--port", dev.path])
            deadline = time.monotonic() + 120
            while not started() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
            mark = len(dev.transcript.chunks)
            while proc.poll() is None and _sent_since(dev, mark) < after:
                time.sleep(0.002)
            assert proc.poll() is None, "the write ended before it was interrupted"
            proc.send_signal(sig)
            r = _one_json(proc)
            assert proc.returncode == 130 and r["error"] == "Interrupted", r
            assert "115200" in r["message"], r
            assert r["flash_state"].startswith("partly written between"), r
            assert "boot ROM again" in r["hint"], r
            assert r["flash_status"]["state"] == "partially written", r
            assert dev.uart.baud == 115200
            proc = engine(["xr872", "info", "--port", dev.path, "--json", *XR_FAST, "-v"])
            out, err = proc.communicate(timeout=120)
            info = json.loads(out)
            assert proc.returncode == 0 and info["ok"], (info, err[-2000:])
            assert "earlier run" not in err, err[-2000:]


def test_xr872_a_dump_given_to_write_must_match_its_manifest_and_this_unit(tmp_path):
    """A dump with camrescue's manifest beside it: a file that does not match it (size,
    sha256) is refused before the port is opened; a dump of another flash (JEDEC id)
    is refused once the unit is known, naming the override, which --help lists."""
    import hashlib

    from test_safety_signals import XR_FAST

    from emulators.xr872 import XR872Device

    with XR872Device(seed=25) as dev:
        dump = tmp_path / "unit.bin"
        proc = engine(["xr872", "dump", "--port", dev.path, "--out", str(dump), "--json", *XR_FAST])
        r = _one_json(proc)
        assert proc.returncode == 0, r
        man = json.loads(Path(str(dump) + ".json").read_text())
        before = dev.flash.snapshot()
        # a changed byte: the manifest's sha256 no longer matches
        changed = tmp_path / "changed.bin"
        data = bytearray(dump.read_bytes())
        data[0xFFF00] ^= 0xFF  # in sysinfo: the AWIH check cannot see it
        changed.write_bytes(bytes(data))
        Path(str(changed) + ".json").write_text(json.dumps(man))
        argv = ["xr872", "write", "--no-backup", "--no-reboot", "--json", *XR_FAST]
        proc = engine([*argv, str(changed), "--port", str(tmp_path / "none")])
        r = _one_json(proc)
        assert proc.returncode == 3 and "does not match its manifest" in r["message"], r
        # another unit's dump (its manifest names another flash chip)
        other = tmp_path / "other.bin"
        other.write_bytes(dump.read_bytes())
        Path(str(other) + ".json").write_text(json.dumps({**man, "jedec_id": "ef4014"}))
        proc = engine([*argv, str(other), "--port", dev.path])
        r = _one_json(proc)
        assert proc.returncode == 3 and "JEDEC id ef4014" in r["message"], r
        assert "--i-know-the-backup-is-odd" in r["hint"], r
        assert r["flash_status"]["state"] == "untouched" and dev.flash.snapshot() == before
        proc = engine([*argv, str(other), "--port", dev.path, "--i-know-the-backup-is-odd"])
        r = _one_json(proc)
        assert proc.returncode == 0 and r["ok"], r
        assert hashlib.sha256(dev.flash.snapshot()).hexdigest() == man["sha256"]
    proc = engine(["xr872", "write", "--help"])
    out, _err = proc.communicate(timeout=60)
    assert "--i-know-the-backup-is-odd" in out
