"""Link pacing accuracy: a real-time :class:`~emulators.serial.VirtualUart` read and written by a
pyserial host, at 9600, 115200 and 921600 baud (target: within 2% of the wire's baud/10 bytes/s).

Device -> host: the device thread writes about 1.5 s of wire time in one ``write()``; the host
reads with pyserial and timestamps every chunk. The rate is the bytes after the first chunk over
the time from the first chunk to the last (the first chunk is sent at once, then each further
chunk waits for its own wire time), so start-up latency does not count.

Host -> device: the host writes the same amount in one ``write()``; the device thread reads; the
rate is all bytes over the time from the host's write to the device's last byte.

8N1 carries 10 bits per byte, so the wire limit is baud/10 bytes/s.

Engine matching cost: the CPU time :class:`~recovery.transport.Port` spends waiting for
a prompt behind a 64 KiB ``md.b`` dump (323 KB of text) and reading a 1 MB kernel log
line by line, in fast mode, over the plain link and through 4 KiB bursts. It must
grow linearly with the text (issue 19: no window that skips data, no O(n^2) re-search).
"""

from __future__ import annotations

import threading
import time

import serial

from emulators.serial import LinkFaults, VirtualUart
from recovery.transport import Port

BAUDS = (9600, 115200, 921600)
SECONDS = 1.5
TOLERANCE = 0.02


def _pattern(n: int) -> bytes:
    return (bytes(range(256)) * (n // 256 + 1))[:n]


def device_to_host(baud: int, seconds: float = SECONDS) -> tuple[float, float, bool]:
    """(host-measured bytes/s, device write() bytes/s, data intact)."""
    n = int(baud / 10 * seconds)
    data = _pattern(n)
    with VirtualUart(baud, realtime=True) as uart:
        host = serial.Serial(uart.path, baud, timeout=0.05)
        try:
            spent: list[float] = []

            def device() -> None:
                t0 = time.monotonic()
                uart.write(data)
                spent.append(time.monotonic() - t0)

            arrivals: list[tuple[float, int]] = []
            got = bytearray()
            thread = threading.Thread(target=device, daemon=True)
            thread.start()
            deadline = time.monotonic() + seconds * 3 + 2
            while len(got) < n and time.monotonic() < deadline:
                chunk = host.read(max(1, host.in_waiting))
                if chunk:
                    arrivals.append((time.monotonic(), len(chunk)))
                    got += chunk
            thread.join(5)
        finally:
            host.close()
    if len(arrivals) < 2:
        return 0.0, 0.0, False
    first_t, first_n = arrivals[0]
    rate = (len(got) - first_n) / (arrivals[-1][0] - first_t)
    dev_rate = n / spent[0] if spent else 0.0
    return rate, dev_rate, bytes(got) == data


def host_to_device(baud: int, seconds: float = SECONDS) -> tuple[float, bool]:
    """(device-measured bytes/s from the host's write to the last byte, data intact)."""
    n = int(baud / 10 * seconds)
    data = _pattern(n)
    with VirtualUart(baud, realtime=True) as uart:
        host = serial.Serial(uart.path, baud, timeout=0.05)
        try:
            got = bytearray()
            done: list[float] = []

            def device() -> None:
                while len(got) < n:
                    chunk = uart.read(65536, timeout=seconds + 2)
                    if not chunk:
                        break
                    got.extend(chunk)
                done.append(time.monotonic())

            thread = threading.Thread(target=device, daemon=True)
            thread.start()
            t0 = time.monotonic()
            host.write(data)
            thread.join(seconds * 3 + 5)
        finally:
            host.close()
    if not done:
        return 0.0, False
    return n / (done[0] - t0), bytes(got) == data


def _line(direction: str, baud: int, rate: float, intact: bool, extra: str = "") -> None:
    wire = baud / 10
    ratio = rate / wire
    verdict = "within" if abs(ratio - 1) <= TOLERANCE else "OUTSIDE"
    print(
        f"{direction} {baud:>6} baud: {rate:9.0f} B/s measured vs {wire:7.0f} B/s wire "
        f"= {ratio:.4f} ({verdict} the 2% target; data {'intact' if intact else 'DAMAGED'})"
        f"{extra}"
    )


MD_ROW = "34100000: 00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff    ..3DUfw.........\r\n"
LOG_LINE = "jffs2_scan_inode_node(): CRC failed on node at 0x00000038: Read 0x5a000025\r\n"


def matching_cost(text: str, patterns: list[str], faults: LinkFaults | None) -> tuple[float, int]:
    """(CPU seconds of the host side, expects) to read ``text`` + a prompt with ``patterns``
    until the first one (the prompt) matches."""
    data = (text + "hilinux # ").encode("latin-1")
    with VirtualUart(faults=faults) as uart, Port(uart.path) as port:
        writer = threading.Thread(target=lambda: (uart.write(data), uart.drain(30)))
        t0 = time.thread_time()
        writer.start()
        expects = 1
        while port.expect(patterns, timeout=30) != 0:
            expects += 1
        spent = time.thread_time() - t0
        writer.join(30)
    return spent, expects


def _matching() -> None:
    prompt = r"(?:\A|\n)hilinux # "
    cases = [
        ("prompt after a 64 KiB md.b", MD_ROW * 4096, [prompt]),
        ("1 MB kernel log, line by line", LOG_LINE * 13000, [prompt, r"[^\r\n]*\r?\n"]),
    ]
    for name, text, patterns in cases:
        for link, faults in (("plain", None), ("4 KiB bursts", LinkFaults(chunk=4096))):
            cpu, expects = matching_cost(text, patterns, faults)
            print(
                f"matching: {name} ({len(text) / 1e6:.2f} MB, {expects} expects), {link}: "
                f"{cpu:.2f} s CPU = {len(text) / max(cpu, 1e-9) / 1e6:.1f} MB/s"
            )


def main() -> None:
    _matching()
    print(f"each run carries {SECONDS} s of wire time, 8N1 (10 bits per byte)")
    for baud in BAUDS:
        rate, dev_rate, intact = device_to_host(baud)
        _line(
            "device -> host",
            baud,
            rate,
            intact,
            f"; device write() {dev_rate / (baud / 10):.4f} of wire",
        )
    for baud in BAUDS:
        rate, intact = host_to_device(baud)
        _line("host -> device", baud, rate, intact)


if __name__ == "__main__":
    main()
