"""A labgrid console driver for U-Boot 1.1.4 (the Hi3511's ``hilinux # ``).

labgrid's own :class:`labgrid.driver.UBootDriver` runs a command as ``echo MARK; CMD;
echo "$?"; echo MARK`` and reads the exit code from the ``$?`` line. U-Boot 1.1.4 built
without the hush shell (the Hi3511's, seed 000) has no ``$?``: its ``process_macros``
(common/main.c) expands only ``$(name)`` and ``${name}``, so ``echo "$?"`` prints ``$?``
and labgrid fails to read an exit code. Its default ``boot_command``, ``run bootcmd``,
is not in the seed's command set either (no ``run``, no ``boot``).

This driver keeps labgrid's driver shape and changes what 1.1.4 needs:

* **Markers only.** ``echo 'ABCD''EFGHIJ'; CMD; echo 'ABCD''EFGHIJ'``: 1.1.4 splits at
  ``;`` outside single quotes and strips one level of quotes (common/main.c
  ``run_command``, ``process_macros``), so the typed line never holds the joined marker
  and the output holds it twice. ``run_command`` goes on after a failing command, so the
  closing marker comes whatever CMD did.
* **Success from the command's own output.** The exit code is 1 when an output line
  matches one of :attr:`UBoot114Driver.failure_patterns` (default
  :data:`FAILURE_PATTERNS`, the messages 1.1.4 prints on failure), else 0.
* **No empty lines.** On an empty line upstream 1.1.4 repeats the last command when it
  was repeatable (``erase``, ``cp``, ``tftp``, ``md``). To find an idle prompt the driver
  sends Ctrl-C (upstream prints ``<INTERRUPT>``, HiSilicon's tree a bare newline; neither
  runs anything) and an echo marker.
* **A space stops the countdown, sent early.** Upstream ``abortboot`` takes any key;
  HiSilicon's tree (github zhhejun/u-boot-1.1.4, CONFIG_ZERO_BOOTDELAY_CHECK) only a
  space during the countdown, and with ``bootdelay`` 0 (the seed's board) only a key
  already waiting when the countdown starts. So the space goes out when the banner
  (``banner``, ``U-Boot 1.1.4``) shows and again at ``Hit any key to stop autoboot``.
* **The line limit.** A line of ``cbsize`` (CFG_CBSIZE, 256 on the seed's board) or more
  is refused before it is typed (1.1.4 would print ``## Command too long!``).
* **Booting.** ``boot()`` without a name types the value of ``bootcmd`` as read with
  ``printenv bootcmd``, which is what the board's own autoboot runs.

Sources: U-Boot 1.1.4 common/main.c, common/command.c, common/cmd_flash.c,
common/flash.c (``flash_perror``), common/cmd_bootm.c, net/tftp.c, net/net.c (the
messages in :data:`FAILURE_PATTERNS`); labgrid 26 labgrid/driver/ubootdriver.py (the
driver this one extends).
"""

from __future__ import annotations

import re

import attr
from labgrid.driver import UBootDriver
from labgrid.driver.exception import ExecutionError
from labgrid.factory import target_factory
from labgrid.step import step
from labgrid.util import Timeout, gen_marker, re_vt100
from pexpect import TIMEOUT

# The lines U-Boot 1.1.4 prints when a command fails (whole lines, after CR removal).
FAILURE_PATTERNS = (
    r"^Unknown command '.*' - try 'help'$",  # common/main.c run_command
    r"^Usage:$",  # common/command.c cmd_usage: wrong arguments
    r"^## Command too long!$",
    r"^\*\* Too many args",
    r"^## Error",  # printenv/setenv/bootm errors
    r"^\*\*\* ERROR",  # net: ipaddr/serverip not set
    r"^Error: ",  # cmd_flash: sector boundaries, address not in flash
    r"^Bad (address format|sector specification)",  # cmd_flash
    r"^(Can't write to protected Flash sectors|Outside available Flash|Flash not Erased)",
    r"^Timeout writing to Flash",  # common/flash.c flash_perror
    r"^(Bad Magic Number|Bad Header Checksum|Bad Data CRC)",  # cmd_bootm
    r"^(Wrong Image (Type|Format)|Unsupported Architecture)",  # cmd_bootm
    r"TFTP error: ",  # net/tftp.c
    r"Retry count exceeded",  # net/net.c
    r"^ping failed",  # cmd_net
)


