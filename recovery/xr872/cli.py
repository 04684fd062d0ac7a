"""``camrescue xr872 {info,dump,write,clone}``: options, messages and the text result.

Turns the command line into :class:`~recovery.xr872.Options` and the arguments
of the operations in recovery/xr872/operations.py, and runs them through
:func:`recovery.cliutil.run_operation` (one JSON object with ``--json``; the exit
codes of ``recovery.errors.EXIT_CODES``). :func:`register_cli` and :func:`main`
are re-exported by recovery/xr872/operations.py (``python -m recovery.xr872 ...``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from recovery.cliutil import (
    add_output_options,
    add_port_options,
    parse_int,
    progress_enabled,
    run_operation,
    say,
)
from recovery.errors import BootError, UsageError, exit_codes_epilog
from recovery.examples import examples_epilog
from recovery.files import Input, Output
from recovery.jsonout import hex_fields
from recovery.xr872.driver import (
    DEFAULT_BAUD,
    ROM_BAUD,
    TOOL_BAUDS,
    BootCheck,
    Options,
)
from recovery.xr872.operations import WRITE_UNIT, WriteResult, clone, dump, info, write


def tool_baud(text: str) -> int:
    """An argparse type: one of the six rates the XRadio tools use."""
    try:
        value = int(text, 10)
    except ValueError:
        value = -1
    if value not in TOOL_BAUDS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the XR872 ROM is only known to do the rates the tools use "
            f"({', '.join(map(str, TOOL_BAUDS))}); what it does with others is unknown"
        )
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    add_port_options(p, baud=ROM_BAUD)
    add_output_options(p)
    p.add_argument(
        "--max-baud", type=tool_baud, default=DEFAULT_BAUD,
        help="rate to raise the link to with SETUART: 921600 (default), 1000000, 1500000 "
        "or 3000000 (many USB-TTL adapters fail above 921600); 115200 keeps the link "
        "where it is",
    )  # fmt: skip
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for an answer")
    p.add_argument("--retries", type=int, default=4, help="retries of a corrupted exchange")
    p.add_argument(
        "--boot-wait", type=float, default=3.0,
        help="seconds a rebooted unit may take to print its banner (3)",
    )  # fmt: skip
    p.add_argument(
        "--settle", type=float, default=0.5,
        help="seconds the line must be quiet before the engine types anything (0.5)",
    )  # fmt: skip
    p.add_argument("--chunk", type=parse_int, default=0x1000, help="bytes per read (4k)")
    p.add_argument(
        "--verify", choices=("auto", "twice", "none"), default="auto",
        help="per-chunk check: the ROM's checksum when it sends one, else read twice "
        "(auto); always read twice; none",
    )  # fmt: skip


def _options(a: argparse.Namespace) -> Options:
    if a.chunk <= 0 or a.chunk % WRITE_UNIT:
        raise UsageError(f"--chunk must be a positive multiple of {WRITE_UNIT} bytes")
    return Options(
        port=a.port, baud=a.baud, max_baud=a.max_baud, timeout=a.timeout, retries=a.retries,
        transcript=a.transcript, chunk=a.chunk,
        verify=a.verify, boot_wait=a.boot_wait, settle=a.settle, progress=progress_enabled(a),
    )  # fmt: skip


def register_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``xr872 info|dump|write|clone``; each sets ``func(args) -> exit code``."""
    p = subparsers.add_parser(
        "xr872",
        help="XR872 cameras (XF16): info, dump, write, clone through the boot ROM",
        description="Talk to an XR872's boot ROM over a USB-TTL adapter (docs/xr872.md).",
        epilog=examples_epilog("xr872") + exit_codes_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sp = p.add_subparsers(dest="xr872_command", required=True, metavar="ACTION")

    def _sub(name: str) -> dict[str, Any]:
        return {
            "epilog": examples_epilog("xr872", name) + exit_codes_epilog(),
            "formatter_class": argparse.RawDescriptionHelpFormatter,
        }

    q = sp.add_parser(
        "info", **_sub("info"), help="chip, flash id/size, image sections, eFuse and sysinfo MACs"
    )
    _add_common(q)
    _add_reboot(q)
    q.set_defaults(func=_cli_info)

    q = sp.add_parser(
        "dump", **_sub("dump"), help="read the whole flash to a file (+ manifest); resumable"
    )
    _add_common(q)
    q.add_argument("--out", required=True, help="output file (written atomically)")
    q.add_argument("--no-resume", action="store_true", help="ignore an interrupted .part file")
    _add_reboot(q)
    q.set_defaults(func=_cli_dump)

    q = sp.add_parser(
        "write", **_sub("write"), help="write an XR872 image: checked, backed up, verified"
    )
    _add_common(q)
    q.add_argument("image", help="xr_system.img or a whole-flash dump")
    _add_write_options(q)
    q.set_defaults(func=_cli_write)

    q = sp.add_parser(
        "clone",
        **_sub("clone"),
        help="write a donor's dump, keeping this unit's own sysinfo and data",
    )
    _add_common(q)
    q.add_argument("--from", dest="donor", required=True, help="the donor's 1 MiB dump")
    _add_write_options(q)
    q.set_defaults(func=_cli_clone)
    return p


def _add_reboot(q: argparse.ArgumentParser) -> None:
    g = q.add_mutually_exclusive_group()
    g.add_argument(
        "--reboot", dest="reboot", action="store_true", default=None,
        help="reboot afterwards (the default when the unit was entered from its console)",
    )  # fmt: skip
    g.add_argument(
        "--no-reboot", dest="reboot", action="store_false", help="leave it in the boot ROM"
    )


def _add_write_options(q: argparse.ArgumentParser) -> None:
    q.add_argument(
        "--ignore-image-checks", dest="ignore_image_checks", action="store_true",
        help="DANGEROUS: write even if the image looks wrong (a broken AWIH chain, an "
        "XR809 image); the unit may then stay in its boot ROM",
    )  # fmt: skip
    q.add_argument(
        "--include-bootloader", dest="include_bootloader", action="store_true",
        help="DANGEROUS: also rewrite the boot section (the sectors from 0x0 that hold the "
        "boot loader, by address) where the image's differs from this unit's; refused "
        "without it",
    )  # fmt: skip
    g = q.add_mutually_exclusive_group()
    g.add_argument("--backup", help="where to save the flash first (default: an automatic name)")
    g.add_argument("--no-backup", action="store_true", help="do not save the flash first")
    q.add_argument(
        "--no-reboot", dest="reboot", action="store_false", default=True,
        help="do not reboot after writing",
    )  # fmt: skip
    q.add_argument(
        "--i-know-the-backup-is-odd", dest="odd_ok", action="store_true",
        help="write a dump whose manifest (FILE.json) names another flash (JEDEC id, size) "
        "than this unit's; its size and sha256 are checked all the same",
    )  # fmt: skip
    q.add_argument(
        "--take-donor-data", action="store_true",
        help="also write the image's sysinfo (MAC, Wi-Fi settings) and other data outside "
        "its image, instead of keeping this unit's own",
    )  # fmt: skip


def _logger(a: argparse.Namespace) -> Callable[[str], None]:
    return lambda m: say(a, f"xr872: {m}")


def _boot_text(b: dict[str, Any] | None) -> str:
    if not b:
        return "left in the boot ROM (not rebooted)"
    if b["booted"]:
        return "rebooted: the firmware booted"
    return f"rebooted: the unit did NOT boot its firmware ({b['state']})"


# addresses and offsets as hex strings, as every address in the JSON (issue 20)
_ADDRESSES = frozenset({"offset", "load_addr", "entry", "next_addr", "boot_area", "kept_sectors"})


def _facts(result: Any, message: str) -> dict[str, Any]:
    return {**hex_fields(asdict(result), _ADDRESSES), "message": message}


def _check_boot(facts: dict[str, Any], boot: BootCheck | None) -> dict[str, Any]:
    if boot is not None and not boot.booted:
        raise BootError(
            f"the image is written and verified, but the unit did not boot ({boot.state})",
            flash_state="holds the new image, verified",
            hint="the image does not start on this board: write the backup back, or try "
            "another image (a dump of a working XF16)",
            facts=facts,
        )
    return facts


def _cli_info(a: argparse.Namespace) -> int:
    def run() -> dict[str, Any]:
        r = info(_options(a), reboot=a.reboot, log=_logger(a))
        return _facts(r, f"{r.chip.upper()} image, flash {r.link.jedec_id}")

    def render(f: dict[str, Any]) -> str:
        link = f["link"]
        lines = [
            f"port      {link['port']} (via {link['entered_via']}, {link['baud']} baud)",
            f"flash     JEDEC id {link['jedec_id']}, {link['flash_size'] // 1024} KiB",
            f"image     {f['chip'].upper()}",
        ]
        for sec in f["sections"]:
            lines.append(
                f"  0x{int(sec['offset'], 16):06x} {sec['name']:<9} {sec['data_size']:>7} bytes, "
                f"load 0x{int(sec['load_addr'], 16):08x}{'' if sec['header_ok'] else '  BAD HEADER'}"
            )
        lines += [f"  problem: {p}" for p in f["problems"]]
        si, ef = f["sysinfo"], link["efuse"]
        if ef:
            lines.append(f"eFuse     chip id {ef['chip_id']}")
            lines.append(f"          eFuse MAC {ef['efuse_mac'] or '(none)'}, "
                         f"chip-id MAC {ef['chipid_mac']} (the SDK default source)")  # fmt: skip
        lines.append(
            f"sysinfo   MAC {si['mac']} (record {si['slots_used']} of its FDCM area)"
            if si["valid"]
            else f"sysinfo   not valid: {si['reason']} (the firmware rebuilds it at boot)"
        )
        if f["boot"]:
            lines.append(_boot_text(f["boot"]))
        return "\n".join(x for x in lines if x)

    return run_operation(a, "xr872 info", run, render=render)


# issue 17: outputs checked before the port is opened (room for the largest flash)
FLASH_MAX = 16 << 20
_MAN = (".json",)


def _backup_outputs(a: argparse.Namespace) -> list[Output]:
    """--backup, or the directory the automatic backup name goes to (room for it)."""
    if a.no_backup:
        return []
    if a.backup:
        return [Output("--backup", a.backup, size=FLASH_MAX, sidecars=_MAN)]
    return [Output("the automatic backup's directory", ".", size=FLASH_MAX, kind="dir")]


def _cli_dump(a: argparse.Namespace) -> int:
    def run() -> dict[str, Any]:
        r = dump(_options(a), a.out, resume=not a.no_resume, reboot=a.reboot, log=_logger(a))
        msg = f"dumped {r.size} bytes to {r.path} (sha256 {r.sha256}); manifest {r.manifest}"
        if r.resumed_from:
            msg += f"; resumed at 0x{r.resumed_from:x}"
        if r.boot:
            msg += "\n" + _boot_text(asdict(r.boot))
        return _facts(r, msg)

    return run_operation(
        a, "xr872 dump", run, outputs=[Output("--out", a.out, size=FLASH_MAX, sidecars=_MAN)]
    )


def _write_message(r: WriteResult) -> str:
    return (
        f"wrote {r.image}: {r.sectors_changed} of {r.sectors_total} sectors changed "
        f"({r.sectors_erased} erased), all read back OK"
        + (
            f"; {r.boot_sectors_written} of them in the boot section (--include-bootloader)"
            if r.boot_sectors_written
            else ""
        )
        + (f"; backup in {r.backup}" if r.backup else "; no backup kept")
        + "".join(f"\nwarning: {w}" for w in r.warnings)
        + "\n"
        + _boot_text(asdict(r.boot) if r.boot else None)
    )


def _cli_write(a: argparse.Namespace) -> int:
    def run() -> dict[str, Any]:
        r = write(
            _options(a), a.image, ignore_image_checks=a.ignore_image_checks, backup=a.backup,
            no_backup=a.no_backup, take_donor_data=a.take_donor_data, reboot=a.reboot,
            log=_logger(a), odd_ok=a.odd_ok, include_bootloader=a.include_bootloader,
            overwrite_backup=a.force_overwrite,
        )  # fmt: skip
        return _check_boot(_facts(r, _write_message(r)), r.boot)

    return run_operation(
        a,
        "xr872 write",
        run,
        outputs=_backup_outputs(a),
        inputs=[Input("IMAGE", a.image)],
    )


def _cli_clone(a: argparse.Namespace) -> int:
    def run() -> dict[str, Any]:
        r = clone(
            _options(a), a.donor, ignore_image_checks=a.ignore_image_checks, backup=a.backup,
            no_backup=a.no_backup, take_donor_data=a.take_donor_data, reboot=a.reboot,
            log=_logger(a), odd_ok=a.odd_ok, include_bootloader=a.include_bootloader,
            overwrite_backup=a.force_overwrite,
        )  # fmt: skip
        kept = (
            "this unit's sysinfo " + r.write.sysinfo
            + (f", {len(r.kept_sectors)} more sector(s) of its own data kept" if r.kept_sectors
               else "")
        )  # fmt: skip
        msg = f"{kept}\n" + _write_message(r.write) + f"\nMAC: {r.mac.text}"
        return _check_boot(_facts(r, msg), r.write.boot)

    return run_operation(
        a,
        "xr872 clone",
        run,
        outputs=_backup_outputs(a),
        inputs=[Input("--from", a.donor)],
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m recovery.xr872 info --port ...``: the same as ``camrescue xr872 ...``
    (a leading ``xr872`` is accepted too)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "xr872":
        argv.insert(0, "xr872")
    parser = argparse.ArgumentParser(prog="camrescue")
    register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))
