"""Issue 17: a hostile neighbour on the LAN floods the engine's TFTP server during a real
backup of the emulated Hi3511 (the real CLI, real UDP on 127.0.0.0/8). The "camera" is
127.0.0.1; the neighbour sends from 127.0.0.2 (another host) and also from 127.0.0.1 with
names nobody expects: WRQs for the very names the camera uploads, traversal names,
non-ASCII names, directory names, oversized and garbage datagrams, and 300 half-open
sessions at once. The backup still completes byte-exact and nothing new appears in the
TFTP root, the working directory or the temporary directory."""

from __future__ import annotations

import os
import random
import socket
import struct
import tempfile
import threading

from test_hi3511_engine import camera, run_engine

from harness.firmware import vendor_flash

REGIONS = ("kernel", "rootfs", "setting")


def snapshot(d) -> dict[str, bytes]:
    return {
        str(p.relative_to(d)): (p.read_bytes() if p.is_file() else b"<dir>")
        for p in sorted(d.rglob("*"))
    }


class Neighbour(threading.Thread):
    def __init__(self, port: int, mac: str) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.expected = [f"camrescue-{mac}-{r}.bin".encode() for r in REGIONS]
        self.stop = threading.Event()
        self.sent = 0
        self.rng = random.Random(17)

    def names(self) -> list[bytes]:
        return [
            *self.expected,
            b"../planted.bin",
            b"/tmp/planted.bin",
            b"..\\planted.bin",
            b"C:planted.bin",
            b"dumps/planted.bin",
            b"newdir/",
            b".",
            b"caf\xc3\xa9.bin",
            b"\xff\xfe\xfd",
            b"a" * 400,
            b"old-backup.bin",
        ]

    def request(self, s: socket.socket, op: int, name: bytes, extra: bytes = b"") -> None:
        s.sendto(struct.pack("!H", op) + name + b"\0octet\0" + extra, ("127.0.0.1", self.port))
        self.sent += 1

    def run(self) -> None:
        far = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        far.bind(("127.0.0.2", 0))
        near = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        near.bind(("127.0.0.1", 0))
        half_open: list[socket.socket] = []
        try:
            rounds = 0
            while not self.stop.is_set():
                for name in self.names():
                    for op in (1, 2):
                        self.request(far, op, name, b"tsize\x0099999999\x00")
                        if name not in self.expected:
                            self.request(near, op, name, b"timeout\x005\x00")
                far.sendto(os.urandom(self.rng.randrange(1, 1500)), ("127.0.0.1", self.port))
                far.sendto(b"\x00\x03\x00\x01" + b"x" * 512, ("127.0.0.1", self.port))
                if rounds % 20 == 0:  # 300 half-open sessions at once, never continued
                    for s in half_open:
                        s.close()
                    half_open = []
                    for i in range(300):
                        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        s.bind(("127.0.0.1" if i % 2 else "127.0.0.2", 0))
                        self.request(
                            s, 1 + i % 2, self.expected[i % 3] if i % 2 == 0 else b"x%d" % i
                        )
                        half_open.append(s)
                rounds += 1
                self.stop.wait(0.005)
        finally:
            for s in (far, near, *half_open):
                s.close()


def test_a_backup_survives_a_hostile_neighbour_byte_exact(tmp_path, monkeypatch):
    flash = vendor_flash("A")
    root = tmp_path / "tftproot"
    root.mkdir()
    (root / "old-backup.bin").write_bytes(b"an earlier backup in the TFTP root")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.chdir(tmp_path)
    work_before = snapshot(tmp_path)
    out = tmp_path / "out" / "cam.bin"
    out.parent.mkdir()
    with camera(flash) as (dev, opts):
        code, r, _ = run_engine("hi3511", "info", *opts)
        assert code == 0, r
        mac = r["env"]["ethaddr"].replace(":", "").lower()
        port = int(opts[opts.index("--tftp-bind") + 1].rsplit(":", 1)[1])
        neighbour = Neighbour(port, mac)
        neighbour.start()
        try:
            code, r, err = run_engine(
                "hi3511", "backup", *opts, "--out", str(out), "--tftp-root", str(root)
            )
        finally:
            neighbour.stop.set()
            neighbour.join(10)
        assert dev.flash.read(0, len(flash)) == flash
    assert code == 0, (r, err[-2000:])
    assert neighbour.sent > 1000, neighbour.sent
    assert out.read_bytes() == flash[0x100000:]
    # nothing new anywhere: the root, the working directory, the temporary directory
    assert snapshot(root) == {"old-backup.bin": b"an earlier backup in the TFTP root"}
    after = snapshot(tmp_path)
    new = set(after) - set(work_before)
    assert new == {"out", "out/cam.bin", "out/cam.bin.json"}, sorted(new)
    assert list(tmp.iterdir()) == []
    assert not (tmp_path.parent / "planted.bin").exists()
    assert not os.path.exists("/tmp/planted.bin")
