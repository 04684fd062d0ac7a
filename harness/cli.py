"""The ``camrescue`` command: engine operations, emulated devices, scenarios, benchmarks.

    camrescue hi3511|w90p745|xr872 ...   recover a camera (the engine, recovery/)
    camrescue emulate BOARD ...          serve an emulated camera on a pty
    camrescue power ACTION ...           switch an emulated camera's power from outside
    camrescue scenarios run|list ...     run the bundled scenarios
    camrescue bench                      run the benchmarks in bench/

The engine's subcommands come from :mod:`recovery.cli`, so ``python -m
recovery`` offers the same without the harness installed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from harness.boards import BOARDS, device_class
from harness.practice import (
    add_sample_image_parser,
    add_scenario_examples,
    emulate_board_epilog,
    recipe_lines,
)


def _emulator_module(board: str) -> str:
    """The module of the board's emulated device (from the one registry)."""
    spec = BOARDS[board]
    if isinstance(spec.device, type):
        return spec.device.__module__
    return spec.device.partition(":")[0]


EMULATE_EPILOG = """\
examples:
  camrescue emulate hi3511 --flash cam.bin --tftp-root ./tftp
      serve a Hi3511 whose flash lives in cam.bin (created with vendor-like
      firmware when missing); it prints the engine command to paste
      (camrescue hi3511 info --port /dev/pts/N --no-server --tftp-root ./tftp
      --reboot), or open the port with picocom -b 115200 /dev/pts/N and type
      U-Boot commands. TFTP traffic goes to the server started on
      127.0.0.1:6969 serving ./tftp.
  camrescue emulate w90p745 --link /tmp/ttyCAM0
      a W90P745 reachable at the stable path /tmp/ttyCAM0.
  camrescue emulate hi3511 --serve rfc2217://127.0.0.1:5511 --control /tmp/cam.ctl
      the console also served over RFC 2217 (socket://HOST:PORT: raw TCP), one
      client at a time, as a lab's serial server does; a lab's power driver
      runs camrescue power on|off|cycle|status --control /tmp/cam.ctl
      (docs/labs.md).

The device runs in fast mode (no waiting) unless --realtime is given.
kill -HUP PID power-cycles it (to rehearse "power-cycle the camera now");
Ctrl-C stops it and keeps its flash file.
"""

