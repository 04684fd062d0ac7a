"""The Linux 2.6 kernel that ``bootm 0x34100000`` starts on the Hi3511, as far as
recovery needs it: its boot log, the MTD partitions from ``mtdparts``, the
JFFS2 mount scan of mtd1 (:mod:`emulators.hi3511.jffs2scan`), the VFS result,
and a small root shell over the same console.

Source of the text: the seed's log lines verbatim (``Memory policy`` through
``Memory: 71168KB available``); the decompressor line from REFERENCE.md; the
MTD lines in the format of drivers/mtd/mtdpart.c and cmdlinepart.c; the VFS
and panic lines from REFERENCE.md. Lines the seed does not show (``Linux
version``, CPU, the CFI probe, ``Freeing init memory``) are plausible
2.6.14-era text and marked as such here. The root shell is a minimal
stand-in for BusyBox ash with no login: ``ls [-l] [PATH]``, ``cat FILE``
(``/proc/mtd``, ``/proc/cmdline`` too), ``echo``, ``uname``, ``mount``,
``reboot``. A panic hangs the board until it is power-cycled, as the real
kernel does without ``panic=`` on the command line.
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING

from emulators.console import Console, Interrupted
from emulators.hi3511 import profile
from emulators.hi3511.jffs2scan import ScanResult, scan

if TYPE_CHECKING:
    from emulators.hi3511.uboot import UBoot

DECOMPRESS = "Uncompressing Linux.... done, booting the kernel.\n"

# invented (no document shows them)
PRE_SEED = (
    "Linux version 2.6.14 (root@hisilicon) (gcc version 3.4.3 (release) (CodeSourcery ARM 2005q3-2)) "
    "#1 Wed Mar 18 20:44:35 CST 2009\n"
    "CPU: ARM926EJ-Sid(wb) [41069265] revision 5 (ARMv5TEJ)\n"
    "Machine: Hisilicon Hi3511\n"
)

# verbatim from seed 000
SEED_LOG = (
    "Memory policy: ECC disabled, Data cache writeback\n"
    "CPU0: D VIVT write-back cache\n"
    "CPU0: I cache: 16384 bytes, associativity 4, 32 byte lines, 128 sets\n"
    "CPU0: D cache: 16384 bytes, associativity 4, 32 byte lines, 128 sets\n"
    "Built 1 zonelists\n"
    "Kernel command line: {cmdline}\n"
    "PID hash table entries: 512 (order: 9, 8192 bytes)\n"
    "Console: colour dummy device 80x30\n"
    "Dentry cache hash table entries: 16384 (order: 4, 65536 bytes)\n"
    "Inode-cache hash table entries: 8192 (order: 3, 32768 bytes)\n"
    "Memory: 72MB = 72MB total\n"
    "Memory: 71168KB available (1461K code, 175K data, 76K init)\n"
)

# invented, in the format of drivers/mtd (chips/cfi_probe.c, mtdpart.c)
MTD_LOG = (
    "phys_mapped_flash: Found 1 x16 devices at 0x0 in 16-bit bank\n"
    " Amd/Fujitsu Extended Query Table at 0x0040\n"
    "number of CFI chips: 1\n"
    "3 cmdlinepart partitions found on MTD device phys_mapped_flash\n"
    'Creating 3 MTD partitions on "phys_mapped_flash":\n'
)

MOUNTED = "VFS: Mounted root (jffs2 filesystem).\nFreeing init memory: 76K\n"
PANIC = (
    'VFS: Cannot open root device "1f01" or unknown-block(31,1)\n'
    'Please append a correct "root=" boot option\n'
    "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(31,1)\n"
)
SHELL_PROMPT = "# "


def mtd_lines() -> str:
    return "".join(
        f'0x{off:08x}-0x{off + size:08x} : "{name}"\n' for name, off, size in profile.PARTITIONS
    )


def proc_mtd() -> str:
    lines = ["dev:    size   erasesize  name\n"]
    for i, (name, _off, size) in enumerate(profile.PARTITIONS):
        lines.append(f'mtd{i}: {size:08x} {profile.SECTOR_SIZE:08x} "{name}"\n')
    return "".join(lines)


class Linux:
    """The booted kernel; :meth:`run` never returns (reboot raises DeviceReset)."""

    def __init__(self, ub: UBoot) -> None:
        self.ub = ub
        self.con = ub.con
        self.result: ScanResult | None = None
        self.cwd = "/"

    def boot(self) -> None:
        con, ub = self.con, self.ub
        cmdline = ub.getenv("bootargs") or ""
        con.puts(DECOMPRESS)
        con.puts(PRE_SEED)
        con.puts(SEED_LOG.format(cmdline=cmdline))
        con.puts(MTD_LOG + mtd_lines())
        root = ub.flash.read(profile.ROOT_ADDR - profile.FLASH_BASE, profile.ROOT_SIZE)
        result = scan(root, profile.SECTOR_SIZE, readonly=False)
        self.result = result
        ub.dev.last_scan = result
        if result.messages:
            con.puts("".join(m + "\n" for m in result.messages))
        if not result.mounted:
            con.puts(PANIC)
            ub.hang()
        con.puts(MOUNTED)
        self.shell()

    # -- the root shell --------------------------------------------------------
    def shell(self) -> None:
        while True:
            try:
                # the Linux tty's line discipline (echo "\r\n"), not U-Boot's readline
                line = Console.readline(self.con, SHELL_PROMPT)
            except Interrupted:
                self.con.puts("\n")
                continue
            argv = line.split()
            if not argv:
                continue
            handler = getattr(self, "sh_" + argv[0], None)
            if handler is None:
                self.con.puts(f"-sh: {argv[0]}: not found\n")
                continue
            handler(argv)

    def _path(self, p: str) -> str:
        return posixpath.normpath(posixpath.join(self.cwd, p))

    def sh_ls(self, argv: list[str]) -> None:
        res = self.result
        assert res is not None
        long = "-l" in argv
        args = [a for a in argv[1:] if not a.startswith("-")] or [self.cwd]
        for arg in args:
            path = self._path(arg)
            if path in res.files or path in res.symlinks:
                self.con.puts(self._entry(path, long))
                continue
            if path not in res.dirs:
                self.con.puts(f"ls: {arg}: No such file or directory\n")
                continue
            prefix = path.rstrip("/") + "/"
            names = sorted(
                {
                    p[len(prefix) :].split("/", 1)[0]
                    for p in [*res.files, *res.dirs, *res.symlinks, *res.special]
                    if p.startswith(prefix) and p != path
                }
            )
            if long:
                self.con.puts("".join(self._entry(prefix + n, True) for n in names))
            elif names:
                self.con.puts("  ".join(names) + "\n")

    def _entry(self, path: str, long: bool) -> str:
        res = self.result
        assert res is not None
        name = posixpath.basename(path)
        if not long:
            return name + "\n"
        if path in res.dirs:
            return f"drwxr-xr-x    1 root     root            0 {name}\n"
        if path in res.symlinks:
            return f"lrwxrwxrwx    1 root     root     {len(res.symlinks[path]):8d} {name} -> {res.symlinks[path]}\n"
        size = len(res.files.get(path, b""))
        return f"-rw-r--r--    1 root     root     {size:8d} {name}\n"

    def sh_cat(self, argv: list[str]) -> None:
        res = self.result
        assert res is not None
        for arg in argv[1:]:
            path = self._path(arg)
            if path == "/proc/mtd":
                self.con.puts(proc_mtd())
            elif path == "/proc/cmdline":
                self.con.puts((self.ub.getenv("bootargs") or "") + "\n")
            elif path in res.files:
                self.con.puts(res.files[path])
            elif path in res.dirs:
                self.con.puts("cat: read error: Is a directory\n")
            else:
                self.con.puts(f"cat: {arg}: No such file or directory\n")

    def sh_cd(self, argv: list[str]) -> None:
        res = self.result
        assert res is not None
        path = self._path(argv[1] if len(argv) > 1 else "/")
        if path in res.dirs:
            self.cwd = path
        else:
            self.con.puts(f"-sh: cd: can't cd to {argv[1]}\n")

    def sh_pwd(self, argv: list[str]) -> None:
        self.con.puts(self.cwd + "\n")

    def sh_echo(self, argv: list[str]) -> None:
        self.con.puts(" ".join(argv[1:]) + "\n")

    def sh_uname(self, argv: list[str]) -> None:
        self.con.puts("Linux hisilicon 2.6.14 #1 Wed Mar 18 20:44:35 CST 2009 armv5tejl unknown\n")

    def sh_mount(self, argv: list[str]) -> None:
        self.con.puts(
            "rootfs on / type rootfs (rw)\n/dev/root on / type jffs2 (rw)\nproc on /proc type proc (rw)\n"
        )

    def sh_reboot(self, argv: list[str]) -> None:
        self.con.puts("Restarting system.\n")
        self.ub.reset()
