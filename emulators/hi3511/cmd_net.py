"""Network commands of U-Boot 1.1.4 (common/cmd_net.c, net/net.c) on the Hi3511.

``tftp [addr] [file]`` downloads (``netboot_common``'s argument forms; a lone
argument starting with ``"`` is a file name), and the HiSilicon fork's
``tftp addr file len`` uploads ``len`` bytes from ``addr``. A download to a
flash address is programmed straight into flash with raw AND semantics and
no erase check (REFERENCE.md: what produced the CRC errors of seed 000).
Success sets ``filesize`` (hex) and ``fileaddr``. Prerequisites are checked as
``net_check_prereq`` does: ``*** ERROR: `serverip' not set``, then ``ipaddr``.
``loadaddr``, when set, presets the load address (common/cmd_net.c netboot_common).

HiSilicon (github zhhejun/u-boot-1.1.4 common/cmd_net.c): the upload length
``upload_size`` is a global: ``tftp addr file`` clears it, but ``tftp addr`` and
``tftp`` keep it, so after an upload they upload again (from the last upload's
address). Its usage line has a TAB (``tftp\\t- download or upload image via network
using TFTP protocol``), as ``bootp``, ``dhcp`` and ``ping`` have in both trees
(REFERENCE.md "Captured from the real program"); the long help is
``[loadAddress] [bootfilename] <upload_size>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulators.hi3511.cmd_mem import hexarg, usage
from emulators.hi3511.net import (
    Abort,
    NetFail,
    NetSettings,
    TftpClient,
    broadcast_forever,
    ip_to_int,
    wait_for_ctrlc,
)
from emulators.hi3511.shell import Command

if TYPE_CHECKING:
    from emulators.hi3511.uboot import UBoot


def _settings(ub: UBoot) -> NetSettings:
    return NetSettings(
        ipaddr=ip_to_int(ub.getenv("ipaddr")),
        serverip=ip_to_int(ub.getenv("serverip")),
        netmask=ip_to_int(ub.getenv("netmask")),
        gatewayip=ip_to_int(ub.getenv("gatewayip")),
        retry=ub.getenv("netretry") or "",
    )


def _prereq(ub: UBoot, s: NetSettings, need_server: bool) -> bool:
    if need_server and not s.serverip:
        ub.con.puts("*** ERROR: `serverip' not set\n")
        return False
    if not s.ipaddr:
        ub.con.puts("*** ERROR: `ipaddr' not set\n")
        return False
    return True


def do_tftp(ub: UBoot, argv: list[str], flag: int) -> int:
    loadaddr = ub.getenv("loadaddr")
    if loadaddr is not None:
        ub.load_addr = hexarg(loadaddr)
    addr = ub.load_addr
    filename = ub.getenv("bootfile") or ""
    length = None
    hisi = ub.variant.hisilicon
    if len(argv) == 2:
        if argv[1].startswith('"'):
            filename = argv[1].strip('"')
        else:
            addr = hexarg(argv[1])
    elif len(argv) == 3:
        addr, filename = hexarg(argv[1]), argv[2].strip('"')
        ub.upload_size = 0
    elif len(argv) == 4:
        ub.upload_addr = hexarg(argv[1])
        filename, length = argv[2].strip('"'), hexarg(argv[3])
        ub.upload_size = length
    elif len(argv) > 4:
        return usage(ub, "tftp")
    if len(argv) != 4:
        ub.load_addr = addr
    if hisi and ub.upload_size:
        length = ub.upload_size
        addr = ub.upload_addr
    elif length is not None:
        addr = ub.upload_addr
    if not filename:
        ip = ip_to_int(ub.getenv("ipaddr"))
        filename = "%02X%02X%02X%02X.img" % tuple((ip >> s) & 0xFF for s in (24, 16, 8, 0))
        ub.con.puts(f"*** Warning: no boot file name; using '{filename}'\n")
    s = _settings(ub)
    if not _prereq(ub, s, True):
        return 1
    client = TftpClient(ub.con, ub.clock, ub.netmap, s, ub.variant)
    try:
        if length is not None:
            size = client.upload(filename, addr, length, ub.mem_read)
        else:
            size = client.download(filename, addr, ub.store_download)
    except Abort:
        ub.con.puts("\nAbort\n")
        return 1
    except NetFail:
        return 1
    if size > 0:
        ub.con.puts(f"Bytes transferred = {size} ({size:x} hex)\n")
        ub.setenv("filesize", f"{size:x}")
        ub.setenv("fileaddr", f"{ub.load_addr:X}")
    return 0


def _broadcast(ub: UBoot, argv: list[str], name: str) -> int:
    if len(argv) > 3:
        return usage(ub, argv[0])
    try:
        broadcast_forever(ub.con, ub.clock, name, ub.getenv("netretry") or "")
    except Abort:
        ub.con.puts("\nAbort\n")
    except NetFail:
        pass
    return 1


def do_bootp(ub: UBoot, argv: list[str], flag: int) -> int:
    return _broadcast(ub, argv, "BOOTP")


def do_dhcp(ub: UBoot, argv: list[str], flag: int) -> int:
    # DhcpRequest goes through BootpRequest, which prints the BOOTP line
    return _broadcast(ub, argv, "BOOTP")


def do_rarpboot(ub: UBoot, argv: list[str], flag: int) -> int:
    return _broadcast(ub, argv, "RARP")


def do_ping(ub: UBoot, argv: list[str], flag: int) -> int:
    if len(argv) < 2:
        return usage(ub, "ping")
    target = ip_to_int(argv[1])
    if target == 0:
        return usage(ub, "ping")
    s = _settings(ub)
    if not _prereq(ub, s, False):
        return 1
    try:
        # nobody answers on the emulated wire, not even the loopback server
        wait_for_ctrlc(ub.con, ub.clock.timeout(10.0))
    except Abort:
        ub.con.puts("\nAbort\n")
        return 1
    ub.con.puts(f"ping failed; host {argv[1]} is not alive\n")
    return 1


COMMANDS = [
    Command(
        "tftp",
        4,
        True,
        do_tftp,
        "tftp    - download or upload image via network using TFTP protocol\n",
        "address filename [length]\n    - download filename to address; with length,\n"
        "      upload length bytes from address to the server as filename\n",
    ),
    Command(
        "bootp",
        3,
        True,
        do_bootp,
        "bootp\t- boot image via network using BootP/TFTP protocol\n",
        "[loadAddress] [bootfilename]\n",
    ),
    Command(
        "dhcp", 3, True, do_dhcp, "dhcp\t- invoke DHCP client to obtain IP/boot params\n", "\n"
    ),
    Command(
        "rarpboot",
        3,
        True,
        do_rarpboot,
        "rarpboot- boot image via network using RARP/TFTP protocol\n",
        "[loadAddress] [bootfilename]\n",
    ),
    Command(
        "ping",
        2,
        True,
        do_ping,
        "ping\t- send ICMP ECHO_REQUEST to network host\n",
        "pingAddress\n",
    ),
]

# HiSilicon's own texts for the same commands (common/cmd_net.c U_BOOT_CMD of the tree).
HISILICON_TEXTS = {
    "tftp": (
        "tftp\t- download or upload image via network using TFTP protocol\n",
        "[loadAddress] [bootfilename] <upload_size>\n",
    ),
}
