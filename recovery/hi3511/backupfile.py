"""The Hi3511 backup file: a flash image plus its JSON manifest (``IMAGE.json``).

Format ``camrescue-backup/1`` (written by ``camrescue hi3511 backup``): the
image is the ranges read from the flash, back to back from ``base``; the
manifest records the board, the image's size, crc32 and sha256, and each
range's name, address, offset, length, crc32 and sha256, with the camera's
U-Boot version, ``ethaddr``, the date and the environment. Addresses and offsets
are hex strings (``"0x34100000"``), sizes integers; manifests of earlier versions
(int addresses, ranges named ``bootloader``/``settings``) are still read. A dump without a
manifest is accepted when its size says where it starts: 0xf00000 bytes from
0x34100000 as in the seed (000), or the whole 16 MiB flash; or ``--address``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recovery.errors import ImageError
from recovery.files import atomic_write_bytes, atomic_write_json
from recovery.hi3511.flashmap import BOARD, FLASH_BASE, FLASH_SIZE, OLD_NAMES, REGIONS, in_flash
from recovery.jsonout import hex_address, parse_address


@dataclass
class BackupImage:
    path: Path
    base: int
    data: bytes
    ranges: list[dict[str, Any]]
    manifest: dict[str, Any] | None

    def range_data(self, r: dict[str, Any]) -> bytes:
        off = r["address"] - self.base
        return self.data[off : off + r["length"]]


def manifest_path(image: Path) -> Path:
    return image.with_name(image.name + ".json")


def load_backup(path: str | os.PathLike[str], address: int | None = None) -> BackupImage:
    """A backup image with its manifest (or a seed-style dump located by size/--address)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ImageError(
            f"cannot read the backup {p}: {e.strerror}", flash_state="untouched"
        ) from e
    mpath = manifest_path(p)
    manifest = None
    if mpath.is_file():
        try:
            manifest = json.loads(mpath.read_text())
        except (OSError, ValueError) as e:
            raise ImageError(
                f"the manifest {mpath} is unreadable: {e}", flash_state="untouched"
            ) from e
        if manifest.get("board") != BOARD:
            raise ImageError(f"{mpath} is not a Hi3511 backup manifest", flash_state="untouched")
        if hashlib.sha256(data).hexdigest() != manifest.get("sha256") or len(data) != manifest.get(
            "size"
        ):
            raise ImageError(
                f"{p} does not match its manifest (size or sha256): the backup is damaged",
                flash_state="untouched",
            )
        try:
            base = parse_address(manifest["base"])
            ranges = [_read_range(r) for r in manifest["ranges"]]
        except (KeyError, TypeError, ValueError) as e:
            raise ImageError(
                f"the manifest {mpath} is unreadable: {e!r}", flash_state="untouched"
            ) from e
        for rng in ranges:
            piece = data[rng["address"] - base : rng["address"] - base + rng["length"]]
            if f"{zlib.crc32(piece):08x}" != rng["crc32"]:
                raise ImageError(
                    f"range {rng['name']} of {p} fails its crc32", flash_state="untouched"
                )
    else:
        base = (
            address
            if address is not None
            else {0xF00000: 0x34100000, FLASH_SIZE: FLASH_BASE}.get(len(data), -1)
        )
        if base < 0:
            raise ImageError(
                f"{p} has no manifest ({mpath.name}) and its size {len(data):#x} is not a "
                "known dump (0xf00000 from 0x34100000: kernel, root and settings; or 0x1000000: all)",
                flash_state="untouched",
                hint="give --address with the flash address the dump starts at",
            )
        if not in_flash(base, len(data)):
            raise ImageError(f"{p} does not fit the flash at {base:#x}", flash_state="untouched")
        ranges = []
        for r in REGIONS.values():
            lo, hi = max(r.start, base), min(r.end, base + len(data))
            if lo < hi:
                if (lo, hi) != (r.start, r.end):
                    raise ImageError(
                        f"{p} at {base:#x} covers only part of the {r.name} region",
                        flash_state="untouched",
                    )
                piece = data[lo - base : hi - base]
                ranges.append(
                    {
                        "name": r.name,
                        "address": lo,
                        "length": hi - lo,
                        "crc32": f"{zlib.crc32(piece):08x}",
                    }
                )
    return BackupImage(p, base, data, ranges, manifest)


def _read_range(r: dict[str, Any]) -> dict[str, Any]:
    """A manifest's range with int addresses and today's name: manifests written before
    issue 20 have int addresses and the names ``bootloader``/``settings``."""
    out = dict(r)
    out["name"] = OLD_NAMES.get(str(r["name"]), str(r["name"]))
    for key in ("address", "offset"):
        if key in out:
            out[key] = parse_address(out[key])
    out["length"] = int(out["length"])
    return out


def make_manifest(
    image_name: str,
    base: int,
    image: bytes,
    ranges: list[dict[str, Any]],
    uboot_version: str,
    env: dict[str, str],
) -> dict[str, Any]:
    """The manifest of a backup ``image`` (the ``ranges`` back to back from ``base``)."""
    return {
        "format": "camrescue-backup/1",
        "board": BOARD,
        "image": image_name,
        "base": hex_address(base),
        "size": len(image),
        "crc32": f"{zlib.crc32(image):08x}",
        "sha256": hashlib.sha256(image).hexdigest(),
        "ranges": ranges,
        "uboot_version": uboot_version,
        "ethaddr": env.get("ethaddr"),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "env": env,
    }


def save_backup(out: Path, image: bytes, manifest: dict[str, Any]) -> None:
    """Write the image and its manifest beside it, each atomically."""
    atomic_write_bytes(out, image)
    atomic_write_json(manifest_path(out), manifest)
