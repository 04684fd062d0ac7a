"""Real-time mode: the emulators spend time as the devices do, and the engines cope with it.

Every test here runs a device with ``realtime=True`` and checks that it takes at least the
time the device would take (U-Boot's autoboot countdown, the W90P745's ESC window, the NOR
flash's datasheet erase time, the UART's 10 bits a byte): a window is not cut short (a host
would miss it), the line is not faster than the wire. Those lower bounds hold on any machine:
a busy machine only makes things slower. Each is measured from a point the device cannot
precede (the host's write of the command, power-on, the device's own transcript), never
from when a possibly late host read saw something. That nothing is *stretched* (an engine
tuned on the emulator would be too slow on hardware) depends on the machine's speed, so it
is measured by ``make bench`` (bench/bench_realtime.py, bench_link, bench_hi3511,
bench_w90p745, bench_xr872) and reported in docs/performance.md, not asserted here.

The engine tests prove that the engines' timeouts are derived from the work, not guessed:
they do not give up on a device that is only slow (real-time erase, a 115200 baud page dump,
the XR872 ROM's console entry and sync). Waits for output allow the work plus
``HANG_MARGIN``: they only catch a device that hangs.
"""

from __future__ import annotations

import re
import struct
import threading
import time
import zlib
from contextlib import closing
from pathlib import Path

import pytest
import serial

from emulators.hi3511 import Hi3511Device
from emulators.serial import VirtualUart
from emulators.w90p745 import W90P745Device
from emulators.xr872 import XR872Device
from harness.firmware.hi3511 import vendor_flash

pytestmark = [pytest.mark.realtime, pytest.mark.timeout(60)]

BAUD = 115200
HANG_MARGIN = 20.0  # seconds added to every wait for output: a hang, not slowness, fails
ENV_OFFSET = 0x80000  # the environment sector, chip-relative (0x34080000)
ENV_SIZE = 0x10000


class TimedReader:
    """A pyserial host that keeps every byte with the time it arrived."""

    def __init__(self, path: str, baud: int = BAUD) -> None:
        self.ser = serial.Serial(path, baud, timeout=0.005)
        self.data = bytearray()
        self.times: list[float] = []  # arrival time of each byte
        self.pos = 0  # where the next search starts

    def pump(self) -> None:
        chunk = self.ser.read(max(1, self.ser.in_waiting))
        now = time.monotonic()
        self.data += chunk
        self.times += [now] * len(chunk)

    def wait_for(self, pattern: bytes, timeout: float) -> tuple[float, re.Match[bytes]]:
        """Wait for ``pattern`` after the last match; return the arrival time of its last byte."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout + HANG_MARGIN
        while True:
            m = rx.search(self.data, self.pos)
            if m:
                self.pos = m.end()
                return self.times[m.end() - 1], m
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{pattern!r} not seen in {timeout} s; got {bytes(self.data[-300:])!r}"
                )
            self.pump()

    def listen(self, seconds: float) -> bytes:
        """Everything that arrives in the next ``seconds``, from the last match on."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.pump()
        return bytes(self.data[self.pos :])

    def write(self, data: bytes) -> None:
        self.ser.write(data)

    def close(self) -> None:
        self.ser.close()


def device_times(dev, pattern: bytes) -> list[float]:
    """When the device began each write holding ``pattern`` (its own transcript): a lower
    bound on device time that no late host read can shorten."""
    return [c.t for c in dev.transcript.chunks if c.direction == "dev" and pattern in c.data]


