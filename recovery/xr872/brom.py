"""The XRadio boot ROM ("BROM") UART protocol, host side: framing, checksums, a client.

Sources (facts only): shared/REFERENCE.md (XR872 section) and the host code
that speaks the protocol, openshwprojects/BK7231GUIFlashTool
``BK7231Flasher/Flashers/XRBaseFlasher.cs`` and ``XRRomFlasherBase.cs``:

* Sync: the host sends ``0x55``; the ROM answers ``OK`` (the only answer the
  tools accept; REFERENCE.md's earlier ``KO`` has no source).
* Every command and every response starts with a 12-byte header: magic
  ``BROM``, flags u8 (ERROR 0x01, ACK 0x02, CHECK 0x04, RETRY 0x08, EXE
  0x10), a byte (requests: 0, or 1 for READ4/WRITE4/SEQRD as the tool sends
  it; responses: the BROM version, 2 or later on the XR872), checksum u16,
  payload_len u32. Header fields, addresses, lengths and counts are
  big-endian on the wire; MEMRW values are little-endian on the wire
  (``BuildWrite32Packet``: ``WriteLe32(wire, 4, value)``; ``ReadXrMemory32``:
  ``ReadLe32(payload)``).
* checksum16: the sum of the little-endian 16-bit words of a buffer (an odd
  trailing byte added alone), 16-bit wrap. The header checksum is the
  complement of checksum16 over the *pre-image* of the frame: header and
  payload with every field little-endian and the checksum field zero
  (``BuildBromPacket``). Data bytes (memory or flash contents) are never
  swapped. Check: GET_FLASH_ID is ``42 52 4F 4D 04 00 60 51 00 00 00 01 18``.
* The payload starts with the command id, ``(group << 3) | key``: READ4 0x04,
  WRITE4 0x05, SEQRD 0x08, SETUART 0x10 (``baud | 0x03000000``), REBOOT 0x12,
  chip type 0x17 (one byte back), GETINFO 0x18 (3 JEDEC bytes, size
  ``1 << third byte``), ERASE 0x19 (mode 0 = chip with no address, 1 = 4 KiB,
  3 = 64 KiB, then the address), READ 0x1A / WRITE 0x1B (512-byte units;
  WRITE adds ``dcs`` = ~checksum16(data) and is two-phase: ACK, raw data,
  final ACK).
* Errors: the ERROR flag and one byte: UNKNOWNCMD 1, TIMEOUT 2, CHECKSUM 3,
  INVALID 4, NOMEM 5. After an acknowledged SETUART both sides switch and
  sync again with 0x55/``OK``.
* eFuse: 128 bytes read a 32-bit word at a time through the controller at
  0x40043C40 (CTRL), 0x40043C60 (READ_VALUE), 0x40043C90 (TIMING)
  (``ReadXrEfuse``/``ReadXrEfuseWord``).

The host moves 4 KiB per read and at most 16 KiB per write (as the tools do)
and erases before writing: the ROM never erases on its own.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Protocol

MAGIC = b"BROM"
HEADER = struct.Struct(">4sBBHI")
HEADER_SIZE = HEADER.size  # 12
SYNC_BYTE = b"\x55"
SYNC_REPLIES = (b"OK",)
PROTOCOL_VERSION = 0


class Flag(IntFlag):
    ERROR = 0x01
    ACK = 0x02
    CHECK = 0x04
    RETRY = 0x08
    EXE = 0x10


def cmd_id(group: int, key: int) -> int:
    return (group << 3) | key


class Group(IntEnum):
    MEMRW = 0
    SEQRQ = 1
    SYSCTL = 2
    FLASH = 3


class Cmd(IntEnum):
    READ1 = cmd_id(0, 0)
    WRITE1 = cmd_id(0, 1)
    READ2 = cmd_id(0, 2)
    WRITE2 = cmd_id(0, 3)
    READ4 = cmd_id(0, 4)
    WRITE4 = cmd_id(0, 5)
    READ8 = cmd_id(0, 6)
    WRITE8 = cmd_id(0, 7)
    SEQRD = cmd_id(1, 0)
    SEQWR = cmd_id(1, 1)
    SETUART = cmd_id(2, 0)
    SETJTAG = cmd_id(2, 1)
    REBOOT = cmd_id(2, 2)
    SETPC = cmd_id(2, 3)
    SETCKCS = cmd_id(2, 4)
    CHIPTYPE = cmd_id(2, 7)
    FLASH_GETINFO = cmd_id(3, 0)
    FLASH_ERASE = cmd_id(3, 1)
    FLASH_READ = cmd_id(3, 2)
    FLASH_WRITE = cmd_id(3, 3)


class ErrCode(IntEnum):
    UNKNOWNCMD = 1
    TIMEOUT = 2
    CHECKSUM = 3
    INVALID = 4
    NOMEM = 5


class Erase(IntEnum):
    """FLASH_ERASE modes (XRRomFlasherBase.cs ``XR_ERASE_MODE_*``)."""

    CHIP = 0
    SECTOR_4K = 1
    BLOCK_64K = 3


ERASE_SIZE = {Erase.SECTOR_4K: 0x1000, Erase.BLOCK_64K: 0x10000}
FLASH_UNIT = 512  # bytes per unit of FLASH_READ/FLASH_WRITE ``sector``/``num``
MAX_FLASH_XFER = 0x4000  # 32 units per FLASH_READ/FLASH_WRITE
MAX_CMD_PAYLOAD = 64
ROM_BYTE_TIMEOUT = 1.0  # the ROM gives up on a frame or data phase after this much silence
LCR_8N1 = 3 << 24
TOOL_BAUDS = (9600, 115200, 921600, 1_000_000, 1_500_000, 3_000_000)  # XR809Flasher.cs

# eFuse controller (XRRomFlasherBase.cs)
EFUSE_BYTES = 128
EFUSE_CTRL = 0x40043C40
EFUSE_READ_VALUE = 0x40043C60
EFUSE_TIMING = 0x40043C90
EFUSE_CLK_GATE = 0x10000000
EFUSE_INDEX_MASK = 0x00FF0000
EFUSE_LOCK_MASK = 0x0000FF00
EFUSE_UNLOCK = 0x0000AC00
EFUSE_HW_BUSY = 0x4
EFUSE_READ_START = 0x2
EFUSE_PROG_START = 0x1
EFUSE_TIMING_24_26M = 0x63321190


# -- checksums ---------------------------------------------------------------------
def checksum16(data: bytes | bytearray | memoryview, start: int = 0) -> int:
    """Sum of little-endian u16 words of ``data`` (odd last byte alone), plus ``start``, mod 2^16."""
    mv = memoryview(data).cast("B")
    n = len(mv)
    even = n & ~1
    total = start
    if even:
        total += sum(memoryview(mv[:even]).cast("H")) if _LITTLE else _sum_le(mv[:even])
    if n & 1:
        total += mv[n - 1]
    return total & 0xFFFF


def _sum_le(mv: memoryview) -> int:
    return sum(int.from_bytes(mv[i : i + 2], "little") for i in range(0, len(mv), 2))


_LITTLE = struct.pack("=H", 1) == b"\x01\x00"


def data_checksum(data: bytes) -> int:
    """The ``dcs`` of a data transfer: the complement of its checksum16."""
    return ~checksum16(data) & 0xFFFF


# -- headers and frames ----------------------------------------------------------
@dataclass(frozen=True)
class Header:
    flags: int
    version: int = PROTOCOL_VERSION
    checksum: int = 0
    payload_len: int = 0
    reserved: int = 0

    def pack(self) -> bytes:
        vb = (self.version & 0x0F) | ((self.reserved & 0x0F) << 4)
        return HEADER.pack(MAGIC, self.flags, vb, self.checksum, self.payload_len)

    @classmethod
    def unpack(cls, raw: bytes) -> Header:
        if len(raw) != HEADER_SIZE:
            raise ValueError(f"a BROM header is {HEADER_SIZE} bytes, got {len(raw)}")
        magic, flags, vb, cs, plen = HEADER.unpack(raw)
        if magic != MAGIC:
            raise ValueError(f"bad BROM magic {magic!r}")
        return cls(flags, vb & 0x0F, cs, plen, vb >> 4)


def header_preimage(h: Header) -> bytes:
    """The header as the checksum sees it: every multi-byte field little-endian."""
    vb = (h.version & 0x0F) | ((h.reserved & 0x0F) << 4)
    return struct.pack("<4sBBHI", MAGIC, h.flags, vb, h.checksum, h.payload_len)


def frame(
    payload: bytes,
    flags: int = Flag.CHECK,
    version: int = PROTOCOL_VERSION,
    preimage: bytes | None = None,
) -> bytes:
    """Header + ``payload`` (wire order). ``preimage`` is the payload with its
    multi-byte fields little-endian (default: the payload itself, i.e. plain data);
    the checksum makes header pre-image + payload pre-image sum to 0xFFFF."""
    pre = payload if preimage is None else preimage
    if len(pre) != len(payload):
        raise ValueError("a pre-image has the length of its payload")
    h0 = Header(flags, version, 0, len(payload))
    cs = ~checksum16(pre, checksum16(header_preimage(h0))) & 0xFFFF
    return Header(flags, version, cs, len(payload)).pack() + payload


def frame_sums_ok(header: Header, payload_preimage: bytes = b"") -> bool:
    """True when the header's pre-image and the payload's pre-image sum to 0xFFFF."""
    return checksum16(payload_preimage, checksum16(header_preimage(header))) == 0xFFFF


# -- command payloads --------------------------------------------------------------
_RW_DATA = {Cmd.WRITE1: 1, Cmd.WRITE2: 2, Cmd.WRITE4: 4, Cmd.WRITE8: 8}
_READS = (Cmd.READ1, Cmd.READ2, Cmd.READ4, Cmd.READ8)


@dataclass(frozen=True)
class Request:
    """One command as fields; :func:`encode_request`/:func:`decode_request` convert it.

    ``data`` is the inline data of WRITEn; for SEQWR/FLASH_WRITE the data goes
    in a second transfer and only its length/``dcs`` are part of the payload.
    """

    cmd: int
    addr: int = 0
    length: int = 0
    dcs: int = 0
    value: int = 0
    data: bytes = b""


def encode_request(r: Request, order: str = ">") -> bytes:
    """The payload of ``r``: ``order`` ">" for the wire, "<" for its checksum pre-image."""
    c = r.cmd
    if c in _READS:
        return struct.pack(order + "BI", c, r.addr)
    if c in _RW_DATA:
        if len(r.data) != _RW_DATA[Cmd(c)]:
            raise ValueError(f"{Cmd(c).name} carries {_RW_DATA[Cmd(c)]} bytes")
        return struct.pack(order + "BI", c, r.addr) + r.data  # values little-endian both ways
    if c in (Cmd.SEQRD, Cmd.FLASH_READ):
        return struct.pack(order + "BII", c, r.addr, r.length)
    if c in (Cmd.SEQWR, Cmd.FLASH_WRITE):
        return struct.pack(order + "BIIH", c, r.addr, r.length, r.dcs)
    if c in (Cmd.SETUART, Cmd.SETPC):
        return struct.pack(order + "BI", c, r.value)
    if c in (Cmd.SETJTAG, Cmd.SETCKCS):
        return struct.pack(order + "BB", c, r.value)
    if c == Cmd.FLASH_ERASE:
        if r.value == Erase.CHIP:
            return bytes([c, r.value])  # the chip erase carries no address
        return struct.pack(order + "BBI", c, r.value, r.addr)
    if c in (Cmd.REBOOT, Cmd.FLASH_GETINFO, Cmd.CHIPTYPE):
        return bytes([c])
    raise ValueError(f"unknown command id {c}")


_PAYLOAD_LEN = {
    **{c: 5 for c in _READS},
    **{c: 5 + n for c, n in _RW_DATA.items()},
    Cmd.SEQRD: 9,
    Cmd.FLASH_READ: 9,
    Cmd.SEQWR: 11,
    Cmd.FLASH_WRITE: 11,
    Cmd.SETUART: 5,
    Cmd.SETPC: 5,
    Cmd.SETJTAG: 2,
    Cmd.SETCKCS: 2,
    Cmd.FLASH_ERASE: 6,
    Cmd.REBOOT: 1,
    Cmd.FLASH_GETINFO: 1,
    Cmd.CHIPTYPE: 1,
}


def frame_request(r: Request, flags: int = Flag.CHECK) -> bytes:
    """``r`` framed for the wire, its checksum over the little-endian pre-image."""
    return frame(encode_request(r, ">"), flags, preimage=encode_request(r, "<"))


def decode_request(payload: bytes) -> Request:
    if not payload:
        raise ValueError("empty payload")
    c = payload[0]
    want = _PAYLOAD_LEN.get(c)  # type: ignore[call-overload]
    if c == Cmd.FLASH_ERASE and len(payload) == 2 and payload[1] == Erase.CHIP:
        want = 2
    if want is None:
        raise ValueError(f"unknown command id {c}")
    if len(payload) != want:
        raise ValueError(f"{Cmd(c).name} payload is {want} bytes, got {len(payload)}")
    if c in _READS:
        return Request(c, addr=struct.unpack_from(">I", payload, 1)[0])
    if c in _RW_DATA:
        return Request(c, addr=struct.unpack_from(">I", payload, 1)[0], data=payload[5:])
    if c in (Cmd.SEQRD, Cmd.FLASH_READ):
        _, a, n = struct.unpack(">BII", payload)
        return Request(c, addr=a, length=n)
    if c in (Cmd.SEQWR, Cmd.FLASH_WRITE):
        _, a, n, d = struct.unpack(">BIIH", payload)
        return Request(c, addr=a, length=n, dcs=d)
    if c in (Cmd.SETUART, Cmd.SETPC):
        return Request(c, value=struct.unpack_from(">I", payload, 1)[0])
    if c in (Cmd.SETJTAG, Cmd.SETCKCS):
        return Request(c, value=payload[1])
    if c == Cmd.FLASH_ERASE:
        if len(payload) == 2:
            return Request(c, value=payload[1])
        _, e, a = struct.unpack(">BBI", payload)
        return Request(c, addr=a, value=e)
    return Request(c)


# -- responses ---------------------------------------------------------------------
@dataclass(frozen=True)
class Response:
    header: Header
    raw_header: bytes
    payload: bytes = b""
    error: int | None = None

    @property
    def checked(self) -> bool:
        return bool(self.header.flags & Flag.CHECK)


def encode_response(payload: bytes = b"", *, error: int | None = None, check: bool = True) -> bytes:
    """A response as a ROM sends it (data payloads are not swapped). For tests."""
    flags = Flag.ACK | (Flag.CHECK if check else 0)
    if error is not None:
        flags |= Flag.ERROR
        payload = bytes([error])
    return frame(payload, flags)


# -- errors ------------------------------------------------------------------------
class BromError(Exception):
    """The ROM did not do what was asked. ``code`` is the ROM's error byte, if any."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class BromTimeout(BromError):
    """Nothing (or not enough) came back in time."""


