"""The XR872 mask ROM's UART download mode: the "BROM" protocol PhoenixMC speaks.

Sources: REFERENCE.md (XR872 section); the XRadio SDK headers (command ids,
``cmd_header_t`` and payload structs, error codes); XRadio's own host code in
its Bluetooth HAL (``cmd.c``: checksum computed on the host-order struct, then
fields byte-swapped for the wire; sync = 0x55 answered ``OK``); and the
published reverse engineering of PhoenixMC (512-byte flash sectors, read data
following the response header, two-phase writes, erase modes 1 = 4 KiB and
3 = 64 KiB, SETUART value ``baud | 0x03000000``, a captured GET_FLASH_ID
frame ``42 52 4F 4D 04 00 60 51 00 00 00 01 18`` whose checksum 0x6051 is
the complement of checksum16 over the little-endian pre-image).

The exact wire contract is in docs/xr872-emulator.md. In short:

* Unsynced after reset and after SETUART: every byte but 0x55 is ignored;
  0x55 is answered ``OK``. Synced: a frame is found by its ``BROM`` magic,
  other bytes are skipped (0x55 between frames is answered ``OK`` again).
* Header: magic, flags, version byte, checksum u16, payload_len u32; every
  multi-byte field of header and payload is big-endian on the wire.
* Checksum (checked only when the request has CHECK): checksum16 over the
  *pre-image* - the same header and payload with every multi-byte field in
  little-endian order, the checksum field included - must be 0xFFFF. Data
  bytes (memory contents, flash data) are not swapped. Responses always carry
  a valid checksum computed the same way (over header and payload/data) and
  copy the request's CHECK flag.
* Errors: flags ERROR, payload_len 1, one error byte. ACK responses carry
  their data (MEMRW reads, SEQRD, FLASH_GETINFO, FLASH_READ) as the payload.
* SEQWR and FLASH_WRITE are two-phase: command -> ACK, then exactly the data
  bytes -> a second response (ACK, or ERROR CHECKSUM/TIMEOUT).
* Parse order: magic; header (TIMEOUT if the line stops); payload_len 0 ->
  INVALID, > 64 -> NOMEM (answered at once, the payload is not read); payload
  (TIMEOUT); unknown id -> UNKNOWNCMD; wrong length for the id -> INVALID;
  CHECK with a bad checksum -> CHECKSUM; then the command's own checks.

Assumptions where no source speaks: inter-byte timeout 1 s (the ROM's), a
64-byte command buffer, a 16 KiB flash transfer buffer (PhoenixMC's largest
transfer: 32 sectors) -> NOMEM above it, memory commands restricted to SRAM
(read/write) and ROM (read only) -> INVALID elsewhere, naturally aligned
MEMRW accesses (8-byte ones word aligned). SETPC jumps into code the
emulator cannot run: the CPU goes silent until reset. A SETUART whose top
byte is not an 8-bit, no-parity format leaves the UART in a format the link
cannot carry: the ROM hears nothing until reset. RETRY and EXE are accepted
and ignored. Erase of a protected area is ignored by the chip (the ROM still
answers ACK). The ROM never erases before a write.
"""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import Iterator
from dataclasses import dataclass

from emulators.console import Console
from emulators.device import DeviceReset
from emulators.flash import FlashProtectedError, NorFlash
from emulators.memory import SparseRam
from emulators.serial import VirtualUart
from emulators.timing import Clock
from emulators.transcript import Transcript
from emulators.xr872 import profile as P
from emulators.xr872.image import checksum16

MAGIC = b"BROM"
SYNC = 0x55
SYNC_REPLY = b"OK"
HEADER_LEN = 12

FLAG_ERROR = 0x01
FLAG_ACK = 0x02
FLAG_CHECK = 0x04
FLAG_RETRY = 0x08
FLAG_EXE = 0x10

ERR_UNKNOWNCMD = 1
ERR_TIMEOUT = 2
ERR_CHECKSUM = 3
ERR_INVALID = 4
ERR_NOMEM = 5

