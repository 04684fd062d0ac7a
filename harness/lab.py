"""The lab: emulated devices of every board, each in its own directory, on its own
pty, with its own flash file and TFTP port, ready for the engine or a person.

What a lab gives each device (so that scenarios can run side by side, under
pytest-xdist or on several machines, without touching each other):

* a directory ``<lab>/<name>/`` holding ``flash.bin`` (the device's persistent
  flash, a memory-mapped file) and ``tty`` (a symlink to its ``/dev/pts/N``);
* a free UDP port on 127.0.0.1 where *all* the device's TFTP traffic goes,
  whatever ``serverip`` says (boards with a network only). The engine binds its
  embedded server there with ``--tftp-bind 127.0.0.1:PORT``; between engine
  steps the lab serves the lab's shared work directory there with tftpy, so a
  person (or a console step) can type the seed's ``tftp`` commands by hand;
* optionally a UDP proxy in front of that port that drops, delays or cuts the
  TFTP datagrams (seeded), for network faults;
* a :class:`ConsoleClient`: a host-side terminal on the pty that records what
  it reads and can wait for text, like picocom with an expect script.

Boards are described by :class:`BoardSpec` entries in :data:`BOARDS`. Emulators,
engines and firmware builders are imported lazily: a board whose pieces are not
written yet is reported as *unavailable* with the reason, never as an error.

Flash contents come from the firmware builders (``harness.firmware.<board>``),
from a file, or are left erased; see :func:`build_image`. Built images are
cached in memory and, keyed by the builders' source code, on disk (set
``CAMRESCUE_IMAGE_CACHE=0`` to switch the disk cache off, or to a directory to
move it).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import io
import json
import logging
import os
import random
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulators.serial import LinkFaults
from emulators.transcript import Transcript

MiB = 1 << 20


# --------------------------------------------------------------------------- boards
@dataclass(frozen=True)
class BoardSpec:
    """The facts the harness needs about a board (the emulator owns the rest).

    ``device`` is ``"module:Class"`` or the class itself. ``autoboot`` is the text
    the board prints while it waits for a key at power-on and the key that stops
    it; ``prompt`` is the console prompt that follows. ``partitions`` are named
    chip-relative byte ranges ``(start, end)`` that scenarios may use. Engine
    operations named in ``no_tftp_ops`` get no ``--tftp-bind``.
    """

    name: str
    device: str | type
    flash_size: int
    engine: str | None = None
    firmware: str | None = None
    prompt: str | None = None
    autoboot: tuple[str, bytes] | None = None
    tftp: bool = False
    partitions: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    builder_aliases: Mapping[str, str] = field(default_factory=dict)
    no_tftp_ops: frozenset[str] = frozenset()
    baud: int = 115200
    engine_cli: str | Callable[[list[str]], int] = "recovery.cli:main"

    def all_partitions(self) -> dict[str, tuple[int, int]]:
        return {"all": (0, self.flash_size), **self.partitions}


BOARDS: dict[str, BoardSpec] = {}


def register_board(spec: BoardSpec) -> BoardSpec:
    """Add or replace a board (tests register small boards of their own)."""
    BOARDS[spec.name] = spec
    return spec


def unregister_board(name: str) -> None:
    BOARDS.pop(name, None)


register_board(
    BoardSpec(
        name="hi3511",
        device="emulators.hi3511:Hi3511Device",
        flash_size=16 * MiB,
        engine="recovery.hi3511",
        firmware="harness.firmware.hi3511",
        prompt="hilinux # ",
        autoboot=("Hit any key to stop autoboot", b" "),
        tftp=True,
        # seed 000: boot 2M (U-Boot 1M + kernel 1M) / rootfs 13M / settings 1M
        partitions={
            "boot": (0, 0x200000),
            "uboot": (0, 0x100000),
            "kernel": (0x100000, 0x200000),
            "rootfs": (0x200000, 0xF00000),
            "settings": (0xF00000, 0x1000000),
            "backup": (0x100000, 0x1000000),
        },
        builder_aliases={"vendor": "vendor_flash"},
        no_tftp_ops=frozenset({"info", "boot"}),
    )
)
register_board(
    BoardSpec(
        name="w90p745",
        device="emulators.w90p745:W90P745Device",
        flash_size=2 * MiB,
        engine="recovery.w90p745",
        firmware="harness.firmware.w90p745",
        prompt="bootloader > ",
        autoboot=("Press ESC to enter debug mode", b"\x1b"),
        # seed 001: loader in the first block, BOOT INFO at +0x10000, the image table
        partitions={
            "bootloader": (0, 0x10000),
            "bootinfo": (0x10000, 0x20000),
            "linux": (0x20000, 0x20000 + 0xBF700),
            "romfs": (0xE0000, 0xE0000 + 0x8FF80),
            "webui": (0x180000, 0x180000 + 0x6F700),
            "images": (0x20000, 0x200000),
        },
        builder_aliases={"vendor": "vendor_flash"},
    )
)
register_board(
    BoardSpec(
        name="xr872",
        device="emulators.xr872:XR872Device",
        flash_size=1 * MiB,
        engine="recovery.xr872",
        firmware="harness.firmware.xr872",
        builder_aliases={"vendor": "vendor_flash"},
    )
)


class Unavailable(Exception):
    """A board, engine, builder or tool this run needs is not there (yet)."""


def _import_attr(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise Unavailable(f"cannot import {module}: {e}") from e
    if not attr:
        return mod
    try:
        return getattr(mod, attr)
    except AttributeError:
        raise Unavailable(f"{module} has no {attr} yet") from None


def board_spec(board: str) -> BoardSpec:
    try:
        return BOARDS[board]
    except KeyError:
        raise Unavailable(f"unknown board {board!r} (known: {', '.join(sorted(BOARDS))})") from None


def device_class(board: str) -> type:
    spec = board_spec(board)
    return spec.device if isinstance(spec.device, type) else _import_attr(spec.device)


def engine_main(board: str) -> Callable[[list[str]], int]:
    cli = board_spec(board).engine_cli
    return cli if callable(cli) else _import_attr(cli)


def check_capability(name: str) -> str | None:
    """None when ``name`` is available, else why not.

    Names: ``<board>`` (its emulator), ``<board>_engine`` (``recovery.<board>``
    and ``recovery.cli``), ``<board>_firmware`` (``harness.firmware.<board>``),
    ``tool:NAME`` (an executable on PATH), ``module:NAME`` (an importable module).
    """
    try:
        if name.startswith("tool:"):
            tool = name[5:]
            return None if shutil.which(tool) else f"{tool} is not installed"
        if name.startswith("module:"):
            _import_attr(name[7:])
            return None
        board, _, part = name.partition("_")
        spec = board_spec(board)
        if part == "":
            device_class(board)
        elif part == "engine":
            if spec.engine is not None:
                _import_attr(spec.engine + ":register_cli")
            engine_main(board)
        elif part == "firmware":
            if spec.firmware is None:
                return f"board {board} has no firmware builders"
            _import_attr(spec.firmware)
        else:
            return f"unknown capability {name!r}"
    except Unavailable as e:
        return str(e)
    return None


def known_capability(name: str) -> bool:
    if name.startswith(("tool:", "module:")):
        return len(name.split(":", 1)[1]) > 0
    board, _, part = name.partition("_")
    return board in BOARDS and part in ("", "engine", "firmware")


# --------------------------------------------------------------------------- images
_MEMO: dict[str, bytes] = {}
_MEMO_LOCK = threading.Lock()


def _cache_dir() -> Path | None:
    env = os.environ.get("CAMRESCUE_IMAGE_CACHE")
    if env == "0":
        return None
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / f"camrescue-image-cache-{os.getuid()}"


def _builders_fingerprint(module: Any) -> str:
    """A hash of the firmware builders' source, so a changed builder misses the cache."""
    h = hashlib.sha256()
    pkg_dir = Path(module.__file__).resolve().parent
    for p in sorted(pkg_dir.glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def builder_function(board: str, name: str) -> Callable[..., Any]:
    spec = board_spec(board)
    if spec.firmware is None:
        raise Unavailable(f"board {board} has no firmware builders")
    module = _import_attr(spec.firmware)
    fname = spec.builder_aliases.get(name, name)
    fn = getattr(module, fname, None)
    if not callable(fn):
        have = sorted(
            n
            for n, v in vars(module).items()
            if callable(v)
            and not n.startswith("_")
            and getattr(v, "__module__", "") == module.__name__
        )
        raise ValueError(
            f"{spec.firmware} has no builder {fname!r} (it has: {', '.join(have) or 'none'})"
        )
    return fn


def _call_builder(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    try:
        sig = inspect.signature(fn)
        sig.bind(**kwargs)
    except TypeError:
        # ``root_image("B")``-style builders whose one parameter has another name
        if len(kwargs) == 1:
            return fn(next(iter(kwargs.values())))
        raise
    except ValueError:  # no signature (a builtin)
        pass
    return fn(**kwargs)


def _as_bytes(value: Any, what: str) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str | os.PathLike):
        return Path(value).read_bytes()
    for attr in ("data", "image", "blob"):
        inner = getattr(value, attr, None)
        if isinstance(inner, bytes | bytearray):
            return bytes(inner)
    if hasattr(value, "to_bytes") and callable(value.to_bytes):
        return bytes(value.to_bytes())
    raise TypeError(f"{what} returned {type(value).__name__}, not bytes")


def build_image(board: str, name: str, **kwargs: Any) -> bytes:
    """Bytes from ``harness.firmware.<board>.<name>(**kwargs)`` (``vendor`` is
    ``vendor_flash``). Arguments that are themselves ``{"builder": ...}`` dicts are
    built first, so ``vendor_pkg(root={"builder": "root_image", "firmware": "B"})``
    works. Results are cached."""
    resolved = {k: _resolve_arg(board, v) for k, v in kwargs.items()}
    fn = builder_function(board, name)
    module = sys.modules[fn.__module__]
    key_src = json.dumps(
        [board, name, {k: _key_of(v) for k, v in sorted(kwargs.items())}], sort_keys=True
    )
    with _MEMO_LOCK:
        fp = _builders_fingerprint(module)
        key = hashlib.sha256((fp + key_src).encode()).hexdigest()
        if key in _MEMO:
            return _MEMO[key]
    cache = _cache_dir()
    cached = cache / f"{key}.bin" if cache else None
    if cached is not None and cached.is_file():
        data = cached.read_bytes()
    else:
        data = _as_bytes(_call_builder(fn, resolved), f"{board} builder {name}")
        if cached is not None:
            with contextlib.suppress(OSError):
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
                tmp.write_bytes(data)
                tmp.replace(cached)
    with _MEMO_LOCK:
        _MEMO[key] = data
    return data


def _key_of(v: Any) -> Any:
    if isinstance(v, bytes | bytearray):
        return {"sha256": hashlib.sha256(v).hexdigest()}
    if isinstance(v, dict):
        return {k: _key_of(x) for k, x in sorted(v.items())}
    if isinstance(v, list | tuple):
        return [_key_of(x) for x in v]
    return v


def _resolve_arg(board: str, v: Any) -> Any:
    if isinstance(v, dict) and "builder" in v:
        args = {k: x for k, x in v.items() if k != "builder"}
        return build_image(board, v["builder"], **args)
    return v


def parse_flash_source(board: str, source: Any, flash_size: int) -> bytes | None:
    """A device's starting flash from a short description.

    ``None`` (the board's factory firmware), ``"erased"``, ``"vendor:A"`` (the
    ``vendor`` builder with ``firmware="A"``), ``"builder:NAME"``, a path, bytes,
    or a ``{"builder": NAME, ...}`` dict.
    """
    if source is None:
        return None
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
    elif isinstance(source, dict):
        data = _resolve_arg(board, source)
    elif isinstance(source, Path):
        data = source.read_bytes()
    elif source == "erased":
        data = b"\xff" * flash_size
    elif isinstance(source, str) and ":" in source and not os.path.exists(source):
        name, _, firmware = source.partition(":")
        data = build_image(board, name, **({"firmware": firmware} if firmware else {}))
    else:
        data = Path(source).read_bytes()
    if len(data) > flash_size:
        raise ValueError(f"{board}: flash image is {len(data)} bytes, the chip holds {flash_size}")
    return data + b"\xff" * (flash_size - len(data))


# --------------------------------------------------------------------------- ports
def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port on ``host`` that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- tftp
class LabTftpServer:
    """tftpy serving ``root`` on ``host:port`` in a thread (downloads and uploads).

    tftpy's logger is set to WARNING (DEBUG costs 4.5x the time) and its select
    timeout to 0.2 s so :meth:`stop` returns quickly (REFERENCE.md).
    """

    def __init__(self, root: str | os.PathLike[str], port: int = 0, host: str = "127.0.0.1"):
        import tftpy

        logging.getLogger("tftpy").setLevel(logging.WARNING)
        self.root = Path(root)
        self.host = host
        self.port = port
        self._server = tftpy.TftpServer(str(self.root))
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> LabTftpServer:
        def serve() -> None:
            try:
                self._server.listen(self.host, self.port, timeout=0.2)
            except BaseException as e:  # reported by start()
                self._error = e
                self._server.is_running.set()

        self._thread = threading.Thread(target=serve, name="lab-tftp", daemon=True)
        self._thread.start()
        self._server.is_running.wait(5)
        if self._error is not None:
            self._thread.join(1)
            raise OSError(f"lab TFTP server cannot bind {self.host}:{self.port}: {self._error}")
        self.port = self._server.listenport
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._server.stop(now=False)
        self._thread.join(2)
        if self._thread.is_alive():
            self._server.stop(now=True)
            self._thread.join(5)
        self._thread = None
        # tftpy leaves its listening socket closed but sessions' sockets to the GC
        for sess in list(getattr(self._server, "sessions", {}).values()):
            with contextlib.suppress(Exception):
                sess.end()

    def __enter__(self) -> LabTftpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class NetworkFaults:
    """TFTP datagram faults between a device and its server (seeded).

    ``loss``: chance that a datagram is dropped; ``delay``: seconds added to each;
    ``cut_after``: after that many datagrams nothing passes any more (the
    server is gone mid-transfer)."""

    loss: float = 0.0
    delay: float = 0.0
    cut_after: int | None = None


class UdpFaultProxy:
    """A TFTP-aware UDP relay on 127.0.0.1 that injects :class:`NetworkFaults`.

    The device sends its request to :attr:`port`; the relay forwards it to the
    server from a socket of its own, and mirrors the server's transfer port
    (TFTP's TID) with a second socket, so the device talks to the relay for the
    whole transfer as it would to the server.
    """

    def __init__(self, upstream_port: int, faults: NetworkFaults | None = None, seed: int = 0):
        self.upstream = ("127.0.0.1", upstream_port)
        self.faults = faults or NetworkFaults()
        self._rng = random.Random(seed)
        self._listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._listen.bind(("127.0.0.1", 0))
        self.port = self._listen.getsockname()[1]
        self._wake_r, self._wake_w = os.pipe()
        # each session: (device addr, up socket, down socket, server tid or None)
        self._sessions: list[dict[str, Any]] = []
        self.forwarded = 0
        self.dropped = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="lab-udp-proxy", daemon=True)
        self._thread.start()

    def _pass(self) -> bool:
        f = self.faults
        if f.cut_after is not None and self.forwarded >= f.cut_after:
            self.dropped += 1
            return False
        if f.loss and self._rng.random() < f.loss:
            self.dropped += 1
            return False
        if f.delay:
            time.sleep(f.delay)
        self.forwarded += 1
        return True

    def _run(self) -> None:
        while not self._stop:
            socks = [self._listen, self._wake_r]
            for s in self._sessions:
                socks += [s["up"], s["down"]]
            try:
                ready, _, _ = select.select(socks, [], [], 0.5)
            except (OSError, ValueError):
                return
            for r in ready:
                if r is self._wake_r:
                    return
                if r is self._listen:
                    data, addr = self._listen.recvfrom(65536)
                    sess = next(
                        (s for s in self._sessions if s["dev"] == addr and s["tid"] is None), None
                    )
                    if sess is None:
                        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        up.bind(("127.0.0.1", 0))
                        down = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        down.bind(("127.0.0.1", 0))
                        sess = {"dev": addr, "up": up, "down": down, "tid": None}
                        self._sessions.append(sess)
                        self._reap()
                    if self._pass():
                        sess["up"].sendto(data, self.upstream)
                    continue
                for s in self._sessions:
                    if r is s["up"]:
                        data, addr = r.recvfrom(65536)
                        s["tid"] = addr
                        if self._pass():
                            # the first answer comes from the listen port's mirror
                            s["down"].sendto(data, s["dev"])
                    elif r is s["down"]:
                        data, addr = r.recvfrom(65536)
                        s["dev"] = addr
                        if s["tid"] is not None and self._pass():
                            s["up"].sendto(data, s["tid"])

    def _reap(self) -> None:
        while len(self._sessions) > 16:
            old = self._sessions.pop(0)
            old["up"].close()
            old["down"].close()

    def close(self) -> None:
        self._stop = True
        os.write(self._wake_w, b"x")
        self._thread.join(2)
        for s in self._sessions:
            s["up"].close()
            s["down"].close()
        self._sessions.clear()
        self._listen.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


