"""The XF16 camera application: boot log and the trimmed, password-protected console.

What is modelled (seed 002: "I have access to the UART, I also got the password
but half of the commands ... are deleted"; divadiow: "if the original firmware
has the console stuff enabled then you should just be able to dump with
PhoenixMC", i.e. the console's ``upgrade`` reboots into the ROM):

* The boot log follows the XRadio SDK's ``platform_init``/``platform_show_info``
  formats (``XRadio IoT WLAN SDK %s``, ``heap space [%p, %p), size %u``,
  ``cpu  clock %u Hz``, ``HF   clock %u Hz``); the camera lines after it are
  this model's (no capture of the XF16 log is public).
* A login: ``XF16 login: `` then ``Password: `` (not echoed); wrong
  credentials print ``Login incorrect``. User and password are in
  :mod:`emulators.xr872.profile` (``admin`` / ``xf16cam``).
* After login the prompt is ``$ ``. Commands answer in the XRadio SDK console
  style: output, then ``<ACK> 200 OK``; an unknown command prints
  ``[cmd ERR] unknown cmd '<name>'`` and ``<ACK> 400 Unknown command``; bad
  arguments ``<ACK> 401 Invalid argument``. The trimmed set: ``help``,
  ``mac``, ``ifconfig``, ``sysinfo``, ``version``, ``reboot``, ``upgrade``,
  ``logout``.
* ``upgrade`` answers ``<ACK> 200 OK`` and reboots with the PRCM boot flag set
  to "system update" (the SDK's ``cmd_upgrade_exec``): the ROM then sits
  silently in its UART download mode. ``reboot`` reboots normally.
* The MAC and AP name come from the sysinfo record (see
  :mod:`emulators.xr872.sysinfo`); a corrupt record makes the firmware print
  ``[sysinfo] invalid sysinfo, use default`` and use the efuse MAC.
"""

from __future__ import annotations

from collections.abc import Callable

from emulators.console import Console, Interrupted
from emulators.device import DeviceReset
from emulators.flash import NorFlash
from emulators.serial import VirtualUart
from emulators.timing import Clock
from emulators.xr872 import profile as P
from emulators.xr872 import sysinfo as S

PROMPT = "$ "
LOGIN_PROMPT = "XF16 login: "
PASSWORD_PROMPT = "Password: "

HELP = """\
help     - show this list
mac      - show the WLAN MAC address
ifconfig - show the network interface
sysinfo  - show the system information (MAC address, AP name)
version  - show the firmware version
reboot   - reboot the camera
upgrade  - reboot into the boot ROM's UART upgrade mode
logout   - end the session
"""


class _HiddenConsole(Console):
    """Password entry: the same line discipline without echo."""

    echo = False


class Firmware:
    """The application, from the boot log to the console. Never returns:
    reboots raise :class:`DeviceReset` (after calling ``set_upgrade`` for ``upgrade``)."""

    def __init__(
        self,
        uart: VirtualUart,
        clock: Clock,
        flash: NorFlash,
        seed: int,
        version: str,
        set_upgrade: Callable[[], None],
    ) -> None:
        self.uart = uart
        self.con = Console(uart)
        self.hidden = _HiddenConsole(uart)
        self.clock = clock
        self.flash = flash
        self.seed = seed
        self.version = version
        self.set_upgrade = set_upgrade
        self.info = S.SysInfo.for_seed(seed)
        self.sysinfo_valid = False

    # -- boot -------------------------------------------------------------------
    def load_sysinfo(self) -> None:
        rec = S.parse(self.flash.read(P.SYSINFO_OFFSET, S.RECORD_SIZE))
        self.sysinfo_valid = rec is not None
        self.info = rec if rec is not None else S.SysInfo.for_seed(self.seed)

    def boot_log(self) -> None:
        puts = self.con.puts
        self.clock.sleep(0.2)
        puts(f"\nXRadio IoT WLAN SDK {P.SDK_VERSION}\n\n")
        puts("heap space [0x22c7a0, 0x24bc00), size 128096\n\n")
        puts("cpu  clock 160000000 Hz\nHF   clock 40000000 Hz\n\n")
        if not self.sysinfo_valid:
            puts("[sysinfo] invalid sysinfo, use default\n")
        mode = "hostap" if self.info.wlan_mode == S.WLAN_HOSTAP else "station"
        puts(f"mac address: {S.format_mac(self.info.mac)}\n")
        puts(f"XF16 camera firmware {self.version}\n")
        self.clock.sleep(0.3)
        puts(f'wlan mode: {mode}, ssid "{self.info.ap_name}"\n\n')

    # -- console --------------------------------------------------------------------
    def run(self) -> None:
        self.load_sysinfo()
        self.boot_log()
        while True:
            if self._login():
                self._shell()

    def _login(self) -> bool:
        try:
            user = self.con.readline(LOGIN_PROMPT).strip()
            if not user:
                return False
            password = self.hidden.readline(PASSWORD_PROMPT)
        except Interrupted:
            self.con.puts("\n")
            return False
        if user == P.LOGIN_USER and password == P.LOGIN_PASSWORD:
            self.con.puts(f"\nWelcome to XF16 ({self.version})\n\n")
            return True
        self.clock.sleep(1.0)
        self.con.puts("\nLogin incorrect\n\n")
        return False

    def _shell(self) -> None:
        while True:
            try:
                line = self.con.readline(PROMPT)
            except Interrupted:
                self.con.puts("\n")
                continue
            words = line.split()
            if not words:
                continue
            name, args = words[0], words[1:]
            if name in ("logout", "exit"):
                self.con.puts("\n")
                return
            self._command(name, args)

    def _ack(self, code: int = 200) -> None:
        text = {200: "OK", 400: "Unknown command", 401: "Invalid argument", 402: "Fail"}[code]
        self.con.puts(f"<ACK> {code} {text}\n")

    def _command(self, name: str, args: list[str]) -> None:
        puts = self.con.puts
        mac = S.format_mac(self.info.mac)
        if name == "help":
            puts(HELP)
        elif name == "mac":
            if args:
                self._ack(401)
                return
            puts(f"{mac}\n")
        elif name == "ifconfig":
            puts(f"wlan0     HWaddr {mac}\n          inet addr:192.168.4.1  Mask:255.255.255.0\n")
        elif name == "sysinfo":
            mode = "hostap" if self.info.wlan_mode == S.WLAN_HOSTAP else "station"
            state = "valid" if self.sysinfo_valid else "invalid, defaults in use"
            puts(
                f"mac address : {mac}\n"
                f"ap ssid     : {self.info.ap_name}\n"
                f"wlan mode   : {mode}\n"
                f"sysinfo     : flash 0x{P.SYSINFO_OFFSET:08x}, {state}\n"
            )
        elif name == "version":
            puts(f"XF16 camera firmware {self.version}\nXRadio IoT WLAN SDK {P.SDK_VERSION}\n")
        elif name == "reboot":
            self._ack()
            self.clock.sleep(0.1)
            raise DeviceReset()
        elif name == "upgrade":
            self._ack()
            self.clock.sleep(0.01)
            self.set_upgrade()
            raise DeviceReset()
        else:
            puts(f"[cmd ERR] unknown cmd '{name}'\n")
            self._ack(400)
            return
        self._ack()