def hi3511_flash(bootdelay: int) -> bytes:
    """The vendor flash with a saved environment (valid CRC) holding ``bootdelay``."""
    env = {
        "bootargs": "mem=72M console=ttyAMA0,115200 root=1f01 rootfstype=jffs2 "
        "mtdparts=phys_mapped_flash:2M(boot),13M(rootfs),1M(setting)",
        "bootcmd": "bootm 0x34100000",
        "bootdelay": str(bootdelay),
        "baudrate": "115200",
        "ethaddr": "00:25:07:00:00:3b",
        "ipaddr": "192.168.1.10",
        "serverip": "192.168.1.1",
        "netmask": "255.255.255.0",
    }
    body = b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items()) + b"\0"
    body += b"\0" * (ENV_SIZE - 4 - len(body))
    flash = bytearray(vendor_flash("A", uboot="upstream"))  # env at 0x80000
    flash[ENV_OFFSET : ENV_OFFSET + ENV_SIZE] = struct.pack("<I", zlib.crc32(body)) + body
    return bytes(flash)


def hi3511_at_prompt(dev: Hi3511Device) -> TimedReader:
    host = TimedReader(dev.path)
    dev.power_on()
    host.wait_for(rb"Hit any key to stop autoboot: +\d ", 5)
    host.write(b" ")
    host.wait_for(rb"hilinux # ", 3)
    return host


# -- emulators ------------------------------------------------------------------------------


def test_hi3511_autoboot_countdown_takes_a_second_per_step():
    with closing(
        Hi3511Device(initial_flash=hi3511_flash(2), realtime=True, uboot_variant="upstream")
    ) as dev:
        host = TimedReader(dev.path)
        try:
            dev.power_on()
            t2, _ = host.wait_for(rb"Hit any key to stop autoboot:  2 ", 5)
            t1, _ = host.wait_for(rb"\x08\x08\x08 1 ", 3)
            t0, _ = host.wait_for(rb"\x08\x08\x08 0 ", 3)
            host.wait_for(rb"## Booting image at 34100000", 3)
        finally:
            host.close()
        assert dev.crash is None
    assert t2 <= t1 <= t0
    (d2,) = device_times(dev, b"autoboot:  2 ")
    (d1,) = device_times(dev, b"\x08\x08\x08 1 ")
    (d0,) = device_times(dev, b"\x08\x08\x08 0 ")
    assert d1 - d2 >= 0.99, d1 - d2
    assert d0 - d1 >= 0.99, d0 - d1


def test_hi3511_key_inside_the_countdown_stops_it_at_once():
    with closing(
        Hi3511Device(initial_flash=hi3511_flash(2), realtime=True, uboot_variant="upstream")
    ) as dev:
        host = TimedReader(dev.path)
        try:
            dev.power_on()
            host.wait_for(rb"Hit any key to stop autoboot:  2 ", 5)
            host.write(b"x")
            host.wait_for(rb"\x08\x08\x08 0 \r\nhilinux # ", 2)
            late = host.listen(0.3)
        finally:
            host.close()
        assert dev.crash is None
    countdown = bytes(host.data[host.data.index(b"autoboot") :])
    assert b" 1 " not in countdown  # stopped in the first second, not after it
    assert late == b""  # the key was consumed, not taken as a command


def test_hi3511_autoboot_window_is_not_cut_short_for_a_slow_host():
    """A host that reads nothing for 0.8 s can still stop the countdown: in real time the
    window is the device's whole second, not fast mode's grace after the host read."""
    with closing(
        Hi3511Device(initial_flash=hi3511_flash(2), realtime=True, uboot_variant="upstream")
    ) as dev:
        host = TimedReader(dev.path)
        try:
            dev.power_on()
            time.sleep(0.8)
            host.write(b" ")
            # a busy machine may deliver the key in the second second: still stopped
            host.wait_for(
                rb"Hit any key to stop autoboot:  2 (\x08\x08\x08 1 )?\x08\x08\x08 0 \r\nhilinux # ",
                3,
            )
        finally:
            host.close()
        assert dev.crash is None


