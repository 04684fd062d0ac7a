"""The lab: emulated devices of every board, each in its own directory, on its own
pty, with its own flash file and TFTP port, ready for the engine or a person.

What a lab gives each device (so that scenarios can run side by side, under
pytest-xdist or on several machines, without touching each other):

* a directory ``<lab>/<name>/`` holding ``flash.bin`` (the device's persistent
  flash, a memory-mapped file) and ``tty`` (a symlink to its ``/dev/pts/N``);
* a free UDP port on 127.0.0.1 where *all* the device's TFTP traffic goes,
  whatever ``serverip`` says (boards with a network only: the network mapping).
  The engine binds its embedded server there with ``--tftp-bind
  127.0.0.1:PORT``; between engine steps the lab serves the lab's shared work
  directory there (:class:`~harness.lab.tftp.TftpServer`), so a person (or a
  console step) can type the seed's ``tftp`` commands by hand;
* optionally the TFTP fault proxy (:class:`~harness.lab.netfaults.TftpFaultProxy`)
  in front of that port, for network faults;
* a :class:`~harness.lab.console.ConsoleClient`: a host-side terminal on the pty
  that records what it reads and can wait for text, like picocom with an expect
  script.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from emulators.serial import LinkFaults
from emulators.transcript import Transcript
from harness.boards import board_spec, device_class, engine_main
from harness.lab.console import ConsoleClient
from harness.lab.engine import (
    EngineResult,
    parse_json_output,
    run_engine_inprocess,
    run_engine_subprocess,
)
from harness.lab.faults import ArmedFault, Fault, arm
from harness.lab.images import parse_flash_source
from harness.lab.netfaults import TftpFaultProxy, TftpFaults
from harness.lab.tftp import TftpServer, free_udp_port


class LabDevice:
    """One emulated device in a lab. Create with :meth:`Lab.start`."""

    def __init__(
        self,
        lab: Lab,
        board: str,
        name: str,
        *,
        seed: int = 0,
        realtime: bool = False,
        faults: LinkFaults | None = None,
        flash: Any = None,
        options: Mapping[str, Any] | None = None,
        network: TftpFaults | None = None,
        tftp_server: bool = True,
    ) -> None:
        self.lab = lab
        self.spec = board_spec(board)
        self.board = board
        self.name = name
        self.dir = lab.root / name
        self.dir.mkdir(parents=True, exist_ok=False)
        self.flash_path = self.dir / "flash.bin"
        self.link_path = self.dir / "tty"
        self.transcript = Transcript()
        cls = device_class(board)
        initial = parse_flash_source(board, flash, self.spec.flash_size)
        kwargs: dict[str, Any] = {
            self.spec.option_aliases.get(k, k): v for k, v in (options or {}).items()
        }
        self.server_port = 0
        self.proxy: TftpFaultProxy | None = None
        if self.spec.tftp:
            self.server_port = free_udp_port()
            device_port = self.server_port
            if network is not None:
                self.proxy = TftpFaultProxy(("127.0.0.1", self.server_port), network, seed=seed)
                device_port = self.proxy.port
            kwargs["tftp_server"] = ("127.0.0.1", device_port)
        try:
            self.device = cls(
                flash_path=self.flash_path,
                realtime=realtime,
                seed=seed,
                link_path=self.link_path,
                faults=faults,
                transcript=self.transcript,
                initial_flash=initial,
                **kwargs,
            )
        except BaseException:
            if self.proxy is not None:
                self.proxy.close()
            raise
        self.initial_flash = self.device.flash.snapshot()
        self._console: ConsoleClient | None = None
        self._tftp: TftpServer | None = None
        self.armed: list[ArmedFault] = []
        self.line_closed = False
        self.serve_tftp_between_steps = self.spec.tftp and tftp_server
        if self.serve_tftp_between_steps:
            self.serve_tftp()

    # -- facts ---------------------------------------------------------------
    @property
    def path(self) -> str:
        return self.device.path

    @property
    def flash(self) -> Any:
        return self.device.flash

    @property
    def tftp_bind(self) -> str:
        return f"127.0.0.1:{self.server_port}"

    def flash_bytes(self) -> bytes:
        return self.device.flash.snapshot()

    # -- console -------------------------------------------------------------
    def console(self, baud: int | None = None) -> ConsoleClient:
        """The open host terminal (opened on first use at the device's baud). With
        ``baud``, a terminal at that rate: an open one at another rate is closed first."""
        if baud is not None and self._console is not None and self._console.baud != baud:
            self.release_console()
        if self._console is None:
            self._console = ConsoleClient(self.path, baud or self.device.uart.baud)
        return self._console

    def release_console(self) -> None:
        """Close the host terminal, so another program (the engine) has the line."""
        if self._console is not None:
            self._console.close()
            self._console = None

    # -- power ---------------------------------------------------------------
    def power_on(self, then: str = "boot", timeout: float = 10.0) -> None:
        """Power on. ``then="prompt"`` stops the autoboot at the board's prompt,
        ``"boot"`` lets it boot (a terminal is open and reading either way)."""
        con = self.console()
        con.mark()
        self.device.power_on()
        if then == "prompt":
            self.stop_autoboot(timeout)

    def stop_autoboot(self, timeout: float = 10.0) -> None:
        auto = self.spec.autoboot
        if auto is None:
            return
        con = self.console()
        con.expect(auto[0], timeout)
        con.send(auto[1])
        if self.spec.prompt:
            con.expect(self.spec.prompt, timeout)

    def power_off(self) -> None:
        self.device.power_off()

    def power_cycle(self, then: str = "boot", timeout: float = 10.0) -> None:
        self.device.power_off()
        self.power_on(then, timeout)

    # -- faults --------------------------------------------------------------
    def arm(self, fault: Fault) -> ArmedFault:
        """Arm ``fault`` (:mod:`harness.lab.faults`) on this device; it stays armed until
        it is disarmed or the device is closed."""
        a = arm(self, fault)
        self.armed.append(a)
        return a

    # -- tftp ----------------------------------------------------------------
    def serve_tftp(self) -> None:
        """Serve the lab's work directory on this device's TFTP port."""
        if self._tftp is None and self.spec.tftp:
            self._tftp = TftpServer(self.lab.work, port=self.server_port).start()

    def stop_tftp(self) -> None:
        if self._tftp is not None:
            self._tftp.stop()
            self._tftp = None

    @property
    def tftp_serving(self) -> bool:
        return self._tftp is not None

    # -- engine --------------------------------------------------------------
    def engine_argv(self, argv: list[str], *, auto_options: bool = True) -> list[str]:
        """``argv`` plus ``--port``, ``--json`` and, for operations that use TFTP,
        ``--tftp-bind`` (unless given)."""
        argv = list(argv)
        if not auto_options:
            return argv
        if "--port" not in argv:
            argv += ["--port", self.path]
        op = argv[1] if len(argv) > 1 else ""
        if (
            self.spec.tftp
            and op not in self.spec.no_tftp_ops
            and "--tftp-bind" not in argv
            and "--no-server" not in argv
        ):
            argv += ["--tftp-bind", self.tftp_bind]
        if "--json" not in argv:
            argv.append("--json")
        return argv

    def engine(
        self,
        argv: list[str],
        *,
        timeout: float = 300.0,
        mode: str = "inprocess",
        auto_options: bool = True,
        during: Callable[[], None] | None = None,
    ) -> EngineResult:
        """Run one engine command against this device and collect its result.

        The lab's terminal and TFTP server step aside while it runs. ``during``
        runs in a thread alongside (power events, faults). When the engine does
        not finish in ``timeout`` seconds the device is powered off, which makes
        any engine waiting on the port fail."""
        full = self.engine_argv(argv, auto_options=auto_options)
        self.release_console()
        tftp_was = self.tftp_serving
        self.stop_tftp()
        side: threading.Thread | None = None
        if during is not None:
            side = threading.Thread(target=during, name="engine-during", daemon=True)
            side.start()
        t0 = time.monotonic()
        cli = self.spec.engine_cli
        try:
            if mode == "subprocess" and isinstance(cli, str):
                rc, out, err, timed_out, crash = run_engine_subprocess(
                    cli, full, timeout, self._stop_engine
                )
            else:
                rc, out, err, timed_out, crash = run_engine_inprocess(
                    engine_main(self.board), full, timeout, self._stop_engine
                )
        finally:
            if side is not None:
                side.join(30)
            if tftp_was:
                self.serve_tftp()
        return EngineResult(
            full, rc, out, err, parse_json_output(out), time.monotonic() - t0, timed_out, crash
        )

    def _stop_engine(self) -> None:
        """An engine ran out of time: power the device off; the second time, close
        the line (the engine's reads then fail, as with an unplugged adapter)."""
        if self.device.powered:
            self.device.power_off()
        else:
            self.line_closed = True
            self.device.uart.close()

    # -- artifacts -------------------------------------------------------------
    def save_transcript(self) -> Path:
        return self.transcript.save(self.dir / "transcript.txt")

    def close(self) -> None:
        for a in self.armed:
            a.stop()
        self.release_console()
        self.stop_tftp()
        try:
            self.device.close()
        finally:
            if self.proxy is not None:
                self.proxy.close()
                self.proxy = None


class Lab:
    """A set of emulated devices under one directory. Use as a context manager.

    ``root`` defaults to a new temporary directory, removed at :meth:`close`
    unless ``keep`` is set (or the lab was given its ``root``). ``work`` is the
    directory scenarios put their files in; the lab's TFTP servers serve it.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, *, keep: bool = False) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="camrescue-lab-") if root is None else root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.keep = keep or not self._own_root
        self.work = self.root / "work"
        self.work.mkdir(exist_ok=True)
        self.devices: dict[str, LabDevice] = {}

    def start(
        self,
        board: str,
        *,
        name: str | None = None,
        seed: int = 0,
        realtime: bool = False,
        faults: LinkFaults | Mapping[str, Any] | None = None,
        flash: Any = None,
        options: Mapping[str, Any] | None = None,
        network: TftpFaults | Mapping[str, Any] | None = None,
        tftp_server: bool = True,
        power: str | bool = "prompt",
    ) -> LabDevice:
        """Create a device and (unless ``power`` is False or ``"off"``) power it on:
        ``"prompt"`` stops at the console prompt, ``"boot"`` lets it boot."""
        name = name or board
        if name in self.devices:
            raise ValueError(f"the lab already has a device named {name!r}")
        if isinstance(faults, Mapping):
            faults = LinkFaults(**faults)
        if isinstance(network, Mapping):
            network = TftpFaults(**network)
        dev = LabDevice(
            self,
            board,
            name,
            seed=seed,
            realtime=realtime,
            faults=faults,
            flash=flash,
            options=options,
            network=network,
            tftp_server=tftp_server,
        )
        self.devices[name] = dev
        if power not in (False, "off", None):
            try:
                # a guard, not a measure: fast mode needs a fraction of this, but a loaded
                # machine may stall the device thread for seconds
                dev.power_on("prompt" if power in (True, "prompt") else "boot", timeout=60.0)
            except BaseException:
                dev.close()
                del self.devices[name]
                raise
        return dev

    def put_file(self, name: str, data: bytes) -> Path:
        """Place a file in the work directory (what the TFTP servers serve)."""
        p = (self.work / name).resolve()
        if self.work.resolve() not in p.parents:
            raise ValueError(f"{name!r} is outside the lab's work directory")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p

    def close(self) -> None:
        errors: list[BaseException] = []
        for dev in list(self.devices.values()):
            try:
                dev.close()
            except BaseException as e:  # close the others anyway
                errors.append(e)
        self.devices.clear()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        if errors:
            raise errors[0]

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def device(board: str, **kwargs: Any) -> Iterator[LabDevice]:
    """One device in a throw-away lab: ``with device("hi3511", flash="vendor:A") as d:``."""
    with Lab() as lab:
        yield lab.start(board, **kwargs)
