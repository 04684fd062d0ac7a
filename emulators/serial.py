"""The virtual UART: the device side of a serial line, behind a real pty.

The host end is a pty slave (``/dev/pts/N``, optionally behind a stable
symlink) that pyserial, picocom or minicom open like ``/dev/ttyUSB0``.
The device holds the master and one slave descriptor of its own, so a host
may close and reopen the port without the device seeing EIO.

Modelled behaviour and its limits:

* The device sees the baud the host set, custom rates included (TCGETS2 on
  the slave reflects pyserial's setting; REFERENCE.md "ptys and pyserial"); a
  host at B0 (hung up) exchanges nothing with the device. When host and device
  bauds differ, bytes in both directions are resampled bit by bit as a real
  UART receiver would (start-bit detection, mid-bit sampling, 8N1), so a user
  at the wrong baud sees deterministic garbage, not clean text. A framing
  error still delivers the sampled byte (Linux delivers it unless INPCK/PARMRK
  ask otherwise).
* Fast mode does not pace. Real-time mode paces device output at 10 bits per
  byte for 8N1 and delivers host input no faster than the wire would. The bytes
  of one device write leave back to back, as from a UART's shift register: a
  piece this process hands over late (a loaded host) reaches the host at once
  rather than leaving a gap the real line would not have; but never from before
  the host's last byte arrived (an answer does not leave before its request).
* Faults (seeded, deterministic): bit errors at a rate, dropped bytes, lost
  bursts (as USB adapters without flow control lose data), an overrun FIFO
  that drops output the host has not read yet, and a line that goes silent.
* One-byte faults (:class:`ByteFault`, armed with
  :meth:`VirtualUart.arm_byte_fault`; assumption: a line whose noise hits one
  chosen byte, so a test can aim at one Xmodem block or one ACK): the
  ``at_byte``-th byte (0 is the first) the host sends (``"host"``) or the
  device prints (``"device"``) is damaged (XORed with ``xor``) or lost on the
  line, once. Counting starts when the fault is armed or, with
  ``after_text``, right after the device has printed that text; with
  ``value`` only bytes of that value are counted (``value=0x06``: the N-th
  ACK). Bytes are counted on the line, as the other side's UART receives
  them (after resampling and the seeded faults). The device is not told: it
  receives the damaged byte, or nothing, exactly as over a real cable. When
  it strikes, the transcript gets a ``--`` note saying which byte it was.
* The pty is put in raw mode at the device's baud at creation, like an
  adapter already configured with ``stty``: output the device prints before
  the host opens the port is not garbled by the kernel's default speed. A
  host that then opens at another baud gets garbage, as on real hardware.
* When the device closes the link, the master closes: a host reading with
  pyserial gets ``SerialException`` at once, unread bytes are lost and the
  ``/dev/pts/N`` path disappears (REFERENCE.md).
* Burst delivery (``LinkFaults.chunk``; assumption, modelled on what a slow
  host, a USB adapter's latency timer or a network bridge such as ser2net
  does to a byte stream): the device's output is held and handed to the host
  in pieces of ``chunk`` bytes (or, with ``chunk_min``, of seeded random sizes
  between the two), so one host read returns kilobytes that end anywhere in a
  line. Nothing is lost or reordered. In fast mode the pause between pieces
  costs no wall time: a piece also leaves when the device waits for the host
  (a blocking read, a drain, polling for input twice without printing in
  between, a power cut), and the next piece waits until the host has read
  the previous one (at most 0.2 s), so the host's reads follow the pieces. In
  real-time mode a held piece also leaves ``chunk_pause_ms`` after the
  previous one (a bridge's send timer).
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import select
import struct
import termios
import threading
import time
import tty
from dataclasses import dataclass
from pathlib import Path

from emulators.transcript import Transcript

_SPEEDS = {
    getattr(termios, name): int(name[1:])
    for name in dir(termios)
    if name.startswith("B") and name[1:].isdigit()
}


# Linux struct termios2: four tcflag_t, c_line, 19 c_cc, then c_ispeed and c_ospeed.
_TCGETS2 = 0x802C542A  # _IOR('T', 0x2A, struct termios2)
_TERMIOS2_SIZE = 44
_TERMIOS2_OSPEED = 40


class LinkDown(Exception):
    """Raised in the device thread when the link is interrupted (power cut or close)."""


@dataclass
class LinkFaults:
    """Seeded faults on the line. Rates are probabilities.

    ``bit_error_rate`` per bit, ``drop_rate`` per byte, ``burst_rate`` the
    chance per byte that a burst of ``burst_len`` bytes is lost, ``fifo``
    the adapter's buffer: device output that would push the host's unread
    bytes past it is dropped. ``silent_after`` makes the line go dead after
    that many device output bytes. ``directions`` is "both", "tx" (device to
    host) or "rx" (host to device).

    ``chunk`` delivers the device's output in bursts of that many bytes (with
    ``chunk_min``: seeded random sizes from ``chunk_min`` to ``chunk``), held
    back in between; ``chunk_pause_ms`` is the longest a piece is held in
    real-time mode (see the module docstring). Bursts lose nothing and apply
    to device output whatever ``directions`` says.
    """

    bit_error_rate: float = 0.0
    drop_rate: float = 0.0
    burst_rate: float = 0.0
    burst_len: int = 64
    fifo: int | None = None
    silent_after: int | None = None
    directions: str = "both"
    chunk: int | None = None
    chunk_min: int | None = None
    chunk_pause_ms: int = 200

    def __post_init__(self) -> None:
        if self.chunk is not None and self.chunk < 1:
            raise ValueError(f"chunk must be at least 1 byte, not {self.chunk}")
        if self.chunk_min is not None:
            if self.chunk is None:
                raise ValueError("chunk_min needs chunk (the largest piece)")
            if not 1 <= self.chunk_min <= self.chunk:
                raise ValueError(f"chunk_min must be from 1 to chunk ({self.chunk})")
        if self.chunk_pause_ms < 0:
            raise ValueError("chunk_pause_ms cannot be negative")

    @property
    def bursts(self) -> bool:
        return self.chunk is not None

    @property
    def active(self) -> bool:
        return bool(
            self.bit_error_rate
            or self.drop_rate
            or self.burst_rate
            or self.fifo is not None
            or self.silent_after is not None
        )

    def applies(self, direction: str) -> bool:
        return self.directions in ("both", direction)


BYTE_FAULT_ACTIONS = ("corrupt", "drop")


@dataclass
class ByteFault:
    """Damage (``corrupt``: XOR with ``xor``) or lose (``drop``) one byte on the line.

    ``direction``: ``"host"`` (a byte the host sends) or ``"device"`` (a byte the
    device prints). ``at_byte``: how many bytes pass intact first (0: the first
    one). ``after_text``: count from the end of the first appearance of this text
    in the device's output after arming (empty: from arming). ``value``: count
    only bytes of this value. ``fired`` is set when it strikes; ``original`` is
    the byte it struck and ``where`` which byte of the line it was (counted from
    the link's creation in that direction, 0 the first).
    """

    direction: str
    at_byte: int
    action: str
    xor: int = 0x01
    after_text: bytes = b""
    value: int | None = None
    fired: bool = False
    original: int | None = None
    where: int | None = None

    def __post_init__(self) -> None:
        if self.direction not in ("host", "device"):
            raise ValueError(f"direction must be host or device, not {self.direction!r}")
        if self.action not in BYTE_FAULT_ACTIONS:
            raise ValueError(f"action must be one of {', '.join(BYTE_FAULT_ACTIONS)}")
        if self.at_byte < 0:
            raise ValueError("at_byte must be >= 0")
        if not 1 <= self.xor <= 0xFF:
            raise ValueError(f"xor must be from 0x01 to 0xFF (a byte that changes), not {self.xor}")
        if self.value is not None and not 0 <= self.value <= 0xFF:
            raise ValueError(f"value must be a byte (0 to 0xFF), not {self.value}")
        self._counting = not self.after_text
        self._count = 0
        self._tail = b""

    def describe(self) -> str:
        who = "the host sends" if self.direction == "host" else "the device prints"
        of = f" of the 0x{self.value:02X} bytes" if self.value is not None else ""
        after = f" after {self.after_text.decode('latin-1')!r}" if self.after_text else ""
        return f"byte {self.at_byte} (from 0){of} {who}{after}"


def resample(data: bytes, tx_baud: int, rx_baud: int) -> bytes:
    """What an 8N1 receiver at ``rx_baud`` decodes from ``data`` sent at ``tx_baud``.

    The bytes go back to back on the wire, the line idles high before and
    after. The receiver waits for a low level, samples each of the 8 data
    bits and the stop bit at their middle by its own clock, then looks for
    the next start bit.
    """
    if tx_baud == rx_baud or not data:
        return bytes(data)
    bits = []
    for b in data:
        bits.append(0)
        bits.extend((b >> i) & 1 for i in range(8))
        bits.append(1)
    n = len(bits)

    def level(t: float) -> int:
        i = int(t * tx_baud)
        return bits[i] if 0 <= i < n else 1

    out = bytearray()
    t = 0.0
    end = n / tx_baud
    rx_bit = 1.0 / rx_baud
    while t < end:
        # find the next low level at or after t (levels change only on tx bit edges)
        i = int(t * tx_baud)
        while i < n and bits[i] == 1:
            i += 1
        if i >= n:
            break
        start = max(t, i / tx_baud)
        value = 0
        for k in range(8):
            value |= level(start + (k + 1.5) * rx_bit) << k
        out.append(value)
        t = start + 9.5 * rx_bit
    return bytes(out)


class VirtualUart:
    """Device side of a UART on a pty. Use as a context manager.

    Device-side API: :meth:`read`, :meth:`write`, :attr:`baud`,
    :meth:`set_baud`, :meth:`host_baud`, :meth:`pending_to_host`. The host
    opens :attr:`path`.
    """

    def __init__(
        self,
        baud: int = 115200,
        *,
        realtime: bool = False,
        faults: LinkFaults | None = None,
        seed: int = 0,
        link_path: str | os.PathLike[str] | None = None,
        transcript: Transcript | None = None,
    ) -> None:
        self.baud = baud
        self.realtime = realtime
        self.faults = faults or LinkFaults()
        self.transcript = transcript if transcript is not None else Transcript()
        self._rng = random.Random(seed)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self._set_pty_speed(baud)
        self.path = os.ttyname(self._slave)
        os.set_blocking(self._master, False)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._rx = bytearray()
        self._lock = threading.Lock()
        self._down = threading.Event()
        self._closed = False
        self._tx_count = 0
        self._burst_left = 0
        self._tx_free_at = 0.0
        self._rx_free_at = 0.0
        # burst delivery: output held for the host, the size of the piece being
        # filled, whether the device printed since it last polled for input
        self._held = bytearray()
        self._held_lock = threading.RLock()
        self._piece = 0
        self._burst_rng = random.Random(f"{seed}:bursts")
        self._polled = False
        self._last_piece_at = 0.0
        self._timer: threading.Thread | None = None
        self.burst_sizes: list[int] = []  # the pieces handed to the host, in order
        # one-byte faults and the bytes that crossed the line each way
        self._byte_faults: list[ByteFault] = []
        self._byte_lock = threading.Lock()
        self._line_count = {"host": 0, "device": 0}
        self.link_path: Path | None = None
        if link_path is not None:
            self.link_path = Path(link_path)
            if self.link_path.is_symlink() or self.link_path.exists():
                if not self.link_path.is_symlink():
                    raise FileExistsError(f"{self.link_path} exists and is not a symlink")
                self.link_path.unlink()
            self.link_path.symlink_to(self.path)

    # -- baud -------------------------------------------------------------
    def _set_pty_speed(self, baud: int) -> None:
        code = {v: k for k, v in _SPEEDS.items()}.get(baud)
        if code is None:
            return
        attrs = termios.tcgetattr(self._slave)
        attrs[4] = attrs[5] = code
        termios.tcsetattr(self._slave, termios.TCSANOW, attrs)

    def host_baud(self) -> int:
        """The baud the host has set on its end of the pty (0: the host hung up, B0).

        Read with TCGETS2, which reports the actual speed even for a custom rate
        (pyserial sets those with BOTHER), so a host at 123456 baud is not taken for
        one at the device's speed."""
        try:
            buf = fcntl.ioctl(self._slave, _TCGETS2, bytes(_TERMIOS2_SIZE))
            return struct.unpack_from("I", buf, _TERMIOS2_OSPEED)[0]
        except OSError:
            pass
        try:
            attrs = termios.tcgetattr(self._slave)
        except termios.error:
            return self.baud
        return _SPEEDS.get(attrs[5], 0)

    def set_baud(self, baud: int) -> None:
        """The device switches its UART to ``baud`` (e.g. after SETUART)."""
        self.baud = baud
        self.transcript.note(f"device baud {baud}")

    @property
    def byte_time(self) -> float:
        return 10.0 / self.baud

    # -- power / interruption -----------------------------------------------
    def interrupt(self) -> None:
        """Make the device thread's blocked read or write raise :class:`LinkDown`."""
        self._down.set()
        os.write(self._wake_w, b"x")

    def resume(self) -> None:
        """Accept device I/O again after :meth:`interrupt`; drops host input sent meanwhile."""
        while True:
            try:
                if not os.read(self._wake_r, 4096):
                    break
            except BlockingIOError:
                break
        self.discard_input()
        self._drop_held()
        self._down.clear()

    def discard_input(self) -> None:
        with self._lock:
            self._rx.clear()
        while True:
            try:
                if not os.read(self._master, 65536):
                    break
            except (BlockingIOError, OSError):
                break

    def _check(self) -> None:
        if self._down.is_set() or self._closed:
            if self._held:
                self._drop_held()
            raise LinkDown()

    # -- faults -------------------------------------------------------------
    def _apply_faults(self, data: bytes, direction: str) -> bytes:
        f = self.faults
        if not f.active or not f.applies(direction):
            return data
        out = bytearray()
        rng = self._rng
        for b in data:
            if direction == "tx" and f.silent_after is not None:
                if self._tx_count >= f.silent_after:
                    continue
                self._tx_count += 1
            if self._burst_left:
                self._burst_left -= 1
                continue
            if f.burst_rate and rng.random() < f.burst_rate:
                self._burst_left = f.burst_len - 1
                continue
            if f.drop_rate and rng.random() < f.drop_rate:
                continue
            if f.bit_error_rate:
                for bit in range(8):
                    if rng.random() < f.bit_error_rate:
                        b ^= 1 << bit
            out.append(b)
        return bytes(out)

    def arm_byte_fault(self, fault: ByteFault) -> ByteFault:
        """Arm a :class:`ByteFault`; it counts from now. Returns it."""
        with self._byte_lock:
            self._byte_faults.append(fault)
        return fault

    def disarm_byte_fault(self, fault: ByteFault) -> None:
        with self._byte_lock:
            if fault in self._byte_faults:
                self._byte_faults.remove(fault)

    def _strike(self, data: bytes, direction: str) -> bytes:
        """Apply the armed one-byte faults to ``data`` crossing the line
        (``direction``: "host" for host to device, "device" for device to host)."""
        base = self._line_count[direction]
        self._line_count[direction] = base + len(data)
        if not self._byte_faults or not data:
            return data
        with self._byte_lock:
            faults = list(self._byte_faults)
            hits: dict[int, ByteFault] = {}
            for f in faults:
                start = 0 if f._counting else self._anchor(f, data, direction)
                if start is None:
                    continue
                if f.direction != direction:
                    continue
                i = self._nth(f, data, start)
                if i is None:
                    continue
                self._byte_faults.remove(f)
                f.fired, f.original, f.where = True, data[i], base + i
                if i not in hits or f.action == "drop":
                    hits[i] = f
        if not hits:
            return data
        out = bytearray()
        last = 0
        for i in sorted(hits):
            f = hits[i]
            out += data[last:i]
            if f.action == "corrupt":
                out.append(data[i] ^ f.xor)
                done = f"corrupted 0x{data[i]:02X} -> 0x{data[i] ^ f.xor:02X}"
            else:
                done = f"dropped 0x{data[i]:02X}"
            last = i + 1
            self.transcript.note(f"link fault: {f.describe()}: {done}")
        out += data[last:]
        return bytes(out)

    @staticmethod
    def _anchor(f: ByteFault, data: bytes, direction: str) -> int | None:
        """Look for ``f.after_text`` in device output; where counting starts in
        ``data`` once it is seen (None: not yet)."""
        if direction != "device":
            return None
        text = f.after_text
        buf = f._tail + data
        at = buf.find(text)
        if at < 0:
            f._tail = buf[-(len(text) - 1) :] if len(text) > 1 else b""
            return None
        f._counting = True
        f._tail = b""
        end = at + len(text) - (len(buf) - len(data))
        # a host-side fault counts from the host's next byte
        return end if f.direction == "device" else None

    @staticmethod
    def _nth(f: ByteFault, data: bytes, start: int) -> int | None:
        """The index in ``data`` of the byte ``f`` strikes, counting from ``start``
        (None: not in this piece; the count moves on)."""
        need = f.at_byte - f._count
        if f.value is None:
            if start + need < len(data):
                return start + need
            f._count += len(data) - start
            return None
        mark = bytes([f.value])
        i = data.find(mark, start)
        while i >= 0:
            if need == 0:
                return i
            need -= 1
            f._count += 1
            i = data.find(mark, i + 1)
        return None

    def silent(self) -> bool:
        f = self.faults
        return f.silent_after is not None and self._tx_count >= f.silent_after

    # -- host -> device -------------------------------------------------------
    def _fill(self, timeout: float | None) -> bool:
        """Wait for host bytes; True if some were added to the buffer."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._check()
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            r, _, _ = select.select([self._master, self._wake_r], [], [], wait)
            self._check()
            if self._master in r:
                try:
                    raw = os.read(self._master, 65536)
                except BlockingIOError:
                    raw = b""
                except OSError as e:  # EIO: no slave open (cannot happen while we hold one)
                    if e.errno != errno.EIO:
                        raise
                    raw = b""
                if raw:
                    host = self.host_baud()
                    # a hung-up line (B0) carries nothing
                    data = resample(raw, host, self.baud) if host else b""
                    if self.silent():
                        data = b""
                    data = self._apply_faults(data, "rx")
                    data = self._strike(data, "host")
                    if self.realtime:
                        now = time.monotonic()
                        self._rx_free_at = max(self._rx_free_at, now) + len(raw) * self.byte_time
                        self._sleep_until(self._rx_free_at)
                    if data:
                        self.transcript.add("host", data)
                        with self._lock:
                            self._rx += data
                        return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def read(self, n: int = 1, timeout: float | None = None) -> bytes:
        """Up to ``n`` bytes from the host; waits up to ``timeout`` (None: forever)
        for the first one. Returns b"" on timeout. Raises :class:`LinkDown`."""
        with self._lock:
            if self._rx:
                out = bytes(self._rx[:n])
                del self._rx[:n]
                return out
        if self._held and not self._input_ready():
            if timeout is None or timeout > 0:
                self._flush_held()  # the device waits for the host
            else:
                self._poll_idle()
        if not self._fill(timeout):
            return b""
        with self._lock:
            out = bytes(self._rx[:n])
            del self._rx[:n]
            return out

    def read_exact(self, n: int, timeout: float | None = None) -> bytes:
        """Exactly ``n`` bytes, or fewer if ``timeout`` passes between bytes."""
        out = bytearray()
        while len(out) < n:
            chunk = self.read(n - len(out), timeout)
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def unread(self, data: bytes) -> None:
        """Push bytes back to be read again (a parser that looked ahead)."""
        with self._lock:
            self._rx[:0] = data

    def _input_ready(self) -> bool:
        r, _, _ = select.select([self._master], [], [], 0)
        return bool(r)

    def input_waiting(self) -> int:
        with self._lock:
            if self._rx:
                return len(self._rx)
        if self._input_ready():
            return 1
        if self._held:
            self._poll_idle()
        return 0

    # -- device -> host -------------------------------------------------------
    def pending_to_host(self) -> int:
        """Bytes the device sent that the host has not read yet. A device that asks
        waits for the host: held burst output is delivered first."""
        if self._held:
            self._flush_held()
        return self._pty_pending()

    def _pty_pending(self) -> int:
        buf = fcntl.ioctl(self._slave, termios.FIONREAD, b"\0\0\0\0")
        return struct.unpack("i", buf)[0]

    def _settled_pending(self) -> int:
        # The pty moves written bytes to the slave asynchronously (the tty
        # flip buffer): wait until the count stops changing.
        last = self._pty_pending()
        for _ in range(20):
            select.select([], [], [], 0.0005)
            now = self._pty_pending()
            if now == last:
                return now
            last = now
        return last

    def write(self, data: bytes | str) -> None:
        """Send bytes to the host (str is encoded as latin-1). Raises :class:`LinkDown`."""
        if isinstance(data, str):
            data = data.encode("latin-1")
        if not data:
            return
        self._check()
        self.transcript.add("dev", data)
        host = self.host_baud()
        out = resample(data, self.baud, host) if host else b""
        out = self._apply_faults(out, "tx")
        out = self._strike(out, "device")
        if self.faults.fifo is not None and self.faults.applies("tx"):
            room = max(0, self.faults.fifo - self._settled_pending())
            out = out[:room]
        if self.realtime:
            step = max(1, self.baud // 1000)  # about 10 ms of wire time per chunk
            # The bytes of one write are all in the UART's hands now: they leave back
            # to back from when the line is free (after the last write's bytes, if
            # that one is still on the wire or ended under 5 ms ago, an oversleep),
            # and a piece this process was late to hand over is not a gap on the
            # wire: it reaches the host at once, as from an adapter's buffer. Never
            # from before the host's last byte arrived: an answer does not leave before
            # the request it answers (it did, by the host's turnaround, in a busy run).
            now = time.monotonic()
            if now - self._tx_free_at < 0.005:
                start = max(self._tx_free_at, min(self._rx_free_at, now))
            else:
                start = now
            for i in range(0, len(out), step):
                piece = out[i : i + step]
                self._tx_free_at = start + len(piece) * self.byte_time
                # a byte reaches the host when its stop bit has left the wire
                self._sleep_until(self._tx_free_at)
                self._emit(piece)
                start = self._tx_free_at
        else:
            self._emit(out)

    # -- burst delivery ---------------------------------------------------------
    def _emit(self, data: bytes) -> None:
        if not self.faults.bursts:
            if self._held:  # bursts were switched off meanwhile: what is held goes first
                self._flush_held()
            self._send(data)
            return
        self._polled = False
        with self._held_lock:
            self._held += data
            while True:
                if not self._piece:
                    self._piece = self._next_piece_size()
                if len(self._held) < self._piece:
                    break
                piece = bytes(self._held[: self._piece])
                del self._held[: self._piece]
                self._piece = 0
                self._deliver(piece)
        if self.realtime:
            self._start_timer()

    def _next_piece_size(self) -> int:
        f = self.faults
        assert f.chunk is not None
        if f.chunk_min is None:
            return f.chunk
        return self._burst_rng.randint(f.chunk_min, f.chunk)

    def _deliver(self, piece: bytes) -> None:
        """Hand one piece to the host, once the host has read the previous one."""
        view = memoryview(piece)
        try:
            if not self.realtime:
                deadline = time.monotonic() + 0.2
                while self._pty_pending() and time.monotonic() < deadline:
                    self._check()
                    select.select([self._wake_r], [], [], 0.001)
            while view:
                self._check()
                try:
                    view = view[os.write(self._master, view) :]
                except BlockingIOError:
                    select.select([self._wake_r], [self._master], [], 0.5)
        except LinkDown:
            self._write_nowait(bytes(view))  # a power cut: what fits still reaches the host
            raise
        self.burst_sizes.append(len(piece))
        self._last_piece_at = time.monotonic()

    def _flush_held(self) -> None:
        """The device waits for the host: what is held goes out now (the burst ends)."""
        with self._held_lock:
            if self._held:
                piece = bytes(self._held)
                self._held.clear()
                self._piece = 0
                self._deliver(piece)

    def _poll_idle(self) -> None:
        # polling for input twice with nothing printed in between: the device idles
        if self._polled:
            self._flush_held()
        self._polled = True

    def _drop_held(self) -> None:
        """The link goes down: what fits in the pty still reaches the host, the rest is lost."""
        with self._held_lock:
            data = bytes(self._held)
            self._held.clear()
            self._piece = 0
        self._write_nowait(data)

    def _write_nowait(self, data: bytes) -> None:
        if not data or self._closed:
            return
        try:
            os.write(self._master, data)
        except OSError:
            pass

    def _start_timer(self) -> None:
        if self._timer is not None and self._timer.is_alive():
            return
        self._timer = threading.Thread(target=self._timer_loop, name="link-bursts", daemon=True)
        self._timer.start()

    def _timer_loop(self) -> None:
        """Real-time mode: a piece held ``chunk_pause_ms`` after the last one leaves."""
        pause = self.faults.chunk_pause_ms / 1000
        while not self._closed:
            with self._held_lock:
                due = self._held and time.monotonic() - self._last_piece_at >= pause
                if due:
                    try:
                        self._flush_held()
                    except LinkDown:
                        return
            if self._down.is_set():
                return
            time.sleep(min(pause, 0.05) or 0.01)

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            self._check()
            try:
                n = os.write(self._master, view)
                view = view[n:]
            except BlockingIOError:
                select.select([self._wake_r], [self._master], [], 0.5)

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until the host has read everything the device sent."""
        self._flush_held()
        deadline = time.monotonic() + timeout
        while self._pty_pending() and time.monotonic() < deadline:
            self._check()
            select.select([self._wake_r], [], [], 0.002)
        return self._pty_pending() == 0

    def _sleep_until(self, t: float) -> None:
        while True:
            self._check()
            left = t - time.monotonic()
            if left <= 0:
                return
            select.select([self._wake_r], [], [], left)

    # -- lifecycle -------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._down.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.link_path is not None and self.link_path.is_symlink():
            self.link_path.unlink()

    def __enter__(self) -> VirtualUart:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