@target_factory.reg_driver
@attr.s(eq=False)
class UBoot114Driver(UBootDriver):
    """labgrid's UBootDriver for U-Boot 1.1.4's simple parser (see the module docstring).

    Args (in addition to UBootDriver's):
        banner (str): regex of the boot loader's banner; the interrupt key is sent on it
        cbsize (int): the console buffer size; longer lines are refused (default 256)
        failure_patterns (tuple): regexes; an output line matching one means failure
    """

    prompt = attr.ib(default="hilinux # ", validator=attr.validators.instance_of(str))
    autoboot = attr.ib(
        default="Hit any key to stop autoboot", validator=attr.validators.instance_of(str)
    )
    interrupt = attr.ib(default=" ", validator=attr.validators.instance_of(str))
    banner = attr.ib(default=r"U-Boot 1\.1\.4", validator=attr.validators.instance_of(str))
    boot_command = attr.ib(default="", validator=attr.validators.instance_of(str))
    cbsize = attr.ib(default=256, validator=attr.validators.instance_of(int))
    failure_patterns = attr.ib(default=FAILURE_PATTERNS, converter=tuple)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._failures = [re.compile(p) for p in self.failure_patterns]

    def failed(self, lines: list[str]) -> bool:
        """True when one of ``lines`` is a failure message."""
        return any(p.search(line) for line in lines for p in self._failures)

    def _run(
        self,
        cmd: str,
        *,
        timeout: int = 30,
        codec: str = "utf-8",
        decodeerrors: str = "strict",
    ) -> tuple[list[str], list[str], int] | None:
        if self._status != 1:
            return None
        marker = gen_marker()
        quoted = f"'{marker[:4]}''{marker[4:]}'"
        line = f"echo {quoted}; {cmd}; echo {quoted}"
        if len(line) >= self.cbsize or not all(" " <= c <= "~" for c in line):
            raise ValueError(
                f"{cmd!r} does not fit U-Boot's {self.cbsize}-byte command line with the "
                "markers, or holds a control character"
            )
        self.console.sendline(line)
        _, before, _, _ = self.console.expect(
            f"{marker}\r?\n{re.escape(self.prompt)}", timeout=timeout
        )
        text = re_vt100.sub("", before.decode(codec, decodeerrors), count=1000000)
        lines = text.replace("\r", "").split("\n")
        try:
            out = lines[lines.index(marker) + 1 :]
        except ValueError:  # the opening marker was garbled on the line
            raise ExecutionError(cmd, lines, []) from None
        if out and out[-1] == "":
            out.pop()
        return out, [], 1 if self.failed(out) else 0

    @step()
    def _await_prompt(self) -> None:
        """Stop the autoboot countdown (or find an idle prompt) and get a checked prompt.

        The interrupt key goes out when the banner shows and again at the countdown: with
        ``bootdelay`` 0 HiSilicon's tree only stops for a key already waiting when the
        countdown starts (CONFIG_ZERO_BOOTDELAY_CHECK)."""
        timeout = Timeout(float(self.login_timeout))
        last_before = None
        self.console.write(self.interrupt.encode("latin-1"))  # the board may be counting now
        expectations = [re.escape(self.prompt), self.autoboot, self.banner, TIMEOUT]
        while True:
            index, before, _, _ = self.console.expect(expectations, timeout=2)
            if index == 0:
                break
            if index in (1, 2):
                self.console.write(self.interrupt.encode("latin-1"))
                continue
            if before == last_before:
                # idle: maybe at the prompt already; the marker tells
                try:
                    self._check_prompt()
                    break
                except TIMEOUT:
                    pass
            if timeout.expired:
                raise TIMEOUT(f"no U-Boot prompt {self.prompt!r} within {self.login_timeout} s")
            last_before = before
        self._check_prompt()
        for command in self.init_commands:
            self._run_check(command)

    def _check_prompt(self) -> None:
        """Ctrl-C (drops a half-typed line without running anything), then an echo marker
        whose output line must be followed by the prompt."""
        marker = gen_marker()
        self.console.write(b"\x03")
        self.console.sendline(f"echo '{marker[:4]}''{marker[4:]}'")
        try:
            self.console.expect(f"{marker}\r?\n{re.escape(self.prompt)}", timeout=3)
            self._status = 1
        except TIMEOUT:
            self._status = 0
            raise

    @step(args=["name"])
    def boot(self, name: str = "") -> None:
        """Boot the entry ``name`` of ``boot_commands``, else ``boot_command``, else what
        ``bootcmd`` holds (1.1.4 has no ``run``)."""
        if name or self.boot_command:
            super().boot(name)
            return
        for line in self._run_check("printenv bootcmd"):
            if line.startswith("bootcmd="):
                self.console.sendline(line[len("bootcmd=") :])
                return
        raise ExecutionError("printenv bootcmd", [], [])
