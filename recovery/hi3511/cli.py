"""``camrescue hi3511 {info,backup,flash,restore,boot}``: options, and the text result.

Turns the command line into the arguments of the operations in
recovery/hi3511/operations.py and runs them through :func:`recovery.cliutil.run_operation`
(one JSON object with ``--json``, else :func:`render` for a person; the exit
codes of ``recovery.errors.EXIT_CODES``). :func:`register_cli` is re-exported
by recovery/hi3511/operations.py, where recovery/cli.py looks for it.
"""

from __future__ import annotations

import argparse
from typing import Any

from recovery.cliutil import (
    add_board_parser,
    add_operation_parser,
    add_output_options,
    add_port_options,
    parse_host_port,
    parse_int,
    progress_enabled,
    run_operation,
)
from recovery.errors import ImageError, RefusedError
from recovery.files import Input, Output, unique_path
from recovery.hi3511.backupfile import load_backup
from recovery.hi3511.driver import ShellQuery
from recovery.hi3511.flashmap import (
    BAUD,
    FLASH_SIZE,
    JFFS2_REGIONS,
    KERNEL_ADDRESS,
    LOAD_ADDRESS,
    REGIONS,
    region_name,
)
from recovery.hi3511.images import looks_like_jffs2
from recovery.hi3511.network import NetOptions
from recovery.hi3511.operations import (
    Connection,
    _default_backup_path,
    backup,
    boot,
    flash,
    info,
    restore,
)
from recovery.hi3511.parsers import parse_uimage_header
from recovery.ports import confirm_typed
from recovery.safety import flash_tracker

_MANIFEST = (".json",)


def _conn(args: argparse.Namespace) -> Connection:
    return Connection(
        args.port,
        args.baud,
        wait=20.0 if args.wait is None else args.wait,
        reboot=args.reboot,
        transcript=args.transcript,
        progress=progress_enabled(args),
        wait_for_port=args.wait is not None,
    )


def _net(args: argparse.Namespace) -> NetOptions:
    return NetOptions(
        ipaddr=args.ipaddr,
        serverip=args.serverip,
        netmask=args.netmask,
        tftp_bind=args.tftp_bind,
        tftp_root=args.tftp_root,
        server=not args.no_server,
        load_address=args.load_address,
        nic=getattr(args, "nic", None),
    )


def check_backup_contents(path: str | None, address: int | None, *, trust: bool) -> None:
    """A backup is trusted only if it looks like a Hi3511 flash (issue 17): the manifest
    matches the file (board, size, sha256, per range crc32: :func:`load_backup`), a
    uImage header at the kernel address and JFFS2 at the root's; ``trust`` skips the
    look (``--i-know-the-backup-is-odd``)."""
    if path is None:
        return
    bk = load_backup(path, address)
    if trust:
        return
    problems = []
    for r in bk.ranges:
        head = bk.range_data(r)[:0x10000]
        if r["address"] == KERNEL_ADDRESS and not parse_uimage_header(head[:64]).magic_ok:
            problems.append(f"no uImage header at the kernel address {KERNEL_ADDRESS:#x}")
        if r["address"] == REGIONS["rootfs"].start and not looks_like_jffs2(head):
            problems.append(f"no JFFS2 node at the root's address {REGIONS['rootfs'].start:#x}")
    if problems:
        raise ImageError(
            f"{path} does not look like a backup of a Hi3511 flash: " + "; ".join(problems),
            flash_state="untouched",
            hint="use a backup made by 'camrescue hi3511 backup'; if you know this file is "
            "right, add --i-know-the-backup-is-odd",
        )


def _trust_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--i-know-the-backup-is-odd",
        dest="trust_backup",
        action="store_true",
        help="use a backup without a uImage header at the kernel or JFFS2 at the root "
        "(refused by default: it is probably not a flash backup)",
    )


def _resume(a: argparse.Namespace, *words: str) -> str:
    """The command that finishes an interrupted job, for the flash state."""
    return " ".join(["camrescue", "hi3511", *words, "--port", a.port])


