"""A W90P745 dump directory on disk: file names, ``manifest.json`` and the resume state.

A dump directory holds one ``image<N>_<name>.bin`` per image and
``manifest.json`` (format ``camrescue-w90p745-dump/1``: the loader's version
and sizes, the whole image table, and per image its table entry, file,
sha256 and date; ``complete`` once every chosen image is there). While an
image is being read it is ``<file>.part`` and ``.w90-dump-state.json`` names
its table entry, so an interrupted dump resumes at the last whole page. The
manifest is written atomically (:func:`recovery.files.atomic_write_json`).
:func:`load_dump` is the check a restore makes before it touches the camera.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recovery.errors import ImageError
from recovery.files import atomic_write_json, check_manifest
from recovery.w90p745.parsers import ImageEntry, LoaderInfo, loader_checksum, parse_footer

MANIFEST = "manifest.json"
STATE = ".w90-dump-state.json"
FORMAT = "camrescue-w90p745-dump/1"


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_name(entry: ImageEntry) -> str:
    """Where image ``entry`` goes in a dump directory: ``image7_linux.bin``."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", entry.name) or "unnamed"
    return f"image{entry.number}_{safe}.bin"


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ImageError(
            f"{path} is unreadable: {e}",
            flash_state="untouched",
            hint=f"use an intact copy, or move it away / choose another directory than {path.parent}",
        ) from e
    if not isinstance(obj, dict):
        raise ImageError(f"{path} is not a camrescue manifest", flash_state="untouched")
    return obj


def write_manifest(
    out: Path,
    table: list[ImageEntry],
    done: dict[int, dict[str, Any]],
    loader: LoaderInfo,
    complete: bool,
) -> Path:
    manifest = {
        "format": FORMAT,
        "board": "w90p745",
        "complete": complete,
        "written": utc_now(),
        "loader": {
            "version": loader.version,
            "built": loader.built,
            "memory_size": loader.memory_size,
            "flash_size": loader.flash_size,
        },
        "table": [e.to_json() for e in table],
        "images": [done[k] for k in sorted(done, key=lambda n: [e.number for e in table].index(n))],
    }
    return atomic_write_json(out / MANIFEST, manifest)


@dataclass
class DumpImage:
    entry: ImageEntry
    path: Path
    data: bytes


def load_dump(
    dump_dir: str | os.PathLike[str], *, odd_ok: bool = False
) -> tuple[list[ImageEntry], list[DumpImage]]:
    """A dump directory's table and images, checked against its manifest.

    Raises ImageError when the manifest is missing or damaged, the dump was not
    finished, or a file is missing or does not match its manifest
    (:func:`recovery.files.check_manifest`: board, size, sha256), and, unless
    ``odd_ok`` (``--i-know-the-dump-is-odd``), when an image does not look like what
    the manifest claims (:func:`image_problem`: the loader's footer of it).
    """
    d = Path(dump_dir)
    what_to_do = "use a complete dump made by 'camrescue w90p745 dump' (or finish it by running the dump again)"
    manifest = read_json(d / MANIFEST)
    if manifest is None:
        raise ImageError(f"{d} has no {MANIFEST}", flash_state="untouched", hint=what_to_do)
    if manifest.get("format") != FORMAT:
        raise ImageError(
            f"{d / MANIFEST} is not a W90P745 dump manifest",
            flash_state="untouched",
            hint=what_to_do,
        )
    if manifest.get("complete") is not True:
        raise ImageError(
            f"the dump in {d} was interrupted", flash_state="untouched", hint=what_to_do
        )
    try:
        table = [ImageEntry.from_json(e) for e in manifest["table"]]
        records = list(manifest["images"])
    except (KeyError, TypeError, ValueError) as e:
        raise ImageError(
            f"{d / MANIFEST} is damaged: {e}", flash_state="untouched", hint=what_to_do
        ) from e
    out = []
    for rec in records:
        try:
            entry = ImageEntry.from_json(rec)
            name = str(rec["file"])
            digest = str(rec["sha256"])
        except (KeyError, TypeError, ValueError) as e:
            raise ImageError(
                f"{d / MANIFEST} is damaged: {e}", flash_state="untouched", hint=what_to_do
            ) from e
        path = d / name
        if Path(name).name != name or not path.is_file():
            raise ImageError(f"{path} is missing", flash_state="untouched", hint=what_to_do)
        data = path.read_bytes()
        check_manifest(
            path,
            data,
            {"board": manifest.get("board", "w90p745"), "size": entry.size, "sha256": digest},
            board="w90p745",
        )
        if not odd_ok:
            problem = image_problem(entry, data, rec.get("footer"), table)
            if problem:
                raise ImageError(
                    f"{path} does not look like image {entry.number} ({entry.name}) of this "
                    f"dump: {problem}",
                    flash_state="untouched",
                    hint="use a dump made by 'camrescue w90p745 dump' of a healthy camera; "
                    f"if you are sure of this one, add {ODD_OPTION}",
                )
        out.append(DumpImage(entry, path, data))
    return table, out


ODD_OPTION = "--i-know-the-dump-is-odd"


def image_problem(
    entry: ImageEntry, data: bytes, footer_hex: object, table: list[ImageEntry]
) -> str | None:
    """What is wrong with a dumped image, judged by the loader's own record of it:
    the footer (``tfooter``, REFERENCE.md's W90P745 section) the dump read from the
    flash must carry the signature 0xA0FFFF9F and its checksum, name this image's
    number, base, length and name, and its image_checksum must be the file's; the
    image must be in the dump's table as it is. None when it all agrees."""
    if entry not in table:
        return "its manifest record is not an entry of the dump's image table"
    if not isinstance(footer_hex, str):
        return "the dump recorded no footer for it (no image record to check the file against)"
    try:
        raw = bytes.fromhex(footer_hex)
    except ValueError:
        return "its recorded footer is not hex"
    footer = parse_footer(raw)
    if footer is None:
        return "its recorded footer has no 0xA0FFFF9F signature or a wrong footer checksum"
    said = (footer.number, footer.base, footer.length, footer.name)
    if said != (entry.number, entry.base, entry.size, entry.name):
        return (
            f"its footer describes image {footer.number} ({footer.name}) at "
            f"0x{footer.base:08X}, 0x{footer.length:X} bytes"
        )
    if loader_checksum(data) != footer.image_checksum:
        return "the file's checksum is not the footer's image_checksum (not what the loader wrote)"
    return None
