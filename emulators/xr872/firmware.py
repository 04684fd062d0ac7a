"""The XF16 camera application as the Skylark SDK frames it: sysinfo, boot log, console.

Sources (XradioTech/xradio-skylark-sdk unless said otherwise):

* ``project/common/framework/platform_init.c``: ``platform_init`` runs
  ``sysinfo_init`` and starts the console (level 1), then
  ``platform_show_info`` prints the block this model prints: the
  ``platform information`` rule, ``XRADIO Skylark SDK <ver> <date> <time>``,
  ``sram heap space [..), total size N Bytes``, ``cpu  clock %9u Hz``,
  ``HF   clock %9u Hz``, ``sdk option:`` with ``XIP`` and the LF oscillator,
  then ``mac address:`` with ``    efuse         : <efpg_read(MAC)>`` (zeros
  when the eFuse holds none) and ``    in use        : <sysinfo MAC>``.
* ``sysinfo.c``/``sysinfo.h``/``fdcm.c``: see :mod:`emulators.xr872.sysinfo`.
  At boot the record is loaded; a missing or corrupt one is rebuilt from
  defaults and saved to flash; the MAC follows ``PRJCONF_MAC_ADDR_SOURCE``
  (this model's ``mac_source``: SDK default CHIPID, or FLASH, EFUSE, CODE).
* ``src/console/console.c`` (echo on, empty commands on): printable bytes are
  echoed and stored; ``\\r`` or ``\\n`` ends a line (echo ``\\r\\n``; a ``\\n``
  right after ``\\r`` is dropped); backspace/DEL erase with ``\\b \\b``; any
  other byte (NUL, Ctrl-C, ...) silently empties the line. No login, no prompt
  at boot: ``cmd_main_exec`` (``cmd_util.c``) writes ``$ `` after each line.
* ``cmd_util.c``: a command answers ``<ACK> <code> <text>``; an unknown one
  prints ``[cmd ERR] cmd_exec():51, unknown cmd '<name>'``, ``<ACK> 400 Unknown
  command`` and ``Use 'help' to list available subcommands``.
* ``cmd_upgrade.c``: ``upgrade`` answers ``<ACK> 200 OK`` and reboots through
  the watchdog with the boot flag PRCM_CPUA_BOOT_FROM_SYS_UPDATE (the ROM then
  sits silently in its UART download mode); ``reboot`` does the same with the
  cold-reset flag.

Assumptions: the stock command set is not known (the seed: "half of the
commands ... are deleted"); the model has ``help`` (SDK ``[*] name`` list),
``upgrade`` and ``reboot`` only. The heap line's numbers, the build date, the
HF clock and the LF oscillator line are this model's. The stock app's own
lines (camera, cloud) are not modelled.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from emulators.device import DeviceReset
from emulators.flash import NorFlash
from emulators.serial import VirtualUart
from emulators.timing import Clock
from emulators.xr872 import profile as P
from emulators.xr872 import sysinfo as S

PROMPT = "$ "
RULE = "=" * 68
COMMANDS = ("help", "upgrade", "reboot")


class Firmware:
    """The application, from sysinfo_init to the console. Never returns: reboots raise
    :class:`DeviceReset` (after calling ``set_upgrade`` for ``upgrade``)."""

    def __init__(
        self,
        uart: VirtualUart,
        clock: Clock,
        flash: NorFlash,
        seed: int,
        version: str,
        set_upgrade: Callable[[], None],
        *,
        efuse: bytes,
        mac_source: int = S.MAC_CHIPID,
        boot_count: int = 0,
    ) -> None:
        self.uart = uart
        self.clock = clock
        self.flash = flash
        self.seed = seed
        self.version = version
        self.set_upgrade = set_upgrade
        self.efuse = efuse
        self.mac_source = mac_source
        self.rng = random.Random(f"xr872-{seed}-{boot_count}")
        self.info = S.SysInfo()
        self.rebuilt = False

    # -- sysinfo_init ----------------------------------------------------------------
    def _mac(self, stored: S.SysInfo | None) -> bytes:
        """``sysinfo_init_mac_addr``; ``stored`` is what FDCM reads for the FLASH source."""
        src = self.mac_source
        if src == S.MAC_CODE:
            return S.CODE_MAC
        if src == S.MAC_EFUSE:
            return S.efuse_mac(self.efuse) or S.random_mac(self.rng)
        if src == S.MAC_CHIPID:
            mac = S.chipid_mac(S.efuse_chipid(self.efuse))
            return mac if any(mac) else S.random_mac(self.rng)
        if stored is not None:
            return stored.mac
        return S.random_mac(self.rng)

    def _read_record(self) -> S.SysInfo | None:
        area = self.flash.read(P.SYSINFO_OFFSET, P.SYSINFO_SIZE)
        raw = S.fdcm_read(area, flash=self.flash.read(0, P.FLASH_SIZE))
        return None if raw is None else S.SysInfo(bytearray(raw))

    def sysinfo_init(self) -> None:
        loaded = self._read_record()
        if loaded is None:
            # sysinfo_default: zero, MAC (for FLASH: fdcm_read fails -> random), save
            self.info = S.SysInfo.default(self._mac(None))
            self._save()
            self.rebuilt = True
            return
        self.info = loaded
        if self.mac_source != S.MAC_FLASH:
            self.info.mac = self._mac(loaded)  # in RAM only

    def _save(self) -> None:
        area = self.flash.read(P.SYSINFO_OFFSET, P.SYSINFO_SIZE)
        op = S.fdcm_write(area, self.info.pack())
        if op.erase:
            self.flash.erase(P.SYSINFO_OFFSET, P.SYSINFO_SIZE)
        for off, data in op.programs:
            self.flash.program(P.SYSINFO_OFFSET + off, data)

    # -- platform_show_info ------------------------------------------------------------
    def boot_log(self) -> None:
        puts = self.uart.write
        efuse_mac = S.efuse_mac(self.efuse) or bytes(6)
        puts(
            f"\r\nplatform information {'=' * 47}\r\n"
            f"XRADIO Skylark SDK {P.SDK_VERSION} {P.SDK_BUILD}\r\n\r\n"
            "sram heap space [0x2269e8, 0x24bc00), total size 152088 Bytes\r\n"
            f"cpu  clock {P.CPU_CLOCK:9d} Hz\r\n"
            f"HF   clock {P.HF_CLOCK:9d} Hz\r\n\r\n"
            "sdk option:\r\n"
            f"    {'XIP':<14}: enable\r\n"
            f"    {'INT LF OSC':<14}: enable\r\n\r\n"
            "mac address:\r\n"
            f"    {'efuse':<14}: {S.format_mac(efuse_mac)}\r\n"
            f"    {'in use':<14}: {S.format_mac(self.info.mac)}\r\n"
            f"{RULE}\r\n\r\n"
        )

    # -- console ---------------------------------------------------------------------
    def run(self) -> None:
        self.clock.sleep(0.05)
        self.sysinfo_init()
        self.clock.sleep(0.15)
        self.boot_log()
        while True:
            self._command(self._readline())

    def _readline(self) -> str:
        buf: list[str] = []
        after_cr = False
        while True:
            b = self.uart.read(1, None)
            if not b:
                continue
            c = b[0]
            if c == 0x0A and after_cr:
                after_cr = False
                continue
            after_cr = c == 0x0D
            if c in (0x0D, 0x0A):
                self.uart.write(b"\r\n")
                return "".join(buf)
            if c in (0x08, 0x7F):
                if buf:
                    buf.pop()
                    self.uart.write(b"\b \b")
                continue
            if 0x20 <= c < 0x7F:
                self.uart.write(b)
                buf.append(chr(c))
            else:
                buf.clear()  # "rx illegal char": the line is dropped, nothing is echoed

    def _command(self, line: str) -> None:
        puts = self.uart.write
        cmd = line.strip()
        if cmd:
            name = cmd.split(" ", 1)[0]
            if name == "help":
                for n in COMMANDS:
                    puts(f"[*] {n}\r\n")
                puts("<ACK> 200 OK\r\n")
            elif name in ("upgrade", "reboot"):
                puts("<ACK> 200 OK\r\n")
                self.clock.settle(self.uart, 0.01)
                if name == "upgrade":
                    self.set_upgrade()
                raise DeviceReset()
            else:
                puts(f"[cmd ERR] cmd_exec():51, unknown cmd '{name}'\r\n")
                puts("<ACK> 400 Unknown command\r\n")
                puts("Use 'help' to list available subcommands\r\n")
        puts(PROMPT)