def test_w90p745_esc_window_lasts_two_seconds_in_six_ticks():
    with closing(W90P745Device(realtime=True)) as dev:
        host = TimedReader(dev.path)
        try:
            dev.power_on()
            t_press, _ = host.wait_for(rb"Press ESC to enter debug mode", 5)
            ticks = []
            for pattern in (rb" \.",) + (rb"\.",) * 5:
                t, _ = host.wait_for(pattern, 2)
                ticks.append(t - t_press)
            host.write(b" ")  # too late, and not ESC anyway
            host.wait_for(rb"Cache enabled!", 3)
        finally:
            host.close()
        assert dev.crash is None
    assert len(ticks) == 6
    (d_press,) = device_times(dev, b"Press ESC to enter debug mode")
    dots = [t - d_press for t in device_times(dev, b".") if t > d_press][:6]
    # the k-th tick comes no sooner than k sixths of the 2 s window
    assert all(d >= (k + 1) * 2 / 6 - 0.01 for k, d in enumerate(dots)), dots


def test_w90p745_esc_inside_the_window_gives_the_prompt():
    with closing(W90P745Device(realtime=True)) as dev:
        host = TimedReader(dev.path)
        try:
            dev.power_on()
            host.wait_for(rb"Press ESC to enter debug mode", 5)
            host.wait_for(rb" \.", 1)
            host.write(b"a")  # other keys are read and ignored
            host.wait_for(rb"\.\.", 1.5)
            host.write(b"\x1b")
            host.wait_for(rb"\r\n\r\nbootloader > ", 1)
        finally:
            host.close()
        assert dev.crash is None
    tail = bytes(host.data[host.data.index(b"Press ESC") :])
    window = tail[: tail.index(b"\r\n\r\nbootloader > ")]
    # ESC ends the window at once: fewer than its six ticks, then the prompt
    assert 3 <= window.count(b".") < 6, tail
    assert b"Cache enabled" not in tail


def test_hi3511_sector_erase_takes_its_datasheet_time():
    """S29GL128-class profile: 0.5 s per 128 KiB sector, one dot as each one finishes."""
    with closing(
        Hi3511Device(
            initial_flash=vendor_flash("A", uboot="upstream"),
            realtime=True,
            uboot_variant="upstream",
        )
    ) as dev:
        host = hi3511_at_prompt(dev)
        try:
            t_cmd = time.monotonic()
            host.write(b"erase 0x34200000 +0x40000\r")
            host.wait_for(rb"erase 0x34200000 \+0x40000\r*\n\r\n", 2)
            t_dot1, _ = host.wait_for(rb"\.", 2)
            t_dot2, _ = host.wait_for(rb"\.", 2)
            host.wait_for(rb" done\r\nErased 2 sectors\r\nhilinux # ", 2)
        finally:
            host.close()
        assert dev.crash is None
        assert dev.flash.read(0x200000, 0x40000) == b"\xff" * 0x40000
    # each 128 KiB sector takes 0.5 s: its dot cannot come sooner after the command
    assert t_dot1 - t_cmd >= 0.5, t_dot1 - t_cmd
    assert t_dot2 - t_cmd >= 1.0, t_dot2 - t_cmd


def test_hi3511_console_output_runs_at_the_baud():
    with closing(
        Hi3511Device(
            initial_flash=vendor_flash("A", uboot="upstream"),
            realtime=True,
            uboot_variant="upstream",
        )
    ) as dev:
        host = hi3511_at_prompt(dev)
        try:
            t_cmd = time.monotonic()
            host.write(b"md 0x34000000 0x200\r")
            start = len(host.data)
            host.wait_for(rb"md 0x34000000 0x200\r*\n", 2)
            host.wait_for(rb"340007f0:[^\n]*\n\r?hilinux # ", 5)
        finally:
            host.close()
        assert dev.crash is None
    n = len(host.data) - start
    assert n > 5000
    # the echo and the output cannot arrive sooner than the wire carries them (the device
    # sends about 10 ms of wire time at once, then waits for it)
    wire = n * 10 / BAUD
    assert host.times[-1] - t_cmd >= wire - 0.011, (host.times[-1] - t_cmd, wire)