# --------------------------------------------------------------------------- console
_BAUDS = {
    int(n[1:]): getattr(termios, n) for n in dir(termios) if n.startswith("B") and n[1:].isdigit()
}


@dataclass
class ExpectResult:
    index: int
    before: str
    match: str


class ConsoleTimeout(Exception):
    def __init__(self, message: str, seen: str) -> None:
        super().__init__(message)
        self.seen = seen


class ConsoleClient:
    """A terminal on a device's pty, as picocom would be: raw mode at the given
    baud, a reader thread that never lets the device block, and expect.

    Opening does not flush: output the device printed while nobody had the port
    open is read too. :meth:`expect` searches what arrived since the last match
    (or the last :meth:`mark`); everything read is kept in :attr:`received`.
    """

    def __init__(self, path: str, baud: int = 115200) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            tty.setraw(self.fd)
            attrs = termios.tcgetattr(self.fd)
            speed = _BAUDS[baud]
            attrs[4] = attrs[5] = speed
            termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        except BaseException:
            os.close(self.fd)
            raise
        self.baud = baud
        self.received = bytearray()
        self._pos = 0
        self._cond = threading.Condition()
        self._eof = False
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._reader, name="lab-console", daemon=True)
        self._thread.start()

    def _reader(self) -> None:
        while True:
            try:
                r, _, _ = select.select([self.fd, self._wake_r], [], [], 1.0)
            except (OSError, ValueError):
                break
            if self._wake_r in r:
                break
            if self.fd in r:
                try:
                    data = os.read(self.fd, 65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:  # the device closed the link
                    break
                with self._cond:
                    self.received += data
                    self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("latin-1")
        view = memoryview(data)
        deadline = time.monotonic() + 10
        while view:
            try:
                n = os.write(self.fd, view)
                view = view[n:]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.path}: the device does not read its input") from None
                select.select([], [self.fd], [], 0.05)

    def mark(self) -> None:
        """Forget unread output for matching (it stays in :attr:`received`)."""
        with self._cond:
            self._pos = len(self.received)

    def pending_text(self) -> str:
        with self._cond:
            return self.received[self._pos :].decode("latin-1")

    def expect(
        self, patterns: list[str] | str, timeout: float = 10.0, *, regex: bool = False
    ) -> ExpectResult:
        """Wait until one of ``patterns`` appears; the earliest match wins."""
        if isinstance(patterns, str):
            patterns = [patterns]
        compiled = [re.compile(p if regex else re.escape(p)) for p in patterns]
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                text = self.received[self._pos :].decode("latin-1")
                best: tuple[int, int, re.Match[str]] | None = None
                for i, c in enumerate(compiled):
                    m = c.search(text)
                    if m and (best is None or m.start() < best[2].start()):
                        best = (i, m.start(), m)
                if best is not None:
                    i, _, m = best
                    self._pos += len(text[: m.end()].encode("latin-1"))
                    return ExpectResult(i, text[: m.start()], m.group(0))
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    why = "the link closed" if self._eof else f"{timeout:g} s passed"
                    raise ConsoleTimeout(
                        f"waited for {' or '.join(repr(p) for p in patterns)}; {why}", text
                    )
                self._cond.wait(min(left, 0.2))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self._thread.join(2)
        for fd in (self.fd, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> ConsoleClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- engine
@dataclass
class EngineResult:
    argv: list[str]
    exit: int
    stdout: str
    stderr: str
    json: dict[str, Any] | None
    duration: float
    timed_out: bool = False
    crashed: str = ""


def parse_json_output(stdout: str) -> dict[str, Any] | None:
    """The JSON object the engine printed with ``--json`` (the last one on stdout)."""
    text = stdout.strip()
    if not text:
        return None
    with contextlib.suppress(ValueError):
        obj = json.loads(text)
        return obj if isinstance(obj, dict) else None
    dec = json.JSONDecoder()
    found = None
    for m in re.finditer(r"(?m)^\s*\{", text):
        with contextlib.suppress(ValueError):
            obj, _ = dec.raw_decode(text, m.end() - 1)
            if isinstance(obj, dict):
                found = obj
    return found


_ENGINE_LOCK = threading.Lock()


def run_engine_inprocess(
    main: Callable[[list[str]], int],
    argv: list[str],
    timeout: float,
    on_timeout: Callable[[], None] | None = None,
) -> tuple[int, str, str, bool, str]:
    """``recovery.cli.main(argv)`` in a thread with its stdout/stderr captured.

    After ``timeout`` seconds ``on_timeout`` runs (the lab powers the device off
    and, if the engine still waits, closes the line under it, as pulling the USB
    adapter would) and the engine gets a few seconds more to return."""
    out, err = io.StringIO(), io.StringIO()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["rc"] = main(list(argv))
        except SystemExit as e:  # argparse errors
            code = e.code
            box["rc"] = code if isinstance(code, int) else (0 if code is None else 2)
            if isinstance(code, str):
                err.write(code + "\n")
        except BaseException:
            import traceback

            box["rc"] = 99
            box["crash"] = traceback.format_exc()
            err.write(box["crash"])

    with _ENGINE_LOCK, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        old_stdin = sys.stdin
        sys.stdin = io.StringIO("")
        try:
            t = threading.Thread(target=target, name="engine", daemon=True)
            t.start()
            t.join(timeout)
            timed_out = t.is_alive()
            if timed_out and on_timeout is not None:
                on_timeout()
                t.join(1)
                if t.is_alive():
                    on_timeout()  # the second call pulls the line
                    t.join(5)
        finally:
            sys.stdin = old_stdin
    rc = box.get("rc", -1)
    return (
        (rc if isinstance(rc, int) else 1),
        out.getvalue(),
        err.getvalue(),
        timed_out,
        box.get("crash", ""),
    )


def run_engine_subprocess(
    cli: str,
    argv: list[str],
    timeout: float,
    on_timeout: Callable[[], None] | None = None,
) -> tuple[int, str, str, bool, str]:
    """``python -c 'from MODULE import FUNC; sys.exit(FUNC(argv))'``, as a user runs it."""
    module, _, func = cli.partition(":")
    code = f"import sys; from {module} import {func} as m; sys.exit(m(sys.argv[1:]))"
    try:
        p = subprocess.run(
            [sys.executable, "-c", code, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        if on_timeout is not None:
            on_timeout()

        def s(x: Any) -> str:
            return x.decode("utf-8", "replace") if isinstance(x, bytes) else (x or "")

        return -1, s(e.stdout), s(e.stderr), True, ""
    return p.returncode, p.stdout, p.stderr, False, ""


# --------------------------------------------------------------------------- devices
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
        network: NetworkFaults | None = None,
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
        kwargs: dict[str, Any] = dict(options or {})
        self.server_port = 0
        self.proxy: UdpFaultProxy | None = None
        if self.spec.tftp:
            self.server_port = free_udp_port()
            device_port = self.server_port
            if network is not None:
                self.proxy = UdpFaultProxy(self.server_port, network, seed=seed)
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
        self._tftp: LabTftpServer | None = None
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
    def console(self) -> ConsoleClient:
        """The open host terminal (opened on first use)."""
        if self._console is None:
            self._console = ConsoleClient(self.path, self.device.uart.baud)
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

    # -- tftp ----------------------------------------------------------------
    def serve_tftp(self) -> None:
        """Serve the lab's work directory on this device's TFTP port."""
        if self._tftp is None and self.spec.tftp:
            self._tftp = LabTftpServer(self.lab.work, self.server_port).start()

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
        network: NetworkFaults | Mapping[str, Any] | None = None,
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
            network = NetworkFaults(**network)
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
                dev.power_on("prompt" if power in (True, "prompt") else "boot")
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