def render(payload: dict[str, Any]) -> str:
    """The result for a person (stdout without --json)."""
    lines = [payload.get("message", "")]
    for key in ("uboot_version", "path", "manifest", "flash_crc32", "flash_state"):
        if payload.get(key) not in (None, ""):
            lines.append(f"  {key}: {payload[key]}")
    fl = payload.get("flash")
    if isinstance(fl, dict):
        lines.append(
            f"  flash: {fl['size'] >> 20} MiB at {fl['base']}, {fl['sectors']} sectors of "
            f"{fl['sector_size'] >> 10} KiB, protected: {' '.join(fl['protected']) or 'none'}"
        )
    for part in payload.get("partitions") or []:
        lines.append(f"  partition {part['name']}: {part['address']} +{part['size']:#x}")
    for name, reg in (payload.get("regions") or {}).items():
        lines.append(f"  region {name}: {reg['address']} +{reg['size']:#x}")
    kernel = payload.get("kernel")
    if isinstance(kernel, dict) and kernel.get("magic_ok"):
        crc = "ok" if kernel["header_crc_ok"] else "BAD"
        lines.append(f"  kernel: {kernel['name']}, {kernel['data_size']} bytes, header CRC {crc}")
    env = payload.get("env") or {}
    for key in ("ethaddr", "ipaddr", "serverip", "netmask", "bootcmd"):
        if key in env:
            lines.append(f"  env {key}={env[key]}")
    if "rootfs_jffs2" in payload:
        lines.append(f"  rootfs looks like JFFS2: {payload['rootfs_jffs2']}")
    for key in ("mounted", "crc_errors", "panic"):
        if key in payload and payload[key] is not None:
            lines.append(f"  {key}: {payload[key]}")
    for path, names in (payload.get("files") or {}).items():
        lines.append(f"  ls {path}: {' '.join(names)}")
    for path, text in (payload.get("cat") or {}).items():
        lines.append(f"  cat {path}:")
        lines += [f"    {line}" for line in text.splitlines()]
    for step in payload.get("steps") or []:
        lines.append(f"  step {step['name']}: {step['seconds']:.2f} s")
    return "\n".join(lines)


def _common(p: argparse.ArgumentParser) -> None:
    add_port_options(p, baud=BAUD)
    add_output_options(p)
    p.add_argument(
        "--wait",
        type=float,
        default=None,
        metavar="S",
        help="how long to wait for U-Boot (time to power the camera on); default 20",
    )
    p.add_argument(
        "--reboot",
        action="store_true",
        help="if the camera runs Linux with a root shell on the console, type 'reboot' to "
        "get back to U-Boot (instead of asking for a power cycle)",
    )


def _network_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("network (the camera's U-Boot TFTP client)")
    g.add_argument("--ipaddr", help="the camera's address (default: its ipaddr variable)")
    g.add_argument("--serverip", help="this computer's address as the camera sees it")
    g.add_argument("--netmask", help="netmask (default: the camera's, else 255.255.255.0)")
    g.add_argument(
        "--nic",
        metavar="IFACE",
        help="this computer's network interface the camera is plugged into: its address "
        "becomes serverip (default: serverip is checked against this computer's addresses)",
    )
    g.add_argument(
        "--tftp-bind",
        type=lambda s: parse_host_port(s, 69),
        default=None,
        metavar="HOST:PORT",
        help="where the embedded TFTP server listens (default: the serverip the camera is "
        "told, port 69, which needs root; never all addresses unless you say 0.0.0.0); "
        "127.0.0.1:6969 for the emulator",
    )
    g.add_argument("--tftp-root", metavar="DIR", help="directory the TFTP server serves")
    g.add_argument(
        "--no-server",
        action="store_true",
        help="use an existing TFTP server whose root is --tftp-root (uploads must be allowed)",
    )
    g.add_argument(
        "--load-address",
        type=parse_int,
        default=LOAD_ADDRESS,
        metavar="ADDR",
        help=f"RAM address images are downloaded to before flashing (default {LOAD_ADDRESS:#x})",
    )


