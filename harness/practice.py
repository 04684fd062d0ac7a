"""Practice material for a camera owner rehearsing on the emulator (issue 20).

* ``camrescue sample-image BOARD --out FILE``: a real firmware file to flash on the
  emulated camera, built by the project's firmware builders (harness/firmware/):
  for the Hi3511 a JFFS2 root file system (the other firmware than the one the
  emulated camera ships with, so ``flash`` visibly changes ``/etc/version``;
  ``--pkg`` wraps it in a vendor ``.pkg`` header), for the XR872 an
  ``xr_system.img`` (AWIH sections; ``--xr809``: the other chip's image, which
  bricks an XR872 when forced onto it). The W90P745 is restored from a dump
  directory (``camrescue w90p745 dump``), so it has no sample image.
* :func:`engine_recipe`: the exact engine command ``camrescue emulate`` prints for
  pasting into another terminal: the port, the TFTP endpoint and ``--reboot``
  (the emulated Hi3511 boots Linux at once; on a real camera you cycle the power
  instead). With ``--tftp-root`` the emulator's own TFTP server holds the UDP
  port, so the recipe tells the engine to use that server (``--no-server
  --tftp-root DIR``) instead of binding a second one on the same port.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

SAMPLE_EPILOG = """\
examples:
  camrescue sample-image hi3511 --out sample-root.jffs2
      a JFFS2 root file system (firmware B12SE_V60.1.1.4_536mP1_60) to flash on
      the emulated Hi3511: camrescue hi3511 flash --port /dev/pts/N ... sample-root.jffs2
  camrescue sample-image hi3511 --pkg --out sample.pkg
      the same root behind a 144-byte vendor .pkg header, as update files come
  camrescue sample-image xr872 --out xr_system.img
      an XR872 firmware image (AWIH sections) for camrescue xr872 write
  camrescue sample-image xr872 --xr809 --out xr809.img
      an XR809 image: forced onto an emulated XR872 it bricks it (docs/xr872.md)

