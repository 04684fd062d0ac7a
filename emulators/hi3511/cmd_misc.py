"""The other commands of the seed's ``help`` listing (U-Boot 1.1.4):
help/?, echo, version, bdinfo, printenv, setenv, saveenv, reset, go, loadb, bootm.

* ``printenv``: ``name=value`` lines then ``\\nEnvironment size: %d/%d bytes``;
  ``## Error: "%s" not defined`` for a missing name.
* ``setenv``: prints nothing; ``Can't overwrite "ethaddr"`` once it is set;
  ``baudrate`` prints ``## Switch baudrate to %d bps and press ENTER ...``,
  switches the UART and waits for a carriage return, as cmd_nvedit.c does.
* ``saveenv``: the env_flash.c sequence (unprotect, erase, write the whole sector,
  protect) at the variant's CFG_ENV_OFFSET; a failed unprotect or erase returns at
  once (github zhhejun/u-boot-1.1.4 common/env_flash.c).
* ``bootm``: with CONFIG_HW_WATCHDOG (HiSilicon's include/configs/hi3511v110.h)
  common/cmd_bootm.c copies an uncompressed image in chunks and prints
  ``   Loading Kernel Image ... `` before the lone ``OK``.
* ``go``: the emulator cannot execute ARM code: it prints
  ``## Starting application at 0x%08lX ...`` and the CPU runs away (the
  board hangs until reset or power cycle), which is what a jump into data
  does on the real board.
* ``loadb``: prints the kermit ready line; the kermit protocol is not
  modelled (the command waits for Ctrl-C and reports the abort).
* ``bootm``: the header checks of :mod:`emulators.hi3511.uimage`, then the
  Linux model in :mod:`emulators.hi3511.kernel`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulators.hi3511 import profile, uimage
from emulators.hi3511.cmd_mem import hexarg, strtoul, usage
from emulators.hi3511.shell import Command, find_cmd

if TYPE_CHECKING:
    from emulators.hi3511.uboot import UBoot


NO_HELP = "- No help available.\n"


def do_help(ub: UBoot, argv: list[str], flag: int) -> int:
    if len(argv) == 1:
        ub.con.puts("".join(c.usage for c in sorted(ub.table.values(), key=lambda c: c.name)))
        return 0
    rc = 0
    for name in argv[1:]:
        c = find_cmd(ub.table, name)
        if c is None:
            ub.con.puts(
                f"Unknown command '{name}' - try 'help' without arguments for list of all "
                "known commands\n\n"
            )
            rc = 1
            continue
        ub.con.puts(f"{c.name} {c.help or NO_HELP}\n")
    return rc


def do_echo(ub: UBoot, argv: list[str], flag: int) -> int:
    out = []
    newline = True
    for i, arg in enumerate(argv[1:]):
        if i:
            out.append(" ")
        if arg.endswith("\\c") and i == len(argv) - 2:
            arg = arg[:-2]
            newline = False
        out.append(arg)
    ub.con.puts("".join(out) + ("\n" if newline else ""))
    return 0


def do_version(ub: UBoot, argv: list[str], flag: int) -> int:
    ub.con.puts(f"\n{profile.VERSION_STRING}\n")
    return 0


def do_bdinfo(ub: UBoot, argv: list[str], flag: int) -> int:
    mac = [int(x, 16) for x in (ub.getenv("ethaddr") or "0:0:0:0:0:0").split(":")[:6]]
    ip = ub.getenv("ipaddr") or "0.0.0.0"
    baud = strtoul(ub.getenv("baudrate") or "115200", 10)[0]
    lines = [
        "arch_number = 0x00000F0B\n",
        f"env_t       = 0x{0:08X}\n",
        "boot_params = 0xE0000100\n",
        f"{'DRAM bank':<12s}= 0x00000000\n",
        f"{'-> start':<12s}= 0x{profile.RAM_BASE:08X}\n",
        f"{'-> size':<12s}= 0x{profile.RAM_SIZE:08X}\n",
        "ethaddr     =" + "".join(f"{':' if i else ' '}{b:02X}" for i, b in enumerate(mac)),
        f"\nip_addr     = {ip}",
        f"\nbaudrate    = {baud} bps\n",
    ]
    ub.con.puts("".join(lines))
    return 0


def do_printenv(ub: UBoot, argv: list[str], flag: int) -> int:
    env = ub.env
    if len(argv) == 1:
        text = "".join(f"{k}={v}\n" for k, v in env.vars.items())
        ub.con.puts(text + f"\nEnvironment size: {env.used()}/{env.size - 4} bytes\n")
        return 0
    rc = 0
    for name in argv[1:]:
        value = env.get(name)
        if value is None:
            ub.con.puts(f'## Error: "{name}" not defined\n')
            rc += 1
        else:
            ub.con.puts(f"{name}={value}\n")
    return rc


def do_setenv(ub: UBoot, argv: list[str], flag: int) -> int:
    if len(argv) < 2:
        return usage(ub, "setenv")
    name = argv[1]
    if "=" in name:
        ub.con.puts(f"## Error: illegal character '=' in variable name \"{name}\"\n")
        return 1
    value = " ".join(argv[2:]) if len(argv) > 2 else None
    if name in ("ethaddr", "serial#") and ub.env.get(name) is not None:
        ub.con.puts(f'Can\'t overwrite "{name}"\n')
        return 1
    if name == "baudrate" and value is not None:
        baud = strtoul(value, 10)[0]
        if baud not in (9600, 19200, 38400, 57600, 115200):
            ub.con.puts(f"## Baudrate {baud} bps not supported\n")
            return 1
        ub.con.puts(f"## Switch baudrate to {baud} bps and press ENTER ...\n")
        ub.con.uart.drain(1.0)
        ub.con.uart.set_baud(baud)
        while ub.con.getc() != 0x0D:
            pass
    ub.env.set(name, value)
    return 0


def do_saveenv(ub: UBoot, argv: list[str], flag: int) -> int:
    con = ub.con
    v = ub.variant
    start, end = v.env_addr, v.env_addr + profile.SECTOR_SIZE - 1
    from emulators.hi3511.cmd_flash import sect_erase, sect_protect

    con.puts("Saving Environment to Flash...\n")
    # CFG_ENV_SECT_SIZE > CFG_ENV_SIZE: the whole sector is rewritten, old rest included
    sector = ub.env.encode() + ub.flash.read(
        v.env_offset + v.env_size, profile.SECTOR_SIZE - v.env_size
    )
    if sect_protect(ub, False, start, end):
        return 1
    con.puts("Erasing Flash...")
    rc = 0
    if sect_erase(ub, start, end) == 0:
        con.puts("Writing to Flash... ")
        err = ub.flash_write(sector, start, quiet=False)
        if err:
            con.puts(err)
            rc = 1
        else:
            con.puts("done\n")
    else:
        return 1
    sect_protect(ub, True, start, end)
    return rc


def do_reset(ub: UBoot, argv: list[str], flag: int) -> int:
    ub.reset()
    return 0


def do_go(ub: UBoot, argv: list[str], flag: int) -> int:
    if len(argv) < 2:
        return usage(ub, "go")
    addr = hexarg(argv[1])
    ub.con.puts(f"## Starting application at 0x{addr:08X} ...\n")
    ub.hang()
    return 0


def do_loadb(ub: UBoot, argv: list[str], flag: int) -> int:
    addr = hexarg(argv[1]) if len(argv) > 1 else ub.load_addr
    baud = strtoul(ub.getenv("baudrate") or "115200", 10)[0]
    ub.con.puts(f"## Ready for binary (kermit) download to 0x{addr:08X} at {baud} bps...\n")
    while ub.con.getc() != 0x03:
        pass
    ub.con.puts("## Binary (kermit) download aborted\n")
    return 1


def do_bootm(ub: UBoot, argv: list[str], flag: int) -> int:
    addr = hexarg(argv[1]) if len(argv) > 1 else ub.load_addr
    verify = not (ub.getenv("verify") or "").startswith("n")
    text, hdr = uimage.bootm_check(ub.mem_read, addr, verify=verify)
    ub.con.puts(text)
    if hdr is None:
        return 1
    text, outcome = uimage.bootm_boot(ub.mem_read, addr, hdr, watchdog=ub.variant.hisilicon)
    ub.con.puts(text)
    if outcome == "fail":
        return 1
    if outcome == "reset":
        ub.reset()
    if outcome == "standalone":
        ub.hang()
    ub.boot_linux(hdr)
    return 0


COMMANDS = [
    Command(
        "help",
        16,
        True,
        do_help,
        "help    - print online help\n",
        "[command ...]\n    - show help information (for 'command')\n"
        "'help' prints online help for the monitor commands.\n\n"
        "Without arguments, it prints a short usage message for all commands.\n\n"
        "To get detailed help information for specific commands you can type\n"
        "'help' with one or more command names as arguments.\n",
    ),
    Command("?", 16, True, do_help, "?       - alias for 'help'\n", ""),
    Command(
        "echo",
        16,
        False,
        do_echo,
        "echo    - echo args to console\n",
        "[args..]\n    - echo args to console; \\c suppresses newline\n",
    ),
    Command("version", 1, True, do_version, "version - print monitor version\n", "\n"),
    Command("bdinfo", 1, True, do_bdinfo, "bdinfo  - print Board Info structure\n", "\n"),
    Command(
        "printenv",
        16,
        True,
        do_printenv,
        "printenv- print environment variables\n",
        "\n    - print values of all environment variables\n"
        "printenv name ...\n    - print value of environment variable 'name'\n",
    ),
    Command(
        "setenv",
        16,
        False,
        do_setenv,
        "setenv  - set environment variables\n",
        "name value ...\n    - set environment variable 'name' to 'value ...'\n"
        "setenv name\n    - delete environment variable 'name'\n",
    ),
    Command(
        "saveenv",
        1,
        False,
        do_saveenv,
        "saveenv - save environment variables to persistent storage\n",
        "\n",
    ),
    Command("reset", 1, False, do_reset, "reset   - Perform RESET of the CPU\n", "\n"),
    Command(
        "go",
        16,
        True,
        do_go,
        "go      - start application at address 'addr'\n",
        "addr [arg ...]\n    - start application at address 'addr'\n"
        "      passing 'arg' as arguments\n",
    ),
    Command(
        "loadb",
        3,
        False,
        do_loadb,
        "loadb   - load binary file over serial line (kermit mode)\n",
        "[ off ] [ baud ]\n    - load binary file over serial line with offset 'off' "
        "and baudrate 'baud'\n",
    ),
    Command(
        "bootm",
        16,
        True,
        do_bootm,
        "bootm   - boot application image from memory\n",
        "[addr [arg ...]]\n    - boot application image stored in memory\n"
        "\tpassing arguments 'arg ...'; when booting a Linux kernel,\n"
        "\t'arg' can be the address of an initrd image\n",
    ),
]