def _shell_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("after booting (the root shell)")
    g.add_argument(
        "--ls",
        action="append",
        metavar="DIR",
        help="directory to list in the booted system's shell, besides / (repeatable)",
    )
    g.add_argument(
        "--cat",
        action="append",
        metavar="FILE",
        help="file to print (repeatable), e.g. /etc/version",
    )


def _shell_query(args: argparse.Namespace) -> ShellQuery:
    return ShellQuery(tuple(dict.fromkeys(["/", *(args.ls or [])])), tuple(args.cat or []))


def register_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``hi3511 {info,backup,flash,restore,boot}`` to an argparse subparsers object."""
    top = add_board_parser(
        subparsers,
        "hi3511",
        help="HiSilicon Hi3511 cameras (U-Boot 1.1.4): info, backup, flash, restore, boot",
        description="Back up, crossgrade and restore a Hi3511 camera through its U-Boot console "
        "and TFTP. See docs/hi3511.md.",
    )

    p = add_operation_parser(top, "info", help="U-Boot version, flash, environment, partitions")
    _common(p)
    _network_options(p)
    p.set_defaults(func=lambda a: run_operation(a, "info", lambda: info(_conn(a)), render=render))

    p = add_operation_parser(
        top, "backup", help="upload kernel, root and settings over TFTP, verified"
    )
    _common(p)
    _network_options(p)
    p.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="backup image (a FILE.json manifest is written beside it)",
    )
    p.add_argument(
        "--include-bootloader", action="store_true", help="all 16 MiB, boot loader included"
    )
    p.set_defaults(
        func=lambda a: run_operation(
            a,
            "backup",
            lambda: backup(_conn(a), a.out, _net(a), include_bootloader=a.include_bootloader),
            render=render,
            outputs=[Output("--out", a.out, size=FLASH_SIZE, sidecars=_MANIFEST)],
        )
    )

    p = add_operation_parser(
        top, "flash", help="write a JFFS2 image or vendor .pkg to a partition, then boot"
    )
    _common(p)
    _network_options(p)
    _shell_options(p)
    p.add_argument("image", metavar="IMAGE", help="raw JFFS2 image or vendor .pkg")
    p.add_argument("--partition", default="rootfs", type=region_name, choices=JFFS2_REGIONS)
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--backup", metavar="FILE", help="an existing backup of this camera (with its manifest)"
    )
    g.add_argument(
        "--no-backup", action="store_true", help="do not back up first (not recommended)"
    )
    g.add_argument(
        "--backup-out",
        metavar="FILE",
        help="where the backup made first goes (default ./hi3511-backup-DATE.bin)",
    )
    p.add_argument(
        "--skip-erase",
        action="store_true",
        help="reproduce the classic mistake on purpose: tftp straight into flash without "
        "erasing (on a real port you are asked to type SKIP-ERASE)",
    )
    p.add_argument("--no-boot", action="store_true", help="do not boot after writing")
    p.add_argument(
        "--remote-name", metavar="NAME", help="file name the camera asks the TFTP server for"
    )
    _trust_option(p)

    def _flash(a: argparse.Namespace) -> int:
        backup_out = None
        if not (a.backup or a.no_backup):
            backup_out = a.backup_out or str(unique_path(_default_backup_path()))

        def run() -> Any:
            check_backup_contents(a.backup, None, trust=a.trust_backup)
            if a.skip_erase and not confirm_typed(
                a.port,
                "--skip-erase writes the image straight into the camera's flash WITHOUT "
                "erasing it first: the root file system will be corrupt (JFFS2 CRC errors) "
                "until you restore or flash again.",
                "SKIP-ERASE",
            ):
                raise RefusedError(
                    "--skip-erase was not confirmed",
                    flash_state="untouched",
                    hint="type SKIP-ERASE when asked, or leave out --skip-erase",
                )
            again = _resume(a, "flash", a.image, "--partition", a.partition, "--no-backup")
            kept = a.backup or backup_out
            flash_tracker().resume = (
                _resume(a, "restore", kept, "--partition", a.partition) if kept else again
            )
            return flash(
                _conn(a),
                a.image,
                _net(a),
                partition=a.partition,
                backup_file=a.backup,
                no_backup=a.no_backup,
                backup_out=backup_out,
                skip_erase=a.skip_erase,
                boot=not a.no_boot,
                remote_name=a.remote_name,
                shell=_shell_query(a),
            )

        return run_operation(
            a,
            "flash",
            run,
            render=render,
            outputs=[Output("--backup-out", backup_out, size=FLASH_SIZE, sidecars=_MANIFEST)],
            inputs=[Input("IMAGE", a.image), Input("--backup", a.backup, sidecars=_MANIFEST)],
        )

    p.set_defaults(func=_flash)

    p = add_operation_parser(top, "restore", help="write a backup back (safe order), then boot")
    _common(p)
    _network_options(p)
    _shell_options(p)
    p.add_argument(
        "backup", metavar="BACKUP", help="backup image (its FILE.json manifest beside it)"
    )
    p.add_argument(
        "--partition",
        action="append",
        type=region_name,
        choices=list(REGIONS),
        help="restore only this range (repeatable)",
    )
    p.add_argument("--address", type=parse_int, help="flash address a manifest-less dump starts at")
    p.add_argument(
        "--include-bootloader", action="store_true", help="also restore the boot loader area"
    )
    p.add_argument(
        "--confirm-bootloader", action="store_true", help="yes, rewrite the boot loader area"
    )
    p.add_argument("--no-boot", action="store_true", help="do not boot after writing")
    p.add_argument(
        "--other-camera",
        action="store_true",
        help="restore a backup whose manifest names another camera (its MAC address)",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--backup-out",
        metavar="FILE",
        help="where the backup of what is about to be overwritten goes (default "
        "./hi3511-backup-DATE.bin)",
    )
    g.add_argument(
        "--no-backup",
        action="store_true",
        help="do not back up the flash before restoring (not recommended)",
    )
    _trust_option(p)

    def _restore(a: argparse.Namespace) -> int:
        backup_out = (
            None if a.no_backup else (a.backup_out or str(unique_path(_default_backup_path())))
        )

        def run() -> Any:
            check_backup_contents(a.backup, a.address, trust=a.trust_backup)
            words = [
                "restore",
                a.backup,
                *[w for n in a.partition or [] for w in ("--partition", n)],
            ]
            if a.address is not None:
                words += ["--address", hex(a.address)]
            if a.include_bootloader:
                words += ["--include-bootloader", "--confirm-bootloader"]
            flash_tracker().resume = _resume(a, *words, "--no-backup")
            return restore(
                _conn(a),
                a.backup,
                _net(a),
                partitions=a.partition,
                include_bootloader=a.include_bootloader,
                confirm_bootloader=a.confirm_bootloader,
                address=a.address,
                boot=not a.no_boot,
                shell=_shell_query(a),
                other_camera=a.other_camera,
                backup_out=backup_out,
            )

        return run_operation(
            a,
            "restore",
            run,
            render=render,
            outputs=[Output("--backup-out", backup_out, size=FLASH_SIZE, sidecars=_MANIFEST)],
            inputs=[Input("BACKUP", a.backup, sidecars=_MANIFEST)],
        )

    p.set_defaults(func=_restore)

    p = add_operation_parser(
        top, "boot", help="boot the kernel and report CRC errors and the mount"
    )
    _common(p)
    _network_options(p)
    _shell_options(p)
    p.set_defaults(
        func=lambda a: run_operation(
            a, "boot", lambda: boot(_conn(a), shell=_shell_query(a)), render=render
        )
    )
    return top