These files are for the emulated cameras only: never flash them on a real camera.
"""

SAMPLE_BOARDS = ("hi3511", "xr872")


def sample_image(board: str, *, pkg: bool = False, xr809: bool = False, seed: int = 0) -> bytes:
    """The bytes of the practice firmware file for ``board``."""
    if xr809 and board != "xr872":
        raise ValueError("--xr809 is for the xr872 only")
    if board == "hi3511":
        from harness.firmware.hi3511 import root_image, vendor_pkg

        root = root_image("B", seed=seed)
        return vendor_pkg(root, 144, seed=seed) if pkg else root
    if board == "xr872":
        if pkg:
            raise ValueError("--pkg is for the hi3511 only")
        from harness.firmware.xr872 import build_image, xr809_sections, xr872_sections

        return build_image(xr809_sections(seed) if xr809 else xr872_sections(seed))
    raise ValueError(f"no sample image for {board!r} (boards: {', '.join(SAMPLE_BOARDS)})")


def run_sample_image(args: argparse.Namespace) -> int:
    try:
        data = sample_image(args.board, pkg=args.pkg, xr809=args.xr809, seed=args.seed)
    except ValueError as e:
        print(f"error: {e}")
        return 2
    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"error: {out} exists; give --force to replace it")
        return 2
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    print(f"{out}: {len(data)} bytes, practice {args.board} firmware (emulator only)")
    return 0


def add_sample_image_parser(sub: Any) -> None:
    p = sub.add_parser(
        "sample-image",
        help="write a practice firmware file for the emulated cameras",
        description="Write a firmware file built by camrescue's firmware builders, to "
        "rehearse flash and write on an emulated camera.",
        epilog=SAMPLE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("board", choices=SAMPLE_BOARDS, metavar="BOARD", help="hi3511 or xr872")
    p.add_argument("--out", required=True, type=Path, metavar="FILE", help="where to write it")
    p.add_argument("--pkg", action="store_true", help="hi3511: wrap in a 144-byte .pkg header")
    p.add_argument(
        "--xr809",
        action="store_true",
        help="xr872: an XR809 image instead (the wrong chip's image: it bricks an XR872)",
    )
    p.add_argument("--seed", type=int, default=0, help="another seed gives other file contents")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.set_defaults(func=run_sample_image)


def engine_recipe(
    board: str,
    port: str,
    *,
    tftp_server: tuple[str, int] | None = None,
    tftp_root: Path | None = None,
) -> str:
    """The engine command line to paste for an emulated ``board`` on ``port``."""
    if board == "hi3511":
        net = (
            f"--no-server --tftp-root {Path(tftp_root).resolve()}"
            if tftp_root is not None
            else f"--tftp-bind {tftp_server[0]}:{tftp_server[1]}"
            if tftp_server is not None
            else ""
        )
        return f"camrescue hi3511 info --port {port} {net} --reboot".replace("  ", " ")
    if board == "w90p745":  # the loader waits 2 s at power-on only: wait, then power-cycle
        return f"camrescue w90p745 info --port {port} --wait 60"
    return f"camrescue {board} info --port {port}"


def recipe_lines(board: str, port: str, args: argparse.Namespace) -> list[str]:
    """What ``camrescue emulate`` prints after the port: the command to paste."""
    line = engine_recipe(
        board,
        port,
        tftp_server=getattr(args, "tftp_server", None),
        tftp_root=getattr(args, "tftp_root", None),
    )
    out = ["engine command (paste into another terminal):", f"  {line}"]
    if board == "w90p745":
        out.append(
            "  the emulated camera has booted past its loader, as a real one has: while that "
            f"command waits, power-cycle it: camrescue power cycle --pid {os.getpid()} "
            "(a real camera: unplug and replug its power)"
        )
    if board == "hi3511":
        out.append(
            "  the same options for backup, flash, restore and boot; --reboot gets the "
            "emulated camera from Linux back to U-Boot (a real camera: cycle its power)"
        )
        if getattr(args, "tftp_root", None) is None:
            out.append(
                f"  TFTP: the engine serves it on {args.tftp_server[0]}:{args.tftp_server[1]}, "
                "where this emulator sends the camera's TFTP traffic"
            )
        else:
            out.append(
                "  TFTP: this emulator serves the directory; --no-server tells the engine "
                "to use it instead of starting its own on the same port"
            )
    return out


def emulate_board_epilog(board: str) -> str:
    """The examples of ``camrescue emulate BOARD --help``."""
    lines = ["examples:", f"  camrescue emulate {board} --flash cam.bin"]
    if board == "hi3511":
        lines += [
            "      an emulated Hi3511 whose flash lives in cam.bin; it prints its port and the",
            "      engine command to paste (--tftp-bind 127.0.0.1:6969 --reboot)",
            "  camrescue emulate hi3511 --flash cam.bin --tftp-root ./tftp",
            "      it also serves TFTP from ./tftp: the command to paste then says",
            "      --no-server --tftp-root ./tftp, so the engine does not start a second server",
        ]
    else:
        lines += ["      it prints its port and the engine command to paste"]
    lines += [
        f"  camrescue emulate {board} --link /tmp/ttyCAM0",
        "      the port also at a stable path",
    ]
    return "\n".join(lines) + "\n"


SCENARIO_EXAMPLES = {
    "": [
        ("camrescue scenarios list", "what there is, and whether each is ready"),
        ("camrescue scenarios run -k crossgrade", "a subset by name"),
    ],
    "run": [
        ("camrescue scenarios run", "the bundled set: a table, report.html, junit.xml"),
        ("camrescue scenarios run -k hi3511-backup-verify", "one scenario by name"),
        ("camrescue scenarios run -n 2 --report reports/", "in parallel, the report elsewhere"),
        ("camrescue scenarios run scenarios/hi3511-backup-verify.yaml", "one file"),
    ],
    "list": [
        ("camrescue scenarios list", "the bundled scenarios and their status"),
        ("camrescue scenarios list scenarios/hi3511-backup-verify.yaml", "check one file"),
    ],
}


def _examples(items: list[tuple[str, str]]) -> str:
    lines = ["examples:"]
    for cmd, what in items:
        lines += [f"  {cmd}", f"      {what}"]
    return "\n".join(lines) + "\n"


def add_scenario_examples(parser: Any) -> None:
    """Examples for ``camrescue scenarios [run|list] --help`` where the scenario
    commands give none of their own (issue 20: every --help has examples)."""
    if parser is None:
        return
    todo = [("", parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            todo += list(action.choices.items())
    for name, p in todo:
        if name in SCENARIO_EXAMPLES and "examples:" not in (p.epilog or ""):
            p.epilog = _examples(SCENARIO_EXAMPLES[name]) + ("\n" + p.epilog if p.epilog else "")
            p.formatter_class = argparse.RawDescriptionHelpFormatter
