"""Examples for every engine ``--help`` (issue 20: each help shows how it is used).

:func:`examples_epilog` gives the ``examples:`` section of ``camrescue BOARD
--help`` and ``camrescue BOARD COMMAND --help``; the CLI helpers put it before
the exit codes. Each example is a real command line (the real-camera form with
``/dev/ttyUSB0``; ``camrescue emulate BOARD`` prints the form for an emulator).
"""

from __future__ import annotations

EXAMPLES: dict[tuple[str, str], list[tuple[str, str]]] = {
    ("hi3511", ""): [
        ("camrescue hi3511 info --port /dev/ttyUSB0", "what is this camera? (then power it on)"),
        ("camrescue hi3511 backup --port /dev/ttyUSB0 --out cam-backup.bin", "back up first"),
        (
            "camrescue emulate hi3511",
            "rehearse on an emulated camera (prints the command to paste)",
        ),
    ],
    ("hi3511", "info"): [
        ("camrescue hi3511 info --port /dev/ttyUSB0", "start it, then power the camera on"),
        ("camrescue hi3511 info --port /dev/ttyUSB0 --json", "the same as one JSON object"),
    ],
    ("hi3511", "backup"): [
        (
            "camrescue hi3511 backup --port /dev/ttyUSB0 --out cam-backup.bin",
            "kernel, root and settings (15 MiB) + cam-backup.bin.json, checked by crc32",
        ),
        (
            "camrescue hi3511 backup --port /dev/ttyUSB0 --out all.bin --include-bootloader",
            "all 16 MiB",
        ),
    ],
    ("hi3511", "flash"): [
        (
            "camrescue hi3511 flash --port /dev/ttyUSB0 FIRMWARE.pkg --backup cam-backup.bin",
            "a new root file system (.pkg or bare JFFS2), the safe way",
        ),
        (
            "camrescue sample-image hi3511 --out sample-root.jffs2",
            "a practice image for the emulated camera",
        ),
    ],
    ("hi3511", "restore"): [
        ("camrescue hi3511 restore --port /dev/ttyUSB0 cam-backup.bin", "put a backup back"),
        (
            "camrescue hi3511 restore --port /dev/ttyUSB0 cam-backup.bin --partition rootfs",
            "only the root file system",
        ),
    ],
    ("hi3511", "boot"): [
        (
            "camrescue hi3511 boot --port /dev/ttyUSB0 --cat /etc/version",
            "boot, read the kernel log, show a file",
        ),
    ],
    ("w90p745", ""): [
        ("camrescue w90p745 info --port /dev/ttyUSB0", "loader, memory, flash, image table"),
        ("camrescue w90p745 dump --port /dev/ttyUSB0 --out cam-backup", "every image, checked"),
        ("camrescue emulate w90p745", "rehearse on an emulated camera"),
    ],
    ("w90p745", "info"): [
        ("camrescue w90p745 info --port /dev/ttyUSB0", "start it, then power the camera on"),
    ],
    ("w90p745", "dump"): [
        (
            "camrescue w90p745 dump --port /dev/ttyUSB0 --out cam-backup",
            "every image into cam-backup/ (+ manifest.json)",
        ),
        (
            "camrescue w90p745 dump --port /dev/ttyUSB0 --out cam-backup --baud 115200",
            "an adapter that cannot go faster",
        ),
    ],
    ("w90p745", "restore"): [
        ("camrescue w90p745 restore --port /dev/ttyUSB0 cam-backup", "write a dump back"),
        ("camrescue w90p745 restore --port /dev/ttyUSB0 cam-backup --images linux", "one image"),
    ],
    ("xr872", ""): [
        ("camrescue xr872 info --port /dev/ttyUSB0", "chip, flash, image, MACs"),
        ("camrescue xr872 dump --port /dev/ttyUSB0 --out donor.bin", "a donor's whole flash"),
        ("camrescue emulate xr872", "rehearse on an emulated camera"),
    ],
    ("xr872", "info"): [
        ("camrescue xr872 info --port /dev/ttyUSB0", "chip, flash, image sections, MACs"),
    ],
    ("xr872", "dump"): [
        (
            "camrescue xr872 dump --port /dev/ttyUSB0 --out donor.bin",
            "the whole 1 MiB + donor.bin.json; run again to resume",
        ),
        (
            "camrescue xr872 dump --port /dev/ttyUSB0 --out donor.bin --max-baud 115200",
            "an adapter that cannot do 921600",
        ),
    ],
    ("xr872", "write"): [
        (
            "camrescue xr872 write --port /dev/ttyUSB0 xr_system.img",
            "checked, backed up, only changed sectors, read back",
        ),
    ],
    ("xr872", "clone"): [
        (
            "camrescue xr872 clone --port /dev/ttyUSB0 --from donor.bin",
            "a donor's firmware, keeping this unit's sysinfo and data",
        ),
        (
            "camrescue xr872 clone --port /dev/ttyUSB0 --from donor.bin --include-bootloader",
            "the same onto a unit whose boot section differs (bricked by an XR809 image)",
        ),
    ],
}


def examples_epilog(board: str, command: str = "") -> str:
    """The ``examples:`` section (ending in a blank line), or "" when there is none."""
    items = EXAMPLES.get((board, command))
    if not items:
        return ""
    lines = ["examples:"]
    for cmd, what in items:
        lines += [f"  {cmd}", f"      {what}"]
    return "\n".join(lines) + "\n\n"