class BromChecksumError(BromError):
    """A frame failed its checksum, or the ROM reported a checksum error, every retry."""


class BromSyncError(BromError):
    """0x55 was not answered with ``OK``."""


# -- client ------------------------------------------------------------------------
class Link(Protocol):
    """What the client needs from a port (recovery.transport.Port provides it)."""

    def write(self, data: bytes) -> None: ...
    def read_exact(self, n: int, timeout: float) -> bytes: ...
    def read_some(self, size: int, timeout: float | None) -> bytes: ...
    def drain_input(self, quiet: float = 0.05, limit: float = 2.0) -> bytes: ...
    def set_baud(self, baud: int) -> None: ...


@dataclass
class FlashInfo:
    jedec_id: int
    size: int

    @property
    def jedec_hex(self) -> str:
        return f"{self.jedec_id:06x}"


@dataclass
class Stats:
    commands: int = 0
    retries: int = 0
    checksum_errors: int = 0
    rom_errors: int = 0
    resyncs: int = 0


class BromClient:
    """Speaks the BROM protocol over a :class:`Link`.

    Every command is retried (bounded by ``retries``) when a frame fails its
    checksum, the ROM reports CHECKSUM/TIMEOUT, or the answer does not come:
    the line is drained and re-synced with 0x55 before the next attempt. All
    commands used here are idempotent on retry (reads; erases; programming the
    same bytes again into NOR gives the same bytes).
    """

    def __init__(
        self,
        link: Link,
        *,
        check: bool = True,
        timeout: float = 2.0,
        retries: int = 4,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.link = link
        self.check = check
        self.timeout = timeout
        self.retries = retries
        self.stats = Stats()
        self.last_checked = False  # the last response carried a valid CHECK checksum
        self._log = log or (lambda _m: None)

    # -- sync --------------------------------------------------------------------
    def sync(self, attempts: int = 10, wait: float = 0.2) -> bool:
        """Send 0x55 until the ROM answers ``OK``. Returns False if it never does."""
        for _ in range(attempts):
            self.link.drain_input(quiet=0.01, limit=0.2)
            self.link.write(SYNC_BYTE)
            got = self.read_reply(wait)
            if any(got.endswith(r) for r in SYNC_REPLIES):
                return True
        return False

    def read_reply(self, wait: float) -> bytes:
        got = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            chunk = self.link.read_some(64, max(0.0, deadline - time.monotonic()))
            if not chunk:
                break
            got += chunk
            if any(got.endswith(r) for r in SYNC_REPLIES):
                break
        return got

    def resync(self) -> None:
        """Get back in step after a broken exchange. A ROM still waiting for the rest of a
        frame or a data phase takes each 0x55 as data, so after a few quick tries the line
        is left quiet for longer than the ROM's inter-byte timeout (1 s) before syncing."""
        self.stats.resyncs += 1
        self.link.drain_input(quiet=0.05, limit=1.0)
        if self.sync(attempts=3, wait=0.2):
            return
        self.link.drain_input(quiet=ROM_BYTE_TIMEOUT + 0.2, limit=ROM_BYTE_TIMEOUT + 3)
        if not self.sync(attempts=10):
            raise BromSyncError("the ROM stopped answering the 0x55 sync")

    # -- one exchange ------------------------------------------------------------
    def _read_response(self, expect: int | None) -> Response:
        """Read one response; ``expect`` data bytes after an ACK (None: take payload_len)."""
        raw = self.link.read_exact(HEADER_SIZE, self.timeout)
        # the ROM may have sent stray bytes first (an OK, noise): find the magic
        while len(raw) == HEADER_SIZE and not raw.startswith(MAGIC):
            i = raw.find(MAGIC[:1], 1)
            keep = raw[i:] if i > 0 else b""
            more = self.link.read_exact(HEADER_SIZE - len(keep), self.timeout)
            if not more:
                raw = keep
                break
            raw = keep + more
        if len(raw) < HEADER_SIZE:
            raise BromTimeout(f"no response from the ROM (got {raw!r})")
        hdr = Header.unpack(raw)
        if hdr.flags & Flag.ERROR:
            rest = self.link.read_exact(max(1, hdr.payload_len), self.timeout)
            if not rest:
                raise BromTimeout("the ROM flagged an error but sent no error code")
            if hdr.flags & Flag.CHECK and not (frame_sums_ok(hdr, rest) or frame_sums_ok(hdr)):
                raise BromChecksumError("an error response failed its checksum")
            return Response(hdr, raw, rest, error=rest[0])
        if not hdr.flags & Flag.ACK:
            raise BromError(f"response without ACK flag (flags 0x{hdr.flags:02x})")
        n = hdr.payload_len
        if expect is not None and n != expect:
            # read what it announces (bounded) so the line stays in step, then complain
            if n <= max(expect, 0) + 0x10000:
                self.link.read_exact(n, self.timeout)
            raise BromChecksumError(f"response announces {n} bytes, expected {expect}")
        payload = self.link.read_exact(n, self.timeout) if n else b""
        if len(payload) < n:
            raise BromTimeout(f"response cut short: {len(payload)} of {n} bytes")
        if hdr.flags & Flag.CHECK and not frame_sums_ok(hdr, payload):
            raise BromChecksumError("response failed its checksum")
        return Response(hdr, raw, payload)

    def _exchange_once(self, req: Request, data: bytes | None, expect: int | None) -> Response:
        flags = Flag.CHECK if self.check else 0
        self.link.write(frame_request(req, flags))
        resp = self._read_response(0 if data is not None else expect)
        if resp.error is None and data is not None:
            self.link.write(data)
            resp = self._read_response(0)
        if resp.error is not None:
            raise BromError(_err_text(req.cmd, resp.error), resp.error)
        self.last_checked = resp.checked
        return resp

    def command(self, req: Request, data: bytes | None = None, expect: int | None = 0) -> bytes:
        """Send ``req`` (and ``data`` as a second transfer); return the response payload."""
        self.stats.commands += 1
        last: BromError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retries += 1
                self._log(f"retrying {_name(req.cmd)} (attempt {attempt + 1}): {last}")
                self.resync()
            try:
                return self._exchange_once(req, data, expect).payload
            except BromChecksumError as e:
                self.stats.checksum_errors += 1
                last = e
            except BromTimeout as e:
                last = e
            except BromError as e:
                self.stats.rom_errors += 1
                if e.code == ErrCode.CHECKSUM:
                    self.stats.checksum_errors += 1
                if e.code not in (ErrCode.CHECKSUM, ErrCode.TIMEOUT):
                    raise
                last = e
            except ValueError as e:  # a garbled header
                self.stats.checksum_errors += 1
                last = BromChecksumError(str(e))
        assert last is not None
        if isinstance(last, BromChecksumError) or last.code == ErrCode.CHECKSUM:
            raise BromChecksumError(
                f"{_name(req.cmd)} failed its checksum {self.retries + 1} times in a row: "
                "the serial line is corrupting data (check the ground wire, use shorter "
                "wires, or a lower --max-baud)",
                last.code,
            )
        raise last

    # -- operations --------------------------------------------------------------
    def read32(self, addr: int) -> int:
        """READ4: the 32-bit word at ``addr`` (little-endian on the wire)."""
        return int.from_bytes(self.command(Request(Cmd.READ4, addr=addr), expect=4), "little")

    def write32(self, addr: int, value: int) -> None:
        self.command(
            Request(Cmd.WRITE4, addr=addr, data=(value & 0xFFFFFFFF).to_bytes(4, "little"))
        )

    def read_efuse(self) -> bytes:
        """The 128 eFuse bytes, word by word, the way BK7231GUIFlashTool's ReadXrEfuse does."""
        self.write32(EFUSE_TIMING, EFUSE_TIMING_24_26M)
        out = bytearray()
        for word in range(EFUSE_BYTES // 4):
            base = self.read32(EFUSE_CTRL) | EFUSE_CLK_GATE
            base &= ~(EFUSE_INDEX_MASK | EFUSE_LOCK_MASK | EFUSE_READ_START | EFUSE_PROG_START)
            try:
                self.write32(EFUSE_CTRL, base)
                self.write32(EFUSE_CTRL, base | (word * 4) << 16 | EFUSE_UNLOCK | EFUSE_READ_START)
                for _ in range(50):
                    if not self.read32(EFUSE_CTRL) & (EFUSE_READ_START | EFUSE_HW_BUSY):
                        break
                else:
                    raise BromError(f"the eFuse controller stayed busy reading word {word}")
                out += self.read32(EFUSE_READ_VALUE).to_bytes(4, "little")
            finally:
                idle = base & ~(EFUSE_CLK_GATE | EFUSE_INDEX_MASK | EFUSE_LOCK_MASK)
                self.write32(EFUSE_CTRL, idle & ~(EFUSE_READ_START | EFUSE_PROG_START))
        return bytes(out)

    def chip_type(self) -> int | None:
        """Command 0x17 (one byte), or None if the ROM refuses it."""
        try:
            p = self.command(Request(Cmd.CHIPTYPE), expect=None)
        except BromError:
            return None
        return p[0] if p else None

    def read_mem(self, addr: int, n: int) -> bytes:
        return self.command(Request(Cmd.SEQRD, addr=addr, length=n), expect=n)

    def write_mem(self, addr: int, data: bytes) -> None:
        req = Request(Cmd.SEQWR, addr=addr, length=len(data), dcs=data_checksum(data))
        self.command(req, data=data)

    def flash_info(self) -> FlashInfo:
        """JEDEC id (3 bytes: manufacturer, type, capacity) and the size it implies."""
        p = self.command(Request(Cmd.FLASH_GETINFO), expect=None)
        if len(p) < 3:
            raise BromError(f"GETINFO answered {len(p)} bytes, expected the 3-byte JEDEC id")
        jedec = int.from_bytes(p[:3], "big")
        cap = p[2]
        size = 1 << cap if 0x10 <= cap <= 0x20 else 0
        return FlashInfo(jedec, size)

    def flash_read(self, addr: int, n: int) -> bytes:
        """``n`` bytes at flash offset ``addr`` (both multiples of :data:`FLASH_UNIT`)."""
        if addr % FLASH_UNIT or n % FLASH_UNIT:
            raise ValueError(f"flash reads go in units of {FLASH_UNIT} bytes")
        out = bytearray()
        for o in range(addr, addr + n, MAX_FLASH_XFER):
            k = min(MAX_FLASH_XFER, addr + n - o)
            req = Request(Cmd.FLASH_READ, addr=o // FLASH_UNIT, length=k // FLASH_UNIT)
            out += self.command(req, expect=k)
        return bytes(out)

    def flash_write(self, addr: int, data: bytes) -> None:
        """Program ``data`` at ``addr`` (the ROM does not erase first)."""
        if addr % FLASH_UNIT or len(data) % FLASH_UNIT:
            raise ValueError(f"flash writes go in units of {FLASH_UNIT} bytes")
        for o in range(0, len(data), MAX_FLASH_XFER):
            part = data[o : o + MAX_FLASH_XFER]
            req = Request(
                Cmd.FLASH_WRITE,
                addr=(addr + o) // FLASH_UNIT,
                length=len(part) // FLASH_UNIT,
                dcs=data_checksum(part),
            )
            self.command(req, data=part)

    def flash_erase(self, kind: Erase, addr: int) -> None:
        self.command(Request(Cmd.FLASH_ERASE, addr=addr, value=int(kind)))

    def set_uart(self, baud: int, sync_attempts: int = 10) -> bool:
        """SETUART to ``baud``, switch the host, sync. False if the new rate does not sync
        (the ROM acknowledged and switched: the caller decides how to get back)."""
        self.command(Request(Cmd.SETUART, value=LCR_8N1 | (baud & 0xFFFFFF)))
        self.link.set_baud(baud)
        return self.sync(attempts=sync_attempts, wait=0.1)

    def reboot(self) -> None:
        """REBOOT; the ROM acknowledges, then the chip resets (no retries: it may be gone)."""
        self.stats.commands += 1
        self.link.write(frame_request(Request(Cmd.REBOOT), Flag.CHECK if self.check else 0))
        try:
            resp = self._read_response(0)
        except (BromTimeout, BromChecksumError, ValueError):
            return  # the ack may be lost in the reset; the caller checks what boots
        if resp.error is not None:
            raise BromError(_err_text(Cmd.REBOOT, resp.error), resp.error)


def _name(cmd: int) -> str:
    try:
        return Cmd(cmd).name
    except ValueError:
        return f"command {cmd}"


def _err_text(cmd: int, code: int) -> str:
    try:
        what = ErrCode(code).name
    except ValueError:
        what = f"error {code}"
    return f"the ROM answered {_name(cmd)} with {what}"
