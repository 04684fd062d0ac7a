"""Output files written safely, and checked before the device is touched.

* :func:`atomic_writer`: a temporary beside the target, fsync, rename; the result
  is private (mode 0600: backups and dumps hold Wi-Fi passwords and keys).
* :func:`preflight`: every output path of an operation checked before the port
  is opened: not empty, not under /dev, /proc or /sys, not a directory or a
  device, in an existing writable directory with room for the whole result, and
  not an existing file unless ``--force``; and no two of the outputs and inputs
  (backup, output, transcript, manifests beside them, input files) naming the
  same file, compared by resolved path and by inode (hard links, symlinks).
* :func:`private_tempdir`: the engine's temporary directories,
  ``camrescue-<pid>-<tag>-XXXX`` with an owner mark, removed on every exit path
  Python sees; :func:`remove_stale_tempdirs` removes those of a process that no
  longer runs (a killed run) at the next start.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from recovery.errors import ImageError, RefusedError, UsageError
from recovery.jsonout import to_jsonable

PRIVATE_MODE = 0o600

# -- atomic files ---------------------------------------------------------------


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike[str], mode: str = "wb", *, file_mode: int = PRIVATE_MODE
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    The result has ``file_mode`` (0600 by default: only the owner reads a backup).
    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename in ``directory`` durable (best effort: some filesystems refuse)."""
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, file_mode: int = PRIVATE_MODE
) -> Path:
    """``data`` to ``path`` atomically; 0600 unless ``file_mode`` says otherwise (a file
    a TFTP server must serve needs 0644: tftpd-hpa refuses others)."""
    with atomic_writer(path, "wb", file_mode=file_mode) as f:
        f.write(data)
    return Path(path)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    with atomic_writer(path, "w") as f:
        json.dump(to_jsonable(obj), f, indent=2)
        f.write("\n")
    return Path(path)


# -- preflight of output paths ----------------------------------------------------

SYSTEM_TREES = ("/dev", "/proc", "/sys")
SPACE_MARGIN = 1 << 20  # room for the manifest and the file system's own blocks


@dataclass
class Output:
    """One path an operation will write.

    ``option`` names it for the user (``--out``); ``size`` is what the whole
    result needs on disk; ``sidecars`` are suffixes of files written beside it
    (``.json`` for a manifest); ``kind`` is ``file`` or ``dir`` (a dump
    directory, created or resumed: an existing one is the operation's business);
    ``replaceable`` outputs (a transcript) are refused the same way.
    """

    option: str
    path: str | os.PathLike[str] | None
    size: int = 0
    sidecars: tuple[str, ...] = ()
    kind: str = "file"


@dataclass
class Input:
    option: str
    path: str | os.PathLike[str] | None
    sidecars: tuple[str, ...] = field(default_factory=tuple)


def _refuse_usage(message: str, hint: str | None = None) -> UsageError:
    return UsageError(message, flash_state="untouched", hint=hint)


def _in_system_tree(p: Path) -> str | None:
    text = str(p)
    for tree in SYSTEM_TREES:
        if text == tree or text.startswith(tree + "/"):
            return tree
    return None


def _identity(p: Path) -> tuple[str, Any]:
    """What names one file: (device, inode) when it exists, else the resolved path."""
    try:
        st = p.stat()
        return ("inode", (st.st_dev, st.st_ino))
    except OSError:
        return ("path", str(p.resolve()))


