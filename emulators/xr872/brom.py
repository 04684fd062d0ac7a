"""The XR872 mask ROM's UART download mode: the "BROM" protocol PhoenixMC speaks.

Sources: REFERENCE.md (XR872 section) and the host code that speaks it,
openshwprojects/BK7231GUIFlashTool ``BK7231Flasher/Flashers/XRBaseFlasher.cs``
and ``XRRomFlasherBase.cs`` (frames, checksums, command ids, erase modes,
value byte order, eFuse registers, sync):

* Unsynced after reset and after SETUART: every byte but 0x55 is ignored;
  0x55 is answered ``OK`` (the only answer the tools accept). Synced: a frame
  is found by its ``BROM`` magic, other bytes are skipped (0x55 between frames
  is answered ``OK`` again: assumption).
* Header: magic, flags, a byte (the tools send 0 for most commands and 1 for
  READ4/WRITE4/SEQRD; the ROM answers with its BROM version, 2), checksum u16,
  payload_len u32; header fields, addresses, lengths and counts are big-endian
  on the wire.
* Checksum (checked when the request has CHECK; the tools always set it):
  the complement of checksum16 over the *pre-image*, the same header and
  payload with every field little-endian and the checksum field zero
  (``BuildBromPacket``; GET_FLASH_ID is ``42 52 4F 4D 04 00 60 51 00 00 00
  01 18``). Responses carry a checksum computed the same way (the tools do
  not check it) and copy the request's CHECK flag.
* MEMRW values are little-endian on the wire and in the pre-image
  (``BuildWrite32Packet``: ``WriteLe32(wire, 4, value)``; ``ReadXrMemory32``:
  ``ReadLe32(resp.Payload)``).
* Command ids (group << 3 | key): READ4 0x04, WRITE4 0x05, SEQRD 0x08,
  SETUART 0x10 (``baud | 0x03000000``), REBOOT 0x12, chip type 0x17 (one
  byte back), GETINFO 0x18 (3 JEDEC bytes), ERASE 0x19, READ 0x1A, WRITE 0x1B.
* ERASE: mode 0 = whole chip with no address (``BuildChipErasePacket``:
  payload id + mode only), 1 = 4 KiB and 3 = 64 KiB followed by the address.
* READ/WRITE count 512-byte units; WRITE carries dcs u16 and is two-phase:
  command -> ACK, then exactly the data bytes -> a second response (ACK, or
  ERROR CHECKSUM/TIMEOUT). The tools move 4 KiB per read, 16 KiB per write.
* Errors: flags ERROR, payload_len 1, one error byte (UNKNOWNCMD 1, TIMEOUT 2,
  CHECKSUM 3, INVALID 4, NOMEM 5).
* The eFuse controller (``XRRomFlasherBase.cs`` ``ReadXrEfuseWord``, SDK
  ``hal_efuse.c``): CTRL 0x40043C40, READ_VALUE 0x40043C60, TIMING
  0x40043C90. Writing CTRL with the clock gate (bit 28), the byte index
  (bits 16..23), the unlock value 0xAC (bits 8..15) and READ_START (bit 1)
  latches that 32-bit word into READ_VALUE; READ_START and HW_BUSY (bit 2)
  then read 0.

Assumptions where no source speaks (each refuses rather than guesses):
ROM inter-byte timeout 1 s; a 64-byte command buffer (NOMEM above); a 16 KiB
flash transfer buffer (NOMEM above); memory commands reach SRAM, the ROM
(read only) and the three eFuse registers (4-byte accesses only), INVALID
elsewhere; ERASE modes 2 (no source shows a 32 KiB code) and 4, and mode 0
with an address, are INVALID; SETUART to a rate other than the six the tools
use (9600, 115200, 921600, 1000000, 1500000, 3000000) is INVALID, because what
the ROM's UART divider does with other rates is unknown; the chip type byte's
value (:data:`CHIP_TYPE`); an eFuse read start without the clock gate or the
unlock value does nothing (READ_START stays set); PROG_START burns nothing.
SETPC jumps into code the emulator cannot run: the CPU goes silent until
reset. A SETUART whose top byte is not 8 data bits without parity leaves the
UART in a format the link cannot carry. RETRY and EXE are accepted and
ignored. Erase of a protected area is ignored by the chip (ACK). The ROM never
erases before a write.
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
CMD_CHIPTYPE = 23
CMD_FLASH_GETINFO, CMD_FLASH_ERASE, CMD_FLASH_READ, CMD_FLASH_WRITE = 24, 25, 26, 27

CHIP_TYPE = 0x02  # the byte command 0x17 answers (assumption: no source gives the value)

# payload layout after the id byte: widths of the fields, big-endian on the wire; a
# negative width is a MEMRW value, little-endian on the wire (not swapped)
LAYOUTS: dict[int, tuple[int, ...]] = {
    CMD_READ1: (4,),
    CMD_WRITE1: (4, -1),
    CMD_READ2: (4,),
    CMD_WRITE2: (4, -2),
    CMD_READ4: (4,),
    CMD_WRITE4: (4, -4),
    CMD_READ8: (4,),
    CMD_WRITE8: (4, -8),
    CMD_SEQRD: (4, 4),
    CMD_SEQWR: (4, 4, 2),
    CMD_SETUART: (4,),
    CMD_SETJTAG: (1,),
    CMD_REBOOT: (),
    CMD_SETPC: (4,),
    CMD_SETCKCS: (1,),
    CMD_CHIPTYPE: (),
    CMD_FLASH_GETINFO: (),
    CMD_FLASH_ERASE: (1, 4),  # (1,) for mode 0, the chip erase
    CMD_FLASH_READ: (4, 4),
    CMD_FLASH_WRITE: (4, 4, 2),
}

# FLASH_ERASE modes (XRRomFlasherBase.cs): (bytes erased, datasheet time)
ERASE_CHIP, ERASE_4K, ERASE_64K = 0, 1, 3
ERASE_MODES: dict[int, tuple[int, float]] = {
    ERASE_4K: (0x1000, P.ERASE_4K_TIME),
    ERASE_64K: (0x10000, P.ERASE_64K_TIME),
    ERASE_CHIP: (P.FLASH_SIZE, P.ERASE_CHIP_TIME),
}

# eFuse controller CTRL bits (XRRomFlasherBase.cs)
EFUSE_CLK_GATE = 0x10000000
EFUSE_UNLOCK = 0xAC
EFUSE_HW_BUSY = 0x4
EFUSE_READ_START = 0x2
EFUSE_PROG_START = 0x1

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
        field = payload[pos : pos + abs(width)]
        out += field if width < 0 else field[::-1]
        pos += abs(width)
    return bytes(out)


def layout_for(payload: bytes) -> tuple[int, ...] | None:
    """The field widths of a request payload (ERASE mode 0 has no address)."""
    layout = LAYOUTS.get(payload[0])
    if payload[0] == CMD_FLASH_ERASE and len(payload) == 2 and payload[1] == ERASE_CHIP:
        return (1,)
    return layout


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
        efuse: bytes = bytes(128),
    ) -> None:
        self.uart = uart
        self.efuse = efuse
        self.efuse_ctrl = 0
        self.efuse_value = 0
        self.efuse_timing = 0
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
        layout = layout_for(req.payload)
        if layout is None:
            self._error(req.check, ERR_UNKNOWNCMD, f"cmd {req.cmd}")
            return
        if len(req.payload) != 1 + sum(abs(w) for w in layout):
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
            fields.append(req.payload[pos : pos + abs(width)])
            pos += abs(width)
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
        elif cmd == CMD_CHIPTYPE:
            self._respond(req.check, bytes([CHIP_TYPE]))
        elif cmd == CMD_FLASH_GETINFO:
            self._respond(req.check, P.JEDEC_ID)
        elif cmd == CMD_FLASH_ERASE:
            self._flash_erase(req, u[0], u[1] if len(u) > 1 else None)
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
        if addr in (P.EFUSE_CTRL, P.EFUSE_READ_VALUE, P.EFUSE_TIMING):
            if width != 4:
                raise RomError(ERR_INVALID)
            mem = self._efuse_reg(addr).to_bytes(4, "little")
        else:
            mem = self._mem_read(addr, width)
        # the value is little-endian on the wire and in the pre-image
        self._respond(req.check, mem)

    def _mem_write_n(self, req: Request, addr: int, width: int, value_le: bytes) -> None:
        if addr % min(width, 4):
            raise RomError(ERR_INVALID)
        if addr in (P.EFUSE_CTRL, P.EFUSE_READ_VALUE, P.EFUSE_TIMING):
            if width != 4:
                raise RomError(ERR_INVALID)
            self._efuse_write(addr, int.from_bytes(value_le, "little"))
        else:
            self._mem_write(addr, value_le)
        self._respond(req.check)

    # eFuse controller ---------------------------------------------------------
    def _efuse_reg(self, addr: int) -> int:
        if addr == P.EFUSE_CTRL:
            return self.efuse_ctrl
        if addr == P.EFUSE_READ_VALUE:
            return self.efuse_value
        return self.efuse_timing

    def _efuse_write(self, addr: int, value: int) -> None:
        if addr == P.EFUSE_TIMING:
            self.efuse_timing = value
            return
        if addr == P.EFUSE_READ_VALUE:
            return  # read-only (assumption)
        self.efuse_ctrl = value
        unlocked = (value >> 8) & 0xFF == EFUSE_UNLOCK and value & EFUSE_CLK_GATE
        if value & EFUSE_READ_START and unlocked:
            word = ((value >> 16) & 0xFF) >> 2
            if word < len(self.efuse) // 4:
                self.efuse_value = int.from_bytes(self.efuse[word * 4 : word * 4 + 4], "little")
            else:
                self.efuse_value = 0
            self.efuse_ctrl &= ~(EFUSE_READ_START | EFUSE_HW_BUSY)
            self.transcript.note(f"brom: efuse word {word} read")
        if value & EFUSE_PROG_START and unlocked:
            self.efuse_ctrl &= ~EFUSE_PROG_START  # nothing is burnt (assumption)

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
        if baud not in P.TOOL_BAUDS:
            # no source says what the ROM's divider does with other rates: refused
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

    def _flash_erase(self, req: Request, mode: int, addr: int | None) -> None:
        if mode not in ERASE_MODES or (mode == ERASE_CHIP) != (addr is None):
            raise RomError(ERR_INVALID)
        size, seconds = ERASE_MODES[mode]
        if addr is None:
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