ERROR_NAMES = {
    ERR_UNKNOWNCMD: "UNKNOWNCMD",
    ERR_TIMEOUT: "TIMEOUT",
    ERR_CHECKSUM: "CHECKSUM",
    ERR_INVALID: "INVALID",
    ERR_NOMEM: "NOMEM",
}

# command ids: (group << 3) | key
CMD_READ1, CMD_WRITE1, CMD_READ2, CMD_WRITE2 = 0, 1, 2, 3
CMD_READ4, CMD_WRITE4, CMD_READ8, CMD_WRITE8 = 4, 5, 6, 7
CMD_SEQRD, CMD_SEQWR = 8, 9
CMD_SETUART, CMD_SETJTAG, CMD_REBOOT, CMD_SETPC, CMD_SETCKCS = 16, 17, 18, 19, 20
CMD_FLASH_GETINFO, CMD_FLASH_ERASE, CMD_FLASH_READ, CMD_FLASH_WRITE = 24, 25, 26, 27

# payload layout after the id byte: widths of the fields, each big-endian on the wire
LAYOUTS: dict[int, tuple[int, ...]] = {
    CMD_READ1: (4,),
    CMD_WRITE1: (4, 1),
    CMD_READ2: (4,),
    CMD_WRITE2: (4, 2),
    CMD_READ4: (4,),
    CMD_WRITE4: (4, 4),
    CMD_READ8: (4,),
    CMD_WRITE8: (4, 8),
    CMD_SEQRD: (4, 4),
    CMD_SEQWR: (4, 4, 2),
    CMD_SETUART: (4,),
    CMD_SETJTAG: (1,),
    CMD_REBOOT: (),
    CMD_SETPC: (4,),
    CMD_SETCKCS: (1,),
    CMD_FLASH_GETINFO: (),
    CMD_FLASH_ERASE: (1, 4),
    CMD_FLASH_READ: (4, 4),
    CMD_FLASH_WRITE: (4, 4, 2),
}

# FLASH_ERASE erase_cmd codes: (bytes erased, datasheet time)
ERASE_4K, ERASE_32K, ERASE_64K, ERASE_CHIP = 1, 2, 3, 4
ERASE_MODES: dict[int, tuple[int, float]] = {
    ERASE_4K: (0x1000, P.ERASE_4K_TIME),
    ERASE_32K: (0x8000, P.ERASE_32K_TIME),
    ERASE_64K: (0x10000, P.ERASE_64K_TIME),
    ERASE_CHIP: (P.FLASH_SIZE, P.ERASE_CHIP_TIME),
}

FLASH_SECTOR_UNIT = 512  # FLASH_READ/FLASH_WRITE "sector" units
MAX_CMD_PAYLOAD = 64
MAX_FLASH_XFER = 0x4000  # 32 sectors
BYTE_TIMEOUT = 1.0  # seconds between bytes of a frame or data phase (real time)


class RomError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(ERROR_NAMES.get(code, str(code)))
        self.code = code


@dataclass(frozen=True)
class Request:
    flags: int
    verbyte: int
    checksum: int
    payload: bytes

    @property
    def check(self) -> bool:
        return bool(self.flags & FLAG_CHECK)

    @property
    def cmd(self) -> int:
        return self.payload[0]


def preimage(flags: int, verbyte: int, checksum: int, payload_len: int) -> bytes:
    """The header as the ROM's (little-endian) struct holds it."""
    return (
        MAGIC
        + bytes([flags & 0xFF, verbyte & 0xFF])
        + checksum.to_bytes(2, "little")
        + payload_len.to_bytes(4, "little")
    )


def payload_preimage(payload: bytes, layout: tuple[int, ...]) -> bytes:
    """The command payload with every field in little-endian order."""
    out = bytearray(payload[:1])
    pos = 1
    for width in layout:
        out += payload[pos : pos + width][::-1]
        pos += width
    return bytes(out)


