"""Network faults between an emulated device and its TFTP server.

:class:`UdpFaultProxy` is a seeded, TFTP-aware UDP relay on 127.0.0.1 that the
lab puts in front of a device's TFTP port when a scenario asks for
:class:`NetworkFaults` (datagram loss, delay, a cut after N datagrams).
"""

from __future__ import annotations

import os
import random
import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class NetworkFaults:
    """TFTP datagram faults between a device and its server (seeded).

    ``loss``: chance that a datagram is dropped; ``delay``: seconds added to each;
    ``cut_after``: after that many datagrams nothing passes any more (the
    server is gone mid-transfer)."""

    loss: float = 0.0
    delay: float = 0.0
    cut_after: int | None = None


class UdpFaultProxy:
    """A TFTP-aware UDP relay on 127.0.0.1 that injects :class:`NetworkFaults`.

    The device sends its request to :attr:`port`; the relay forwards it to the
    server from a socket of its own, and mirrors the server's transfer port
    (TFTP's TID) with a second socket, so the device talks to the relay for the
    whole transfer as it would to the server.
    """

    def __init__(self, upstream_port: int, faults: NetworkFaults | None = None, seed: int = 0):
        self.upstream = ("127.0.0.1", upstream_port)
        self.faults = faults or NetworkFaults()
        self._rng = random.Random(seed)
        self._listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._listen.bind(("127.0.0.1", 0))
        self.port = self._listen.getsockname()[1]
        self._wake_r, self._wake_w = os.pipe()
        # each session: (device addr, up socket, down socket, server tid or None)
        self._sessions: list[dict[str, Any]] = []
        self.forwarded = 0
        self.dropped = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="lab-udp-proxy", daemon=True)
        self._thread.start()

    def _pass(self) -> bool:
        f = self.faults
        if f.cut_after is not None and self.forwarded >= f.cut_after:
            self.dropped += 1
            return False
        if f.loss and self._rng.random() < f.loss:
            self.dropped += 1
            return False
        if f.delay:
            time.sleep(f.delay)
        self.forwarded += 1
        return True

    def _run(self) -> None:
        while not self._stop:
            socks = [self._listen, self._wake_r]
            for s in self._sessions:
                socks += [s["up"], s["down"]]
            try:
                ready, _, _ = select.select(socks, [], [], 0.5)
            except (OSError, ValueError):
                return
            for r in ready:
                if r is self._wake_r:
                    return
                if r is self._listen:
                    data, addr = self._listen.recvfrom(65536)
                    sess = next(
                        (s for s in self._sessions if s["dev"] == addr and s["tid"] is None), None
                    )
                    if sess is None:
                        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        up.bind(("127.0.0.1", 0))
                        down = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        down.bind(("127.0.0.1", 0))
                        sess = {"dev": addr, "up": up, "down": down, "tid": None}
                        self._sessions.append(sess)
                        self._reap()
                    if self._pass():
                        sess["up"].sendto(data, self.upstream)
                    continue
                for s in self._sessions:
                    if r is s["up"]:
                        data, addr = r.recvfrom(65536)
                        s["tid"] = addr
                        if self._pass():
                            # the first answer comes from the listen port's mirror
                            s["down"].sendto(data, s["dev"])
                    elif r is s["down"]:
                        data, addr = r.recvfrom(65536)
                        s["dev"] = addr
                        if s["tid"] is not None and self._pass():
                            s["up"].sendto(data, s["tid"])

    def _reap(self) -> None:
        while len(self._sessions) > 16:
            old = self._sessions.pop(0)
            old["up"].close()
            old["down"].close()

    def close(self) -> None:
        self._stop = True
        os.write(self._wake_w, b"x")
        self._thread.join(2)
        for s in self._sessions:
            s["up"].close()
            s["down"].close()
        self._sessions.clear()
        self._listen.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