def test_host_input_reaches_the_device_no_faster_than_the_wire():
    data = bytes(range(256)) * 9  # 2304 bytes: 0.2 s at 115200
    with VirtualUart(BAUD, realtime=True) as uart:
        host = serial.Serial(uart.path, BAUD, timeout=1)
        try:
            got = bytearray()
            t0 = time.monotonic()
            writer = threading.Thread(target=host.write, args=(data,))
            writer.start()
            while len(got) < len(data):
                chunk = uart.read(4096, timeout=2)
                assert chunk, "input stopped"
                got += chunk
            spent = time.monotonic() - t0
            writer.join()
        finally:
            host.close()
    assert bytes(got) == data
    wire = len(data) * 10 / BAUD
    assert spent >= wire * 0.98, (spent, wire)


def test_link_output_is_paced_at_9600_too():
    data = b"U" * 480  # 0.5 s at 9600
    with VirtualUart(9600, realtime=True) as uart:
        host = serial.Serial(uart.path, 9600, timeout=0.01)
        try:
            times: list[float] = []
            got = bytearray()
            t = threading.Thread(target=uart.write, args=(data,))
            t0 = time.monotonic()
            t.start()
            while len(got) < len(data) and time.monotonic() < t0 + 3:
                chunk = host.read(max(1, host.in_waiting))
                if chunk:
                    got += chunk
                    times.append(time.monotonic())
            t.join()
        finally:
            host.close()
    assert bytes(got) == data
    spent = times[-1] - t0
    # the last 10 ms chunk goes out at once, then its wire time is spent
    assert spent >= 0.5 - 0.011 - 0.005, spent


# -- engines ----------------------------------------------------------------------------------


def test_hi3511_engine_erase_waits_as_long_as_the_sectors_need():
    """Four sectors take 2 s in real time: the engine's timeout comes from the sector count
    and flinfo's erase timeout (one stall timeout per progress dot), so it neither gives up
    nor waits long after the last dot."""
    from recovery.hi3511.driver import UBoot
    from recovery.hi3511.flashmap import Region
    from recovery.transport import Port

    with closing(
        Hi3511Device(
            initial_flash=vendor_flash("A", uboot="upstream"),
            realtime=True,
            uboot_variant="upstream",
        )
    ) as dev:
        with Port(dev.path, BAUD, timeout=10) as port:
            dev.power_on()
            ub = UBoot(port)
            assert ub.attach(wait=10) == "autoboot"
            t0 = time.monotonic()
            n = ub.erase(Region("rootfs-head", 0x34200000, 0x80000))
            spent = time.monotonic() - t0
        assert dev.crash is None
        assert dev.flash.read(0x200000, 0x80000) == b"\xff" * 0x80000
        assert dev.flash.read(0x280000, 16) != b"\xff" * 16  # and not one sector more
    assert n == 4
    # flinfo is read first (about 0.3 s of console text at 115200), then 4 x 0.5 s
    assert spent >= 2.0, spent


def test_w90_engine_reads_pages_at_115200_in_real_time():
    from recovery.transport import Port
    from recovery.w90p745.driver import W90Console

    with closing(W90P745Device(realtime=True)) as dev:
        with Port(dev.path, BAUD, timeout=10) as port:
            dev.power_on()
            con = W90Console(port, notify=lambda _t: None)
            assert con.attach(wait=10) == "power-on"
            base = 0x7F020000  # the kernel image
            t0 = time.monotonic()
            pages = [con.read_page(base + i * 256, reads=1) for i in range(8)]
            spent = time.monotonic() - t0
        assert dev.crash is None
        assert b"".join(pages) == dev.flash.read(0x20000, 8 * 256)
    assert con.page_retries == 0
    # a lower bound that holds for any way of asking: a page's 16 lines alone are
    # 16 x 68 bytes (`[%08X] %08X %08X - %08X %08X  <16 ascii>\r\n`) at 11520 B/s; the
    # header, the echo and the prompt come on top (the engine asks with a bare `d`)
    wire = 8 * 16 * 68 / (BAUD / 10)
    assert spent >= wire, (spent, wire)


