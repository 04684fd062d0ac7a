"""Fixed facts of the emulated W90P745 camera board (seed 001, REFERENCE.md).

Memory map (seed 001 banner: ``Memory Size is 0x1000000 Bytes, Flash Size is
0x200000 Bytes``):

* 16 MiB SDRAM at 0x00000000. The boot loader runs from RAM: at power-on it
  copies its own flash block to address 0, which is why the seed's
  ``d 0x400`` page shows ARM code (those 64 words are placed at offset 0x400
  of the emulated loader, so the page is reproduced byte for byte).
* 2 MiB NOR flash at 0x7F000000. Chip model: an SST39VF1601-class part as the
  loader uses it: 32 uniform 64 KiB blocks erased with the block-erase command
  (the chip's 4 KiB sector erase is never used by this loader). Timing from
  that datasheet: block erase 18 ms typical, word program 7 us (3.5 us/byte).
  Block 0 holds the boot loader and is protected at power-on.
* BOOT INFO (image 0, the loader configuration) at 0x7F010000, 0x48 bytes.

The banner and configuration block are seed 001 verbatim (the seed's HTML
non-breaking spaces are spaces; lines carry no trailing blanks, as printed in
the seed, so an unset IP address prints ``IP Address          :``).
The BOOT INFO byte layout follows a forum dump of a real unit's BOOT INFO
(openipcam.com topic 84: ``48 00 00 00 01 00 00 00`` then the MAC, DHCP and
cache words, buffer base and size); the fields after 0x38 (baud, USB, serial
number) are our assumption about the 0x48-byte version.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

from emulators.flash import FlashGeometry

FLASH_BASE = 0x7F000000
FLASH_SIZE = 0x200000
BLOCK_SIZE = 0x10000
RAM_BASE = 0x00000000
RAM_SIZE = 0x1000000
BOOTINFO_BASE = 0x7F010000
BOOTINFO_SIZE = 0x48
LOADER_BLOCK = 0  # flash block holding the boot loader (protected)
BAUD = 115200

PROMPT = "bootloader > "

BANNER = (
    "W90P745 Boot Loader [ Version 1.1 $Revision: 1 $ ] Rebuilt on Dec 10 2009\n"
    "Memory Size is 0x1000000 Bytes, Flash Size is 0x200000 Bytes\n"
    "Board designed by Winbond\n"
    "Hardware support provided at Winbond\n"
    "Copyright (c) Winbond Limited 2001 - 2006. All rights reserved.\n"
)

HELP_HEADER = "W90P745 Command Shell v1.0 Rebuilt on Dec 10 2009 at 11:02:45"

ESC_PROMPT = "Press ESC to enter debug mode"
# Real-time ESC window: six ticks of 1/3 s, one dot per tick (other units of
# the family print "Press ESC to enter debug mode ......" when they boot).
ESC_TICKS = 6
ESC_TICK = 1.0 / 3.0


def flash_geometry() -> FlashGeometry:
    return FlashGeometry.uniform(
        FLASH_SIZE,
        BLOCK_SIZE,
        erase_time=0.018,
        program_time=3.5e-6,
        name="SST39VF1601 (64 KiB blocks)",
    )


# -- BOOT INFO ----------------------------------------------------------------

_BOOTINFO = struct.Struct("<II6s2sI12sII8sIIiII4s")
assert _BOOTINFO.size == BOOTINFO_SIZE

UNSET = 0xFFFFFFFF


@dataclass
class BootConfig:
    """The loader configuration kept in BOOT INFO (image 0).

    Layout (little-endian): 0x00 struct length (0x48), 0x04 version (1),
    0x08 MAC (6 bytes + 2 pad), 0x10 IP address (4 bytes, a.b.c.d; all ones =
    unset, printed empty), 0x14 reserved (12), 0x20 DHCP client, 0x24 cache,
    0x28 reserved (8), 0x30 BL buffer base, 0x34 BL buffer size, 0x38 baud
    rate (signed; -1 = default), 0x3C USB interface, 0x40 serial number,
    0x44 reserved.
    """

    mac: bytes = bytes(6)
    ip: bytes = b"\xff\xff\xff\xff"
    dhcp: int = 1
    cache: int = 1
    buf_base: int = 0x00300000
    buf_size: int = 0x00100000
    baud: int = -1
    usb: int = 0
    serial: int = UNSET

    def pack(self) -> bytes:
        return _BOOTINFO.pack(
            BOOTINFO_SIZE,
            1,
            self.mac,
            b"\0\0",
            int.from_bytes(self.ip, "little"),
            bytes(12),
            self.dhcp,
            self.cache,
            bytes(8),
            self.buf_base,
            self.buf_size,
            self.baud,
            self.usb,
            self.serial,
            bytes(4),
        )

    @classmethod
    def unpack(cls, data: bytes) -> BootConfig:
        data = (bytes(data) + b"\xff" * BOOTINFO_SIZE)[:BOOTINFO_SIZE]
        f = _BOOTINFO.unpack(data)
        return cls(
            mac=f[2],
            ip=f[4].to_bytes(4, "little"),
            dhcp=f[6],
            cache=f[7],
            buf_base=f[9],
            buf_size=f[10],
            baud=f[11],
            usb=f[12],
            serial=f[13],
        )

    def lines(self) -> str:
        """The configuration block as the loader prints it."""
        ip = "" if self.ip == b"\xff\xff\xff\xff" else " " + ".".join(str(b) for b in self.ip)
        rows = [
            ("MAC Address", " " + ":".join(f"{b:02X}" for b in self.mac)),
            ("IP Address", ip),
            ("DHCP Client", " " + _onoff(self.dhcp)),
            ("CACHE", " " + _onoff(self.cache)),
            ("BL buffer base", f" 0x{self.buf_base:08X}"),
            ("BL buffer size", f" 0x{self.buf_size:08X}"),
            ("Baud Rate", f" {self.baud}"),
            ("USB Interface", " " + _onoff(self.usb)),
            ("Serial Number", f" 0x{self.serial:08X}"),
        ]
        out = "Boot Loader Configuration:\n\n"
        for name, value in rows:
            out += f"        {name:<20}:{value}\n"
        return out


def _onoff(v: int) -> str:
    return "Enabled" if v == 1 else "Disabled"


# The factory configuration of the seed's unit.
FACTORY_CONFIG = BootConfig(
    mac=bytes.fromhex("0EF2B3DC0CEF"),
    ip=b"\xff\xff\xff\xff",
    dhcp=1,
    cache=1,
    baud=115200,
    usb=1,
    serial=UNSET,
)

# What the loader writes when it finds no image 0 at power-on (its built-in
# defaults; other units of the family print these values: baud -1, USB
# disabled, IP 0.0.0.0).
DEFAULT_CONFIG = BootConfig(mac=bytes(6), ip=bytes(4), baud=-1, usb=0)


# -- the boot loader's own flash block -----------------------------------------

# Seed 001, ``d 0x400`` on a running loader: code of the loader itself.
SEED_WORDS_0x400 = [
    0xA5810004, 0xB3E00000, 0xA3A00000, 0xE49DF004, 0xE52DE004, 0xEBFFFFD3, 0xE3500000, 0xA59F156C,
    0xA3A00980, 0xA5810004, 0xB3E00000, 0xA3A00000, 0xE49DF004, 0xE52DE004, 0xEBFFFFCA, 0xE3500000,
    0xA59F1548, 0xA3A00840, 0xA5810004, 0xB3E00000, 0xA3A00000, 0xE49DF004, 0xE2800481, 0xE3C00480,
    0xE35009FC, 0x33A00B40, 0x31A0F00E, 0xE59F151C, 0xE5911004, 0xE1500001, 0x23A00000, 0x33A00D80,
    0xE1A0F00E, 0xE2800481, 0xE3C00480, 0xE3500B40, 0x33A00D80, 0x31A0F00E, 0xE59F14F0, 0xE5911004,
    0xE1500001, 0x23A00000, 0x33A00B40, 0xE1A0F00E, 0xE2800481, 0xE3C00480, 0xE3500B40, 0x33A00D80,
    0x31A0F00E, 0xE59F14C4, 0xE5911004, 0xE1500001, 0x23A00000, 0x33A00B40, 0xE1A0F00E, 0xE2800481,
    0xE3C00480, 0xE350097C, 0x33A00B40, 0x31A0F00E, 0xE3500980, 0x23A00000, 0x33A00D80, 0xE1A0F00E,
]  # fmt: skip

LOADER_CODE_SIZE = 0xB400  # the rest of block 0 is erased


def arm_like(rng: random.Random, n: int) -> bytearray:
    """``n`` bytes of plausible little-endian ARM words (mostly condition AL)."""
    out = bytearray(rng.randbytes(n))
    top = out[3::4]
    # top nibble: AL (0xE) three times in four, else EQ/NE/CS/CC
    out[3::4] = bytes((b & 0x0F) | ((0xE if b & 0x30 else b >> 6) << 4) for b in top)
    return out


def loader_image() -> bytes:
    """Deterministic content of flash block 0: vectors, code, strings."""
    rng = random.Random("w90p745:bootloader")
    code = arm_like(rng, LOADER_CODE_SIZE)
    # exception vectors: ldr pc, [pc, #0x18] and their targets
    vectors = struct.pack("<8I", *([0xE59FF018] * 8))
    targets = struct.pack("<8I", 0x100, 0x140, 0x160, 0x180, 0x1A0, 0, 0x1C0, 0x1E0)
    code[0:0x40] = vectors + targets
    code[0x400:0x500] = struct.pack("<64I", *SEED_WORDS_0x400)
    strings = (BANNER + "\0" + HELP_HEADER + "\0" + PROMPT + "\0").encode()
    code[0x9000 : 0x9000 + len(strings)] = strings
    return bytes(code) + b"\xff" * (BLOCK_SIZE - LOADER_CODE_SIZE)