TOP_EPILOG = """\
examples:
  camrescue ports
      which serial ports this computer has (USB adapters, /dev/serial/by-id)
  camrescue hi3511 info --port /dev/ttyUSB0
      what is this camera? (then power it on)
  camrescue emulate hi3511 --flash cam.bin
      an emulated camera to rehearse on; it prints the engine command to paste
  camrescue sample-image hi3511 --out sample-root.jffs2
      a practice root file system to flash on the emulated camera
  camrescue scenarios list
      the bundled scenarios

Run 'camrescue COMMAND --help' for a command's options and more examples.
"""


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def add_emulate_parser(sub: Any) -> None:
    from harness.lab.serve import add_serve_options  # here: engine commands skip harness.lab

    p = sub.add_parser(
        "emulate",
        help="serve an emulated camera on a virtual serial port",
        description="Serve an emulated camera board on a pty until interrupted.",
        epilog=EMULATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bsub = p.add_subparsers(dest="board", required=True, metavar="BOARD")
    for board in BOARDS:
        bp = bsub.add_parser(
            board,
            help=f"emulate the {board} board",
            epilog=emulate_board_epilog(board),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        bp.add_argument(
            "--flash", type=Path, help="persistent flash image file (created if missing)"
        )
        bp.add_argument("--link", type=Path, help="make this stable symlink to the pty")
        bp.add_argument(
            "--realtime", action="store_true", help="pace the link and flash as the device"
        )
        bp.add_argument("--seed", type=int, default=0, help="seed for noise, faults and identities")
        bp.add_argument("--transcript", type=Path, help="save the session transcript here on exit")
        bp.add_argument(
            "--force",
            action="store_true",
            help="replace an existing --transcript file (without it, an existing one is refused)",
        )
        add_serve_options(bp)
        if board == "hi3511":
            bp.add_argument(
                "--tftp-server",
                type=_hostport,
                default=("127.0.0.1", 6969),
                metavar="HOST:PORT",
                help="where the device's TFTP traffic really goes, whatever serverip says "
                "(loopback only; default 127.0.0.1:6969)",
            )
            bp.add_argument(
                "--tftp-root",
                type=Path,
                help="also start a TFTP server on --tftp-server serving this directory",
            )
        try:
            mod = importlib.import_module(_emulator_module(board))
        except ImportError:
            continue
        if hasattr(mod, "add_emulate_options"):
            mod.add_emulate_options(bp)
        bp.set_defaults(func=run_emulate)


def _initial_flash(board: str, path: Path | None, uboot: str | None = None) -> bytes | None:
    """A new flash file for the Hi3511 gets the harness's vendor-like firmware (its
    environment where the chosen U-Boot tree, ``--uboot``, keeps it)."""
    if board != "hi3511" or (path is not None and path.exists()):
        return None
    from harness.firmware.hi3511 import DEFAULT_UBOOT, vendor_flash

    return vendor_flash("A", uboot=uboot or DEFAULT_UBOOT)


def run_emulate(args: argparse.Namespace) -> int:
    from harness.lab.serve import serving

    if args.transcript is not None and args.transcript.exists() and not args.force:
        print(
            f"error: {args.transcript} already exists, and the transcript would replace it. "
            "Give another --transcript path, or add --force to replace it.",
            file=sys.stderr,
        )
        return 2

    cls = device_class(args.board)
    module = _emulator_module(args.board)
    kw: dict[str, Any] = {
        "flash_path": args.flash,
        "realtime": args.realtime,
        "seed": args.seed,
        "link_path": args.link,
    }
    initial = _initial_flash(args.board, args.flash, getattr(args, "uboot", None))
    if initial is not None:
        kw["initial_flash"] = initial
    if args.board == "hi3511":
        kw["tftp_server"] = args.tftp_server
    mod = importlib.import_module(module)
    if hasattr(mod, "emulate_kwargs"):
        kw.update(mod.emulate_kwargs(args))
    server = None
    if getattr(args, "tftp_root", None) is not None:
        from harness.lab.tftp import TftpServer

        try:
            server = TftpServer(args.tftp_root, args.tftp_server[0], args.tftp_server[1]).start()
        except OSError as e:
            print(
                f"error: {e}. Another emulator or camrescue command holds that UDP port: "
                "stop it, or give --tftp-server 127.0.0.1:PORT with a free PORT.",
                file=sys.stderr,
            )
            return 5
    stop = threading.Event()
    cycle = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # SIGHUP pulls the plug and plugs it back in, as a person does to a camera
    signal.signal(signal.SIGHUP, lambda *_: cycle.set())
    try:
        with cls(**kw) as dev, serving(dev, args, lambda line: print(line, flush=True)) as lab:
            print(
                f"{args.board}: serving on {dev.path}"
                + (f" (also {args.link})" if args.link else "")
            )
            if args.flash:
                print(f"flash: {args.flash}")
            if server is not None:
                print(f"tftp: {args.tftp_root} on {args.tftp_server[0]}:{args.tftp_server[1]}")
            print("open it with: picocom -b 115200 " + str(args.link or dev.path))
            port = lab.url or str(args.link or dev.path)
            print("\n".join(recipe_lines(args.board, port, args)))
            print(f"kill -HUP {os.getpid()} power-cycles it; Ctrl-C stops it.", flush=True)
            try:
                while not stop.is_set():
                    if cycle.wait(0.2):
                        cycle.clear()
                        lab.switch.do("cycle")  # prints "power cycle: on"
            except KeyboardInterrupt:
                pass
            if args.transcript:
                dev.transcript.save(args.transcript)
    finally:
        if server is not None:
            server.stop()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="camrescue",
        description="Recover IP cameras over their serial console, and test that without hardware.",
        epilog=TOP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    try:
        from recovery import cli as engine_cli

        engine_cli.register(sub)
    except ImportError as e:  # the engine is being built; say so instead of failing
        print(f"note: engine commands unavailable ({e})", file=sys.stderr)
    add_emulate_parser(sub)
    from harness.lab.power import add_power_parser

    add_power_parser(sub)
    add_sample_image_parser(sub)
    try:
        from harness.fuzz.cli import hook_scenarios
        from harness.scenarios.cli import register_cli

        hook_scenarios(register_cli(sub))
        add_scenario_examples(sub.choices.get("scenarios"))
    except ImportError:
        pass
    bench = sub.add_parser(
        "bench",
        help="run the benchmarks in bench/ and print their ratios",
        epilog="examples:\n  camrescue bench\n      every benchmark; ratios are printed, "
        "nothing is asserted (docs/performance.md)\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.set_defaults(
        func=lambda a: __import__("runpy").run_module("bench", run_name="__main__") and 0
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("hi3511", "w90p745", "xr872"):
        # the engine's own parser: with --json every outcome is JSON, usage errors too
        from recovery import cli as engine_cli

        return engine_cli.main(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except BrokenPipeError:
        # the reader went away (`camrescue scenarios list | head`): stop quietly, as a
        # program killed by SIGPIPE does, without a traceback at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