def test_w90_engine_dump_of_one_image_in_real_time(tmp_path: Path):
    """The whole ``dump`` path in real time: attach at power-on (the engine's ESC reaches the
    loader while it prints its banner), ``ls -al``, the page."""
    from recovery.transport import Port
    from recovery.w90p745.operations import dump

    with closing(W90P745Device(realtime=True)) as dev:
        with Port(dev.path, BAUD, timeout=10) as port:
            dev.power_on()
            t0 = time.monotonic()
            result = dump(port, tmp_path, images=["0"], wait=10, progress=False,
                          notify=lambda _t: None)  # fmt: skip
            spent = time.monotonic() - t0
        assert dev.crash is None
        boot_info = dev.flash.read(0x10000, 0x48)
    assert [i.name for i in result.images] == ["BOOT INFO"]
    assert (tmp_path / result.images[0].file).read_bytes() == boot_info
    # at least the wire time of one page's console text (echo, 16 lines, prompt)
    assert spent >= 1150 * 10 / BAUD, spent


def test_xr872_engine_enters_the_rom_syncs_and_reads_in_real_time():
    """Console login and ``upgrade`` at 115200, the sync, a baud raise to 921600, a 16 KiB read:
    the firmware's real boot-log pauses and the ROM's answers must fit the engine's waits."""
    from recovery.xr872.driver import Options, Session

    with closing(XR872Device(realtime=True, seed=5)) as dev:
        opts = Options(port=dev.path, max_baud=921_600, progress=False)
        with Session(opts) as s:
            dev.power_on()
            s.enter()
            t1 = time.monotonic()
            data = s.read_range(0, 0x4000)
            t2 = time.monotonic()
            link = s.link()
        assert dev.crash is None
        assert data == dev.flash.read(0, 0x4000)
    assert link.entered_via == "console"
    assert link.baud == 921_600
    assert link.retries == 0
    # 16 KiB in 4 KiB FLASH_READs at 92160 B/s: 0.18 s of wire, plus the requests
    wire = 0x4000 / (921_600 / 10)
    assert t2 - t1 >= wire, (t2 - t1, wire)


def test_xr872_engine_erases_and_programs_with_the_chips_times():
    """A 64 KiB block erase (250 ms), 4 KiB sector erases (45 ms) and page programs (0.7 ms per
    256 bytes) answered only when done: the engine's waits cover them and the data lands."""
    from recovery.xr872 import brom
    from recovery.xr872.driver import Options, Session

    data = bytes(range(256)) * 16  # 4 KiB
    with closing(XR872Device(realtime=True, seed=6)) as dev:
        opts = Options(port=dev.path, max_baud=921_600, progress=False)
        with Session(opts) as s:
            dev.power_on()
            s.enter()
            t0 = time.monotonic()
            s.erase(brom.Erase.BLOCK_64K, 0xE0000)
            t1 = time.monotonic()
            for k in range(4):
                s.erase(brom.Erase.SECTOR_4K, 0xE0000 + k * 0x1000)
            t2 = time.monotonic()
            s.program(0xE0000, data)
            t3 = time.monotonic()
            back = s.read_chunk(0xE0000, len(data))
            retries = s.link().retries
        assert dev.crash is None
        assert dev.flash.read(0xE0000, len(data)) == data
        assert dev.flash.read(0xE1000, 0xF000) == b"\xff" * 0xF000
    assert back == data and retries == 0
    assert t1 - t0 >= 0.25, t1 - t0
    assert t2 - t1 >= 4 * 0.045, t2 - t1
    # 4 KiB + headers at 92160 B/s (44 ms) plus 16 pages x 0.7 ms
    assert t3 - t2 >= 0.044 + 0.011, t3 - t2