@functools.lru_cache(maxsize=1)
def rom_contents() -> bytes:
    """The mask ROM as MEMRW/SEQRD see it (deterministic filler; its code is not modelled)."""
    return random.Random("xr872-mask-rom").randbytes(P.ROM_SIZE)


class BootRom:
    """The ROM's UART loop. :meth:`serve` runs until reset (DeviceReset) or power loss."""

    def __init__(
        self,
        uart: VirtualUart,
        clock: Clock,
        flash: NorFlash,
        ram: SparseRam,
        transcript: Transcript,
        fast_timeout: float = 0.5,
    ) -> None:
        self.uart = uart
        self.con = Console(uart)
        self.clock = clock
        self.flash = flash
        self.ram = ram
        self.transcript = transcript
        self.fast_timeout = fast_timeout
        self.synced = False
        self.commands = 0

    # -- link helpers ------------------------------------------------------
    @property
    def byte_timeout(self) -> float:
        return self.clock.timeout(BYTE_TIMEOUT, fast=self.fast_timeout)

    def _read(self, n: int) -> bytes | None:
        data = self.uart.read_exact(n, timeout=self.byte_timeout)
        return data if len(data) == n else None

    def _respond(
        self, check: bool, payload: bytes = b"", pre: bytes | None = None, error: int = 0
    ) -> None:
        flags = FLAG_ERROR if error else FLAG_ACK
        if check:
            flags |= FLAG_CHECK
        if error:
            payload = pre = bytes([error])
        elif pre is None:
            pre = payload
        head = preimage(flags, P.BROM_VERSION, 0, len(payload))
        cs = ~(checksum16(head) + checksum16(pre)) & 0xFFFF
        wire = (
            MAGIC
            + bytes([flags, P.BROM_VERSION])
            + cs.to_bytes(2, "big")
            + len(payload).to_bytes(4, "big")
        )
        self.uart.write(wire + payload)

    def _error(self, check: bool, code: int, what: str = "") -> None:
        self.transcript.note(f"brom: error {ERROR_NAMES.get(code, code)} {what}".rstrip())
        self._respond(check, error=code)

    # -- main loop -----------------------------------------------------------
    def serve(self) -> None:
        self.synced = False
        self.transcript.note("brom: uart download mode")
        while True:
            req = self._next_request()
            if req is not None:
                self._dispatch(req)

    def _next_request(self) -> Request | None:
        match = 0
        while True:
            b = self.uart.read(1, None)
            if not b:
                continue
            c = b[0]
            if not self.synced:
                if c == SYNC:
                    self.uart.write(SYNC_REPLY)
                    self.synced = True
                continue
            if c == MAGIC[match]:
                match += 1
                if match == len(MAGIC):
                    break
                continue
            match = 1 if c == MAGIC[0] else 0
            if match == 0 and c == SYNC:
                self.uart.write(SYNC_REPLY)
        rest = self._read(HEADER_LEN - len(MAGIC))
        if rest is None:
            self._error(False, ERR_TIMEOUT, "in header")
            return None
        flags, verbyte = rest[0], rest[1]
        checksum = int.from_bytes(rest[2:4], "big")
        plen = int.from_bytes(rest[4:8], "big")
        check = bool(flags & FLAG_CHECK)
        if plen == 0:
            self._error(check, ERR_INVALID, "empty payload")
            return None
        if plen > MAX_CMD_PAYLOAD:
            self._error(check, ERR_NOMEM, f"payload_len {plen}")
            return None
        payload = self._read(plen)
        if payload is None:
            self._error(check, ERR_TIMEOUT, "in payload")
            return None
        return Request(flags, verbyte, checksum, payload)

    def _dispatch(self, req: Request) -> None:
        self.commands += 1
        layout = LAYOUTS.get(req.cmd)
        if layout is None:
            self._error(req.check, ERR_UNKNOWNCMD, f"cmd {req.cmd}")
            return
        if len(req.payload) != 1 + sum(layout):
            self._error(req.check, ERR_INVALID, f"cmd {req.cmd} payload {len(req.payload)}")
            return
        if req.check:
            pre = preimage(req.flags, req.verbyte, req.checksum, len(req.payload))
            if checksum16(pre + payload_preimage(req.payload, layout)) != 0xFFFF:
                self._error(True, ERR_CHECKSUM, f"cmd {req.cmd}")
                return
        fields = []
        pos = 1
        for width in layout:
            fields.append(req.payload[pos : pos + width])
            pos += width
        try:
            self._execute(req, fields)
        except RomError as e:
            self._error(req.check, e.code, f"cmd {req.cmd}")

    # -- commands --------------------------------------------------------------
    def _execute(self, req: Request, f: list[bytes]) -> None:
        cmd = req.cmd
        u = [int.from_bytes(x, "big") for x in f]
        if cmd < CMD_SEQRD:
            width = 1 << (cmd >> 1)
            if cmd & 1:
                self._mem_write_n(req, u[0], width, f[1])
            else:
                self._mem_read_n(req, u[0], width)
        elif cmd == CMD_SEQRD:
            data = self._mem_read(u[0], u[1])
            self._respond(req.check, data)
        elif cmd == CMD_SEQWR:
            self._seq_write(req, u[0], u[1], u[2])
        elif cmd == CMD_SETUART:
            self._set_uart(req, u[0])
        elif cmd in (CMD_SETJTAG, CMD_SETCKCS):
            if u[0] > 1:
                raise RomError(ERR_INVALID)
            self._respond(req.check)
        elif cmd == CMD_REBOOT:
            self._respond(req.check)
            self.transcript.note("brom: reboot")
            # the chip resets and the ROM reads the flash before anything is printed
            # (tens of milliseconds; assumed 50 ms)
            self.clock.settle(self.uart, 0.05)
            raise DeviceReset()
        elif cmd == CMD_SETPC:
            self._set_pc(req, u[0])
        elif cmd == CMD_FLASH_GETINFO:
            self._respond(req.check, P.JEDEC_ID)
        elif cmd == CMD_FLASH_ERASE:
            self._flash_erase(req, u[0], u[1])
        elif cmd == CMD_FLASH_READ:
            self._flash_read(req, u[0], u[1])
        elif cmd == CMD_FLASH_WRITE:
            self._flash_write(req, u[0], u[1], u[2])
        else:  # pragma: no cover - LAYOUTS and this table agree
            raise RomError(ERR_UNKNOWNCMD)

    # memory -----------------------------------------------------------------
    def _region(self, addr: int, length: int, write: bool) -> str:
        if length < 0 or addr < 0:
            raise RomError(ERR_INVALID)
        if P.SRAM_BASE <= addr and addr + length <= P.SRAM_END:
            return "sram"
        if not write and P.ROM_BASE <= addr and addr + length <= P.ROM_BASE + P.ROM_SIZE:
            return "rom"
        raise RomError(ERR_INVALID)

    def _mem_read(self, addr: int, length: int) -> bytes:
        if length == 0:
            raise RomError(ERR_INVALID)
        if self._region(addr, length, write=False) == "sram":
            return self.ram.read(addr, length)
        off = addr - P.ROM_BASE
        return rom_contents()[off : off + length]

    def _mem_write(self, addr: int, data: bytes) -> None:
        if not data:
            raise RomError(ERR_INVALID)
        self._region(addr, len(data), write=True)
        self.ram.write(addr, data)

    def _mem_read_n(self, req: Request, addr: int, width: int) -> None:
        if addr % min(width, 4):
            raise RomError(ERR_INVALID)
        mem = self._mem_read(addr, width)
        # the value goes big-endian on the wire; the pre-image holds it little-endian
        self._respond(req.check, mem[::-1], pre=mem)

    def _mem_write_n(self, req: Request, addr: int, width: int, value_be: bytes) -> None:
        if addr % min(width, 4):
            raise RomError(ERR_INVALID)
        self._mem_write(addr, value_be[::-1])
        self._respond(req.check)

    def _data_phase(self, req: Request, length: int, dcs: int) -> bytes | None:
        """Receive the raw data of a two-phase write; answer errors; None if failed."""
        data = self._read(length)
        if data is None:
            self._error(req.check, ERR_TIMEOUT, "in data phase")
            return None
        if req.check and (dcs + checksum16(data)) & 0xFFFF != 0xFFFF:
            self._error(req.check, ERR_CHECKSUM, "data")
            return None
        return data

    def _seq_write(self, req: Request, addr: int, dlen: int, dcs: int) -> None:
        if dlen == 0:
            raise RomError(ERR_INVALID)
        self._region(addr, dlen, write=True)
        self._respond(req.check)
        data = self._data_phase(req, dlen, dcs)
        if data is None:
            return
        self._mem_write(addr, data)
        self._respond(req.check)

    # system -------------------------------------------------------------------
    def _set_uart(self, req: Request, lcr: int) -> None:
        baud = lcr & 0xFFFFFF
        fmt = lcr >> 24
        if not P.MIN_BAUD <= baud <= P.MAX_BAUD:
            raise RomError(ERR_INVALID)
        self._respond(req.check)
        self.uart.set_baud(baud)
        self.synced = False
        if fmt & 0x0B != 0x03:  # not 8 data bits without parity: the link cannot carry it
            self.transcript.note(f"brom: uart format 0x{fmt:02x} the link cannot carry")
            self._hang()

    def _set_pc(self, req: Request, pc: int) -> None:
        self._region(pc & ~1, 2, write=False)
        self._respond(req.check)
        self.transcript.note(f"brom: jump to 0x{pc:08x} (not modelled: CPU silent until reset)")
        self._hang()

    def _hang(self) -> None:
        while True:
            self.uart.read(4096, None)

    # flash --------------------------------------------------------------------
    @contextlib.contextmanager
    def _untimed_flash(self) -> Iterator[None]:
        """Block erases take their own datasheet time, not n x the sector time."""
        saved = self.flash.realtime
        self.flash.realtime = False
        try:
            yield
        finally:
            self.flash.realtime = saved

    def _flash_erase(self, req: Request, mode: int, addr: int) -> None:
        if mode not in ERASE_MODES:
            raise RomError(ERR_INVALID)
        size, seconds = ERASE_MODES[mode]
        if mode == ERASE_CHIP:
            addr = 0
        if addr % size or addr + size > self.flash.size:
            raise RomError(ERR_INVALID)
        try:
            if mode == ERASE_4K:
                self.flash.erase(addr, size)
            else:
                with self._untimed_flash():
                    self.flash.erase(addr, size)
                self.clock.sleep(seconds)
        except FlashProtectedError:
            self.transcript.note(f"brom: erase of protected 0x{addr:06x} ignored by the chip")
        self._respond(req.check)

    def _flash_range(self, sector: int, num: int) -> tuple[int, int]:
        if num == 0:
            raise RomError(ERR_INVALID)
        length = num * FLASH_SECTOR_UNIT
        offset = sector * FLASH_SECTOR_UNIT
        if length > MAX_FLASH_XFER:
            raise RomError(ERR_NOMEM)
        if offset + length > self.flash.size:
            raise RomError(ERR_INVALID)
        return offset, length

    def _flash_read(self, req: Request, sector: int, num: int) -> None:
        offset, length = self._flash_range(sector, num)
        self._respond(req.check, self.flash.read(offset, length))

    def _flash_write(self, req: Request, sector: int, num: int, dcs: int) -> None:
        offset, length = self._flash_range(sector, num)
        self._respond(req.check)
        data = self._data_phase(req, length, dcs)
        if data is None:
            return
        page = P.FLASH_PAGE
        for pos in range(0, length, page):
            # the chip ignores a program into a protected area
            with contextlib.suppress(FlashProtectedError):
                self.flash.program(offset + pos, data[pos : pos + page])
        self._respond(req.check)
