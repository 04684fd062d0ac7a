"""Issue 20, the first hour: each measured item, as a new user meets it.

* the rehearsal recipe: ``camrescue emulate hi3511 --tftp-root DIR`` prints an engine
  command that runs as printed (no "the port is in use" clash with the emulator's own
  TFTP server), with ``--reboot``; without ``--tftp-root`` it names the endpoint;
* ``camrescue ports`` lists what pyserial lists; a port that does not open is
  explained with its one fix (missing: the ports that exist; busy: the holder's pid;
  permission denied: the group and the usermod command);
* ``camrescue sample-image``: files the engine's own checks accept;
* the top-level ``--help`` has the examples it promises; a taken TFTP port is an
  error message, not a traceback.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import serial

from harness.lab.tftp import free_udp_port
from recovery import ports

BIN = Path(sys.executable).parent
CAMRESCUE = str(BIN / "camrescue")


def _run(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CAMRESCUE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


class Emulator:
    """``camrescue emulate ...`` in the background; :attr:`lines` is what it printed."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [CAMRESCUE, "emulate", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if "Ctrl-C stops it" in line:
                break
        assert any("serving on" in ln for ln in self.lines), self.lines

    def recipe(self) -> list[str]:
        at = self.lines.index("engine command (paste into another terminal):")
        return shlex.split(self.lines[at + 1])

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def test_rehearsal_recipe_runs_as_printed_beside_the_emulators_tftp_server(tmp_path: Path) -> None:
    endpoint = f"127.0.0.1:{free_udp_port()}"
    with Emulator(
        "hi3511", "--flash", "cam.bin", "--tftp-root", "./tftp", "--tftp-server", endpoint,
        cwd=tmp_path,
    ) as emu:  # fmt: skip
        cmd = emu.recipe()
        assert cmd[:3] == ["camrescue", "hi3511", "info"]
        assert "--reboot" in cmd and "--no-server" in cmd
        assert cmd[cmd.index("--tftp-root") + 1] == str(tmp_path / "tftp")
        # as pasted into another terminal, then a backup with the same options
        first = subprocess.run(
            [CAMRESCUE, *cmd[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert first.returncode == 0, first.stdout + first.stderr
        assert "in use" not in first.stderr
        backup = [CAMRESCUE, "hi3511", "backup", *cmd[3:], "--out", "b.bin"]
        second = subprocess.run(backup, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stdout + second.stderr
        assert (tmp_path / "b.bin").stat().st_size == 15 << 20


def test_recipe_without_tftp_root_names_the_endpoint_the_emulator_uses(tmp_path: Path) -> None:
    endpoint = f"127.0.0.1:{free_udp_port()}"
    with Emulator("hi3511", "--tftp-server", endpoint, cwd=tmp_path) as emu:
        cmd = emu.recipe()
        assert cmd[cmd.index("--tftp-bind") + 1] == endpoint and "--reboot" in cmd
        done = subprocess.run(
            [CAMRESCUE, *cmd[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_recipe_for_the_other_boards_runs_as_printed(tmp_path: Path) -> None:
    with Emulator("xr872", cwd=tmp_path) as emu:
        cmd = emu.recipe()
        assert cmd[:3] == ["camrescue", "xr872", "info"]
        done = subprocess.run(
            [CAMRESCUE, *cmd[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
    with Emulator("w90p745", cwd=tmp_path) as emu:
        cmd = emu.recipe()
        assert cmd[:3] == ["camrescue", "w90p745", "info"] and "--wait" in cmd
        at = emu.lines.index("engine command (paste into another terminal):")
        cycle = emu.lines[at + 2].split("power-cycle it: ")[1].split(" (")[0]
        assert cycle == f"camrescue power cycle --pid {emu.proc.pid}"
        engine = subprocess.Popen(
            [CAMRESCUE, *cmd[1:]], cwd=tmp_path, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert engine.stderr is not None
        # the engine either finds the loader's prompt at once or waits for a power cycle
        err = ""
        for line in engine.stderr:
            err += line
            if re.search(r"Waiting for the boot loader|[Pp]ower-cycle the camera now", line):
                cycled = subprocess.run(shlex.split(cycle.replace("camrescue", CAMRESCUE, 1)))
                assert cycled.returncode == 0
        out, rest = engine.communicate(timeout=120)
        assert engine.returncode == 0, out + err + rest


def test_a_taken_tftp_port_is_an_error_message_not_a_traceback(tmp_path: Path) -> None:
    endpoint = f"127.0.0.1:{free_udp_port()}"
    with Emulator("hi3511", "--tftp-root", "t", "--tftp-server", endpoint, cwd=tmp_path):
        again = _run(
            "emulate", "hi3511", "--tftp-root", "t", "--tftp-server", endpoint, cwd=tmp_path
        )
    assert again.returncode == 5
    assert "Traceback" not in again.stderr
    assert again.stderr.startswith("error: ") and "--tftp-server" in again.stderr


# -- camrescue ports -------------------------------------------------------------------


def test_ports_lists_what_pyserial_lists() -> None:
    from serial.tools import list_ports

    done = _run("ports", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)["ports"]
    assert sorted(p["device"] for p in listed) == sorted(p.device for p in list_ports.comports())
    for p in listed:
        assert set(p) >= {"device", "by_id", "usb", "manufacturer", "product", "access"}
    text = _run("ports")
    assert text.returncode == 0
    for p in listed:
        assert p["device"] in text.stdout


def test_by_id_names_resolve_to_their_device(tmp_path: Path, monkeypatch) -> None:
    """udev's /dev/serial/by-id symlinks are matched to the device they point at."""
    dev = tmp_path / "ttyUSB7"
    dev.write_text("")
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    (by_id / "usb-FTDI_FT232R_USB_UART_A10K5XYZ-if00-port0").symlink_to(dev)
    monkeypatch.setattr(ports, "BY_ID", by_id)
    assert ports._by_id_names() == {
        str(dev): [str(by_id / "usb-FTDI_FT232R_USB_UART_A10K5XYZ-if00-port0")]
    }


def _open_failure(url: str) -> BaseException:
    try:
        serial.serial_for_url(url, baudrate=115200, timeout=0, exclusive=True).close()
    except (serial.SerialException, OSError) as e:
        return e
    raise AssertionError(f"{url} opened")


def test_missing_port_lists_the_ports_that_exist(tmp_path: Path) -> None:
    e = _open_failure(str(tmp_path / "ttyUSB9"))
    text = ports.explain_open_error(str(tmp_path / "ttyUSB9"), e)
    assert text is not None and "does not exist" in text
    present = [p.device for p in ports.list_ports()]
    if present:
        assert all(d in text for d in present[:3]) and "camrescue ports" in text
    else:
        assert "plug in" in text.lower()
    assert text.count("Errno") == 0


def test_busy_port_names_the_process_that_holds_it() -> None:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import serial,sys,time; s=serial.Serial(sys.argv[1], exclusive=True); "
            "print('held', flush=True); time.sleep(60)",
            path,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        os.close(slave)  # only the holder has the port open now
        slave = -1
        e = _open_failure(path)
        text = ports.explain_open_error(path, e)
        assert text is not None and "busy" in text
        assert f"process {holder.pid}" in text and f"kill {holder.pid}" in text
        # and as a person sees it, on every board
        for board in ("hi3511", "w90p745", "xr872"):
            done = _run(board, "info", "--port", path)
            assert done.returncode == 4, done.stderr
            assert done.stderr.startswith(
                f"error: serial port {path} is busy: process {holder.pid}"
            )
    finally:
        holder.kill()
        holder.wait()
        os.close(master)
        if slave >= 0:
            os.close(slave)


def test_permission_denied_says_the_group_and_the_command(tmp_path: Path) -> None:
    """A real EACCES: a user outside the device's group opens it (needs root to set up)."""
    import grp
    import pwd

    import pytest

    if os.getuid() != 0:
        pytest.skip("needs root to open the device as another user")
    master, slave = os.openpty()
    path = os.ttyname(slave)
    try:
        group = (
            grp.getgrnam("dialout") if "dialout" in {g.gr_name for g in grp.getgrall()} else None
        )
        gid = group.gr_gid if group else 0
        os.chown(path, 0, gid)
        os.chmod(path, 0o660)
        nobody = pwd.getpwnam("nobody")
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child becomes a user outside the device's group
            try:
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                os.environ.pop("SUDO_USER", None)
                try:
                    serial.serial_for_url(path, exclusive=True).close()
                    said = "opened"
                except (serial.SerialException, OSError) as e:
                    said = ports.explain_open_error(path, e) or str(e)
                os.write(w, said.encode())
            finally:
                os._exit(0)
        os.close(w)
        with os.fdopen(r) as f:
            said = f.read()
        os.waitpid(pid, 0)
        name = group.gr_name if group else grp.getgrgid(0).gr_name
        assert said.startswith(f"permission denied on {path}: "), said
        assert f"sudo usermod -aG {name} nobody" in said and said.count("Errno") == 0
    finally:
        os.close(master)
        os.close(slave)


# -- sample images, help ----------------------------------------------------------------


def test_sample_images_pass_the_engines_own_checks(tmp_path: Path) -> None:
    from recovery.hi3511.images import find_payload, walk_jffs2
    from recovery.xr872.image import check_image

    assert _run("sample-image", "hi3511", "--out", "r.jffs2", cwd=tmp_path).returncode == 0
    root = (tmp_path / "r.jffs2").read_bytes()
    report = walk_jffs2(root, erase_size=0x20000)
    assert report.ok and report.endian == "little" and "version" in report.dirents
    assert _run("sample-image", "hi3511", "--pkg", "--out", "r.pkg", cwd=tmp_path).returncode == 0
    pkg = (tmp_path / "r.pkg").read_bytes()
    assert find_payload(pkg).offset == 144 and pkg[144:] == root
    assert _run("sample-image", "xr872", "--out", "x.img", cwd=tmp_path).returncode == 0
    check = check_image((tmp_path / "x.img").read_bytes())
    assert check.valid and check.chip == "xr872", check.problems
    again = _run("sample-image", "hi3511", "--out", "r.jffs2", cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stdout + again.stderr


def test_top_level_help_has_the_examples_it_promises() -> None:
    done = _run("--help")
    assert done.returncode == 0
    assert "examples:" in done.stdout
    for cmd in ("camrescue ports", "camrescue emulate hi3511", "camrescue sample-image hi3511"):
        assert cmd in done.stdout
    for sub in ("ports", "sample-image", "emulate"):
        h = _run(sub, "--help")
        assert "examples:" in h.stdout, sub
    assert not re.search(r"seed's|seed 0|REFERENCE\.md", _run("emulate", "--help").stdout)


# -- output: one error prefix, "What to do" after Ctrl-C --------------------------------


def test_every_error_line_starts_with_one_prefix(tmp_path: Path) -> None:
    missing = str(tmp_path / "ttyUSB9")
    runs = [
        _run("hi3511", "info", "--port", missing, "--wait", "0"),
        _run("xr872", "info", "--port", missing),
        _run("hi3511", "flash", "--port", missing, str(tmp_path / "nothing.jffs2")),
        _run("hi3511", "info"),  # usage: --port missing
    ]
    (tmp_path / "x").write_text("")
    runs.append(_run("sample-image", "hi3511", "--out", str(tmp_path / "x")))
    for r in runs:
        assert r.returncode != 0
        text = r.stderr + r.stdout
        assert "Error:" not in text, text
        assert re.search(r"(^|: )error: ", text, re.M), text


def test_ctrl_c_ends_with_what_to_do(tmp_path: Path) -> None:
    import signal

    endpoint = f"127.0.0.1:{free_udp_port()}"
    with Emulator("hi3511", "--tftp-server", endpoint, cwd=tmp_path) as emu:
        cmd = emu.recipe()
        proc = subprocess.Popen(
            [CAMRESCUE, "hi3511", "backup", *cmd[3:], "--out", "b.bin"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        seen = ""
        while "backup" not in seen and proc.poll() is None:
            seen += proc.stderr.read(1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, seen + err
    assert "error: interrupted" in err and "What to do: " in err
    assert "Flash: " in err


def test_skip_erase_confirmation_is_asked_on_real_ports_only() -> None:
    import io

    master, slave = os.openpty()
    try:
        pty = os.ttyname(slave)
        assert not ports.is_real_port(pty) and not ports.is_real_port("rfc2217://h:1")
        assert ports.confirm_typed(pty, "x", "SKIP-ERASE", stdin=io.StringIO(""))
    finally:
        os.close(master)
        os.close(slave)
    real = "/dev/ttyS0"  # a device path that is not a pty: what an adapter is
    assert ports.is_real_port(real)
    err = io.StringIO()
    ask = "skip the erase on the camera"
    assert ports.confirm_typed(
        real, ask, "SKIP-ERASE", stdin=io.StringIO("SKIP-ERASE\n"), stderr=err
    )
    assert "Type SKIP-ERASE" in err.getvalue() and ask in err.getvalue()
    assert not ports.confirm_typed(real, ask, "SKIP-ERASE", stdin=io.StringIO("y\n"), stderr=err)
    assert not ports.confirm_typed(real, ask, "SKIP-ERASE", stdin=io.StringIO(""), stderr=err)


def test_a_missing_port_fails_at_once_on_every_board_unless_wait_is_given(tmp_path: Path) -> None:
    """The same rule and the same message for hi3511 and w90p745 (xr872 too): no
    waiting for a device that is not there unless --wait says so."""
    missing = str(tmp_path / "ttyUSB9")
    said = {}
    for board in ("hi3511", "w90p745", "xr872"):
        proc = subprocess.Popen(
            [CAMRESCUE, board, "info", "--port", missing],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # a board that waits would still be waiting when the device appears
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"{board} waited for a missing port without --wait") from None
        assert proc.returncode == 4, (board, err)
        said[board] = err
        assert f"{missing} does not exist" in err, (board, err)
    # with --wait, the port is waited for: it appears (an emulator's link) and is used
    with Emulator("w90p745", "--link", str(tmp_path / "later"), cwd=tmp_path):
        pass
    proc = subprocess.Popen(
        [CAMRESCUE, "w90p745", "info", "--port", str(tmp_path / "later"), "--wait", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    with Emulator("w90p745", "--link", str(tmp_path / "later"), cwd=tmp_path):
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err


def _walk(p, path: list[str]):
    """Every parser of the camrescue command, with its path of subcommands."""
    import argparse

    yield path, p
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield from _walk(sub, [*path, name])


def test_every_help_has_examples() -> None:
    """Every command's --help, at every level, shows how it is used."""

    from harness.cli import build_parser

    lacking = [
        " ".join(path) or "(top)"
        for path, p in _walk(build_parser(), [])
        if "examples:" not in (p.epilog or "")
    ]
    assert not lacking, "no examples in: " + ", ".join(lacking)


OUTSIDE = re.compile(
    r"seed 0\d\d|seed 00\d|\bseed's\b|the seed\b(?! \d)|REFERENCE\.md|shared/seeds", re.I
)


def test_help_and_docs_name_nothing_outside_the_repository() -> None:
    """No "seed 000", "the seed's mistake" or REFERENCE.md: a reader has none of them."""

    from harness.cli import build_parser

    found = []
    for path, p in _walk(build_parser(), []):
        for m in OUTSIDE.finditer(p.format_help()):
            found.append(f"camrescue {' '.join(path)} --help: {m.group(0)!r}")
    root = Path(__file__).resolve().parent.parent
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for n, line in enumerate(doc.read_text().splitlines(), 1):
            for m in OUTSIDE.finditer(line):
                found.append(f"{doc.relative_to(root)}:{n}: {m.group(0)!r}")
    assert not found, "\n".join(found)


def test_success_is_a_quiet_summary_and_steps_come_with_verbose(tmp_path: Path) -> None:
    endpoint = f"127.0.0.1:{free_udp_port()}"
    with Emulator("hi3511", "--tftp-server", endpoint, cwd=tmp_path) as emu:
        cmd = emu.recipe()
        quiet = subprocess.run(
            [CAMRESCUE, *cmd[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        loud = subprocess.run(
            [CAMRESCUE, *cmd[1:], "-v"], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        as_json = subprocess.run(
            [CAMRESCUE, *cmd[1:], "--json"], cwd=tmp_path, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
    assert quiet.returncode == loud.returncode == as_json.returncode == 0
    assert not re.search(r"^\s*step ", quiet.stdout, re.M), quiet.stdout
    assert re.search(r"^\s*step attach: \d+\.\d\d s$", loud.stdout, re.M), loud.stdout
    assert json.loads(as_json.stdout)["steps"], "the JSON keeps its steps"


def test_skip_erase_on_a_real_port_is_refused_without_the_typed_word(tmp_path: Path) -> None:
    """/dev/ttyS0 is a real port's path (not a pty): the question comes before the port is
    opened, so nothing reaches whatever is wired there."""
    assert _run("sample-image", "hi3511", "--out", "r.jffs2", cwd=tmp_path).returncode == 0
    for answer in ("yes\n", ""):
        done = subprocess.run(
            [CAMRESCUE, "hi3511", "flash", "--port", "/dev/ttyS0", "r.jffs2", "--no-backup",
             "--skip-erase"],
            cwd=tmp_path, input=answer, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 9, done.stderr
        assert "Type SKIP-ERASE to go on" in done.stderr
        assert "error: --skip-erase was not confirmed" in done.stderr
        assert "Flash: untouched" in done.stderr


def test_network_preflight_refuses_before_any_transfer_and_nic_picks_the_address(
    tmp_path: Path,
) -> None:
    endpoint = f"127.0.0.1:{free_udp_port()}"
    with Emulator("hi3511", "--tftp-server", endpoint, cwd=tmp_path) as emu:
        port = emu.recipe()[4]
        # the embedded server on serverip:69 (the real-camera default): the camera's
        # serverip (192.168.1.x) is not this computer's: refused, nothing transferred
        refused = _run(
            "hi3511", "backup", "--port", port, "--reboot", "--out", "b.bin", cwd=tmp_path
        )
        assert refused.returncode == 5, refused.stderr
        m = re.search(r"camera 192\.168\.1\.10 -> server (192\.168\.1\.\d+): ", refused.stderr)
        assert m, refused.stderr
        assert f"sudo ip addr add {m.group(1)}/24 dev IFACE" in refused.stderr
        assert "is not an address of this computer (its addresses: " in refused.stderr
        assert "What to do: " in refused.stderr and "Flash: untouched" in refused.stderr
        assert "backup kernel" not in refused.stderr and not (tmp_path / "b.bin").exists()
        # --nic: the interface's address becomes serverip
        done = _run(
            "hi3511", "backup", "--port", port, "--reboot", "--out", "b.bin", "--nic", "lo",
            "--ipaddr", "127.0.0.2", "--netmask", "255.0.0.0", "--tftp-bind", endpoint,
            cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "camera 127.0.0.2 -> server 127.0.0.1 (lo)" in done.stderr


def test_a_closed_pipe_ends_a_listing_quietly() -> None:
    """``camrescue scenarios list | head -1``: the reader goes away, and the command stops
    as a program killed by SIGPIPE does (128 + 13), without a traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with EPIPE
    try:
        done = subprocess.run(
            [CAMRESCUE, "scenarios", "list"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