def check_output(out: Output, *, force: bool, force_flag: str | None = "--force") -> Path | None:
    """One output path: refused with a clear error, before the device is touched."""
    if out.path is None:
        return None
    text = os.fspath(out.path)
    if text.strip() == "":
        raise _refuse_usage(f"{out.option} is empty: give a file name")
    p = Path(text).expanduser()
    resolved = p.resolve()
    tree = _in_system_tree(resolved) or _in_system_tree(Path(os.path.abspath(p)))
    if tree is not None:
        raise _refuse_usage(
            f"{out.option} {text} is under {tree}, which holds devices and kernel files, "
            "not your data",
            hint=f"give a file in one of your directories for {out.option}",
        )
    try:
        st: os.stat_result | None = os.stat(resolved)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise _refuse_usage(f"{out.option} {text}: {e.strerror}") from None
    if out.kind == "dir":
        if st is not None and not stat.S_ISDIR(st.st_mode):
            raise _refuse_usage(f"{out.option} {text} exists and is not a directory")
        parent = resolved if st is not None else resolved.parent
    else:
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise _refuse_usage(
                f"{out.option} {text} is a directory; give a file name",
                hint=f"for example {out.option} {p / 'camera.bin'}",
            )
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise _refuse_usage(
                f"{out.option} {text} is not a regular file (a device, pipe or socket)"
            )
        if st is not None and not force:
            raise RefusedError(
                f"{out.option} {text} already exists: camrescue never overwrites a file "
                "silently (it may be an earlier backup)",
                flash_state="untouched",
                hint="choose another name or move the old file away"
                + (f", or add {force_flag} to replace it" if force_flag else ""),
            )
        for suffix in out.sidecars:
            side = Path(str(resolved) + suffix)
            if side.exists() and not force and st is None:
                raise RefusedError(
                    f"{side} already exists (it would be replaced by the manifest of "
                    f"{out.option} {text})",
                    flash_state="untouched",
                    hint="choose another name" + (f", or add {force_flag}" if force_flag else ""),
                )
        parent = resolved.parent
    if not parent.is_dir():
        raise _refuse_usage(
            f"cannot write {out.option} {text}: the directory {parent} does not exist"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise _refuse_usage(
            f"cannot write {out.option} {text}: {parent} is not a writable directory"
        )
    if out.size:
        free = shutil.disk_usage(parent).free
        if free < out.size + SPACE_MARGIN:
            raise RefusedError(
                f"not enough free space for {out.option} {text}: it needs "
                f"{(out.size + SPACE_MARGIN) >> 20} MiB, {parent} has {free >> 20} MiB free",
                flash_state="untouched",
                hint="free some space or choose a directory on another disk",
            )
    return resolved


def check_distinct(outputs: Iterable[Output], inputs: Iterable[Input] = ()) -> None:
    """Refuse two of the outputs and inputs (with their sidecars) naming one file."""
    seen: dict[tuple[str, Any], str] = {}

    def add(option: str, path: str | os.PathLike[str]) -> None:
        p = Path(os.fspath(path)).expanduser()
        keys = {_identity(p), ("path", str(p.resolve()))}
        for key in keys:
            other = seen.get(key)
            if other is not None and other != option:
                raise _refuse_usage(
                    f"{other} and {option} name the same file ({p}): one would destroy the other",
                    hint="give each its own file name",
                )
        for key in keys:
            seen[key] = option

    items: list[Output | Input] = [*outputs, *inputs]
    for item in items:
        if item.path is None or os.fspath(item.path).strip() == "":
            continue
        add(item.option, item.path)
        for suffix in item.sidecars:
            add(f"{item.option} (its {suffix} manifest)", os.fspath(item.path) + suffix)


def preflight(
    outputs: Iterable[Output],
    inputs: Iterable[Input] = (),
    *,
    force: bool,
    force_flag: str | None = "--force",
) -> None:
    """Every check of this module for one operation, before anything is opened."""
    outs = [o for o in outputs if o.path is not None]
    ins = [i for i in inputs if i.path is not None]
    check_distinct(outs, ins)
    for o in outs:
        check_output(o, force=force, force_flag=force_flag)


def unique_path(path: str | os.PathLike[str]) -> Path:
    """``path``, or ``NAME-2.EXT``, ``NAME-3.EXT`` ... if it exists (default names)."""
    p = Path(path)
    n = 2
    while p.exists() or Path(str(p) + ".json").exists():
        p = Path(path).with_name(f"{Path(path).stem}-{n}{Path(path).suffix}")
        n += 1
    return p


# -- backups checked before they are trusted ----------------------------------------


def check_manifest(
    path: str | os.PathLike[str],
    data: bytes,
    manifest: dict[str, Any],
    *,
    board: str,
    flash_size: int | None = None,
) -> None:
    """Refuse a backup whose manifest does not match it: the board, the size, the
    sha256 and (when both are known) the flash size must agree; a board's own check
    of what the bytes look like comes after this one."""
    problems = []
    if manifest.get("board", board) != board:
        problems.append(f"it is a backup of a {manifest.get('board')!r} board, not {board}")
    if manifest.get("size") not in (None, len(data)):
        problems.append(f"the manifest says {manifest.get('size')} bytes, the file has {len(data)}")
    if manifest.get("sha256") != hashlib.sha256(data).hexdigest():
        problems.append("its sha256 is not the manifest's (the file was changed or damaged)")
    if flash_size is not None and manifest.get("flash_size") not in (None, flash_size):
        problems.append(
            f"it was made from a {manifest.get('flash_size')}-byte flash, this one has {flash_size}"
        )
    if problems:
        raise ImageError(
            f"{path} does not match its manifest: " + "; ".join(problems),
            flash_state="untouched",
            hint="use an intact backup of this camera",
        )


# -- temporary directories ----------------------------------------------------------

_OWNER = ".camrescue-owner"
_TEMP_RE = re.compile(r"^camrescue-(\d+)-[A-Za-z0-9_]+-")


@contextlib.contextmanager
def private_tempdir(tag: str) -> Iterator[Path]:
    """A private temporary directory (0700), removed however the block ends."""
    path = make_tempdir(tag)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def make_tempdir(tag: str) -> Path:
    """``$TMPDIR/camrescue-<pid>-<tag>-XXXX``, marked with its owner's pid; the caller
    removes it (:func:`remove_stale_tempdirs` does when the process was killed)."""
    path = Path(tempfile.mkdtemp(prefix=f"camrescue-{os.getpid()}-{tag}-"))
    (path / _OWNER).write_text(f"{os.getpid()}\n")
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_unmarked(entry: Path) -> bool:
    """Remove a directory that holds nothing but (perhaps) an empty owner mark."""
    try:
        if set(os.listdir(entry)) - {_OWNER}:
            return False
        mark = entry / _OWNER
        if mark.exists():
            if mark.stat().st_size:
                return False
            mark.unlink()
        entry.rmdir()  # fails, and keeps it, if anything appeared meanwhile
    except OSError:
        return False
    return True


def remove_stale_tempdirs(tmp: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove the temporary directories of camrescue runs that no longer exist (killed
    with SIGKILL, or a power cut of the computer); return what was removed."""
    root = Path(tmp if tmp is not None else tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_RE.match(entry.name)
        if not m or int(m.group(1)) == os.getpid():
            continue
        try:
            if entry.is_symlink() or not entry.is_dir() or entry.stat().st_uid != os.getuid():
                continue
            owner = (entry / _OWNER).read_text().strip()
        except FileNotFoundError:
            owner = ""
        except OSError:
            continue
        if not owner:
            # killed between making the directory and marking it (seen under load): it
            # holds nothing, or only the empty mark; removed only while that stays true
            if not _alive(int(m.group(1))) and _remove_unmarked(entry):
                removed.append(entry)
            continue
        if owner != m.group(1) or _alive(int(owner)):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed
