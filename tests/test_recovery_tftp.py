"""recovery.tftp: the embedded server, driven over real UDP on 127.0.0.1 by tftpy's client,
by a raw client that speaks exactly what U-Boot sends (the ``timeout`` option), and by
curl (a third-party client) when it is installed. Issue 17: read-only by default, only
this job's files, one expected upload, every bad datagram answered or dropped."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest
import tftpy
from hypothesis import given
from hypothesis import strategies as st

from recovery.errors import NetworkError
from recovery.tftp.server import TftpServer, UnsafeName, check_name, safe_path


@pytest.fixture
def server():
    with TftpServer(None, ("127.0.0.1", 0)) as srv:
        yield srv


def client(server: TftpServer, **kw) -> tftpy.TftpClient:
    return tftpy.TftpClient("127.0.0.1", server.port, **kw)


def wait_settled(server: TftpServer) -> None:
    """A download is closed when the client's last ACK arrives, maybe after it returned."""
    deadline = time.monotonic() + 5
    while any(t.status == "started" for t in server.requests()) and time.monotonic() < deadline:
        time.sleep(0.01)


class Raw:
    """A TFTP client one packet at a time (what U-Boot's net/tftp.c sends)."""

    def __init__(self, server: TftpServer, source: str = "127.0.0.1") -> None:
        self.port = server.port
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind((source, 0))
        self.s.settimeout(5)
        self.tid: tuple[str, int] | None = None

    def request(self, op: int, name: bytes, **options: str) -> bytes:
        opts = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in options.items())
        self.s.sendto(struct.pack("!H", op) + name + b"\0octet\0" + opts, ("127.0.0.1", self.port))
        return self.recv()

    def recv(self) -> bytes:
        pkt, self.tid = self.s.recvfrom(70000)
        return pkt

    def send(self, pkt: bytes) -> None:
        assert self.tid is not None
        self.s.sendto(pkt, self.tid)

    def close(self) -> None:
        self.s.close()


def ack(n: int) -> bytes:
    return struct.pack("!HH", 4, n)


def data(n: int, payload: bytes) -> bytes:
    return struct.pack("!HH", 3, n) + payload


def test_published_files_download_and_the_expected_upload(server, tmp_path):
    blob = os.urandom(100_000)
    server.publish("fw.jffs2", blob)
    got = tmp_path / "got"
    client(server).download("fw.jffs2", str(got))
    assert got.read_bytes() == blob
    mark = server.expect_upload("dump.bin", len(blob))
    client(server).upload("dump.bin", str(got))
    t = server.wait_upload("dump.bin", 5, mark)
    assert t is not None and t.status == "done" and t.bytes == len(blob)
    assert server.take_upload("dump.bin") == blob
    server.publish("staged.bin", b"\x5a" * 1536)  # a multiple of 512: ends with an empty block
    client(server).download("staged.bin", str(got))
    assert got.read_bytes() == b"\x5a" * 1536
    wait_settled(server)
    assert [(t.kind, t.name, t.status) for t in server.requests()] == [
        ("download", "fw.jffs2", "done"),
        ("upload", "dump.bin", "done"),
        ("download", "staged.bin", "done"),
    ]


def test_nothing_is_served_from_disk(tmp_path):
    """Only this job's published files: a root full of earlier backups serves nothing."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "old-backup.bin").write_bytes(b"the user's earlier backup")
    with TftpServer(root, ("127.0.0.1", 0)) as srv:
        with pytest.raises(tftpy.TftpShared.TftpFileNotFoundError):
            client(srv).download("old-backup.bin", str(tmp_path / "x"))
        assert [t.status for t in srv.requests()] == ["missing"]


def test_uploads_nobody_expects_are_refused_and_nothing_is_written(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "old-backup.bin").write_bytes(b"the user's earlier backup")
    src = tmp_path / "evil"
    src.write_bytes(b"E" * 3000)
    with TftpServer(root, ("127.0.0.1", 0)) as srv:
        for name in ("old-backup.bin", "new.bin", "dir/sub.bin", "../planted.bin"):
            with pytest.raises(tftpy.TftpShared.TftpException):
                client(srv).upload(name, str(src), timeout=1)
        assert {t.status for t in srv.requests()} == {"refused"}
    assert sorted(p.name for p in root.iterdir()) == ["old-backup.bin"]
    assert (root / "old-backup.bin").read_bytes() == b"the user's earlier backup"
    assert not (tmp_path / "planted.bin").exists()


def test_an_upload_larger_than_expected_is_cut_off(server):
    server.expect_upload("dump.bin", 1000)
    raw = Raw(server)
    try:
        assert raw.request(2, b"dump.bin") == ack(0)
        raw.send(data(1, b"a" * 512))
        assert raw.recv() == ack(1)
        raw.send(data(2, b"b" * 512))  # 1024 > 1000
        assert raw.recv()[:4] == struct.pack("!HH", 5, 3)  # ERROR: disk full / too large
    finally:
        raw.close()
    t = server.wait_upload("dump.bin", 5)
    assert t is not None and t.status == "failed"
    # ... and one announced as too large (tsize) is refused before a byte
    server.expect_upload("dump2.bin", 1000)
    raw = Raw(server)
    try:
        assert raw.request(2, b"dump2.bin", tsize="5000")[:4] == struct.pack("!HH", 5, 3)
    finally:
        raw.close()


def test_uploads_only_from_the_camera(tmp_path):
    """Bound to loopback with the camera at 127.0.0.1: 127.0.0.2 may not upload."""
    with TftpServer(None, ("127.0.0.1", 0), clients={"192.168.1.10"}) as srv:
        srv.expect_upload("dump.bin", 4096)
        raw = Raw(srv, source="127.0.0.2")
        try:
            assert raw.request(2, b"dump.bin")[:4] == struct.pack("!HH", 5, 2)
        finally:
            raw.close()
        raw = Raw(srv, source="127.0.0.1")
        try:
            assert raw.request(2, b"dump.bin") == ack(0)
            raw.send(data(1, b"x" * 100))
            assert raw.recv() == ack(1)
        finally:
            raw.close()
        assert srv.take_upload("dump.bin") == b"x" * 100


@pytest.mark.parametrize("value", ["5", "20"])
@pytest.mark.parametrize("op", [1, 2])
def test_the_timeout_option_u_boot_sends_is_answered_with_an_oack(server, op, value):
    """U-Boot asks ``timeout`` 5 (upstream) or 20 (HiSilicon) in its RRQ/WRQ: OACK with
    the same value (RFC 2347/2349); then ACK 0 starts a download, DATA 1 an upload."""
    blob = os.urandom(1300)
    server.publish("fw.bin", blob)
    server.expect_upload("up.bin", 4096)
    raw = Raw(server)
    try:
        name = b"fw.bin" if op == 1 else b"up.bin"
        oack = raw.request(op, name, timeout=value)
        assert oack == b"\x00\x06timeout\x00" + value.encode() + b"\x00"
        if op == 1:
            got = b""
            raw.send(ack(0))
            for n in (1, 2, 3):
                pkt = raw.recv()
                assert pkt[:4] == data(n, b"")
                got += pkt[4:]
                raw.send(ack(n))
            assert got == blob
        else:
            for n, chunk in enumerate((blob[:512], blob[512:1024], blob[1024:]), 1):
                raw.send(data(n, chunk))
                assert raw.recv() == ack(n)
            assert server.take_upload("up.bin") == blob
    finally:
        raw.close()


def test_options_blksize_tsize_and_unknown_ones(server):
    blob = os.urandom(3000)
    server.publish("fw.bin", blob)
    raw = Raw(server)
    try:
        oack = raw.request(1, b"fw.bin", blksize="100000", tsize="0", colour="blue")
        fields = oack[2:-1].split(b"\0")
        assert dict(zip(fields[::2], fields[1::2], strict=True)) == {
            b"tsize": b"3000",
        }  # blksize out of range (RFC 2348: 8..65464) and unknown options are not accepted
        raw.close()
        raw = Raw(server)
        oack = raw.request(1, b"fw.bin", blksize="9000")
        assert oack == b"\x00\x06blksize\x001468\x00"  # reduced to one Ethernet frame
        raw.send(ack(0))
        assert len(raw.recv()) == 4 + 1468
    finally:
        raw.close()


def test_a_broken_upload_leaves_nothing(tmp_path):
    with TftpServer(None, ("127.0.0.1", 0), session_timeout=0.5) as srv:
        private = srv._private
        srv.expect_upload("dump.bin", 1 << 20)
        raw = Raw(srv)
        try:
            assert raw.request(2, b"dump.bin") == ack(0)
            raw.send(data(1, b"\xaa" * 512))
            assert raw.recv() == ack(1)
        finally:
            raw.close()  # ... and the client goes away in the middle of the transfer
        t = srv.wait_upload("dump.bin", 10)
        assert t is not None and t.status == "failed" and t.bytes == 512
        assert private is not None and [p.name for p in private.iterdir()] == [".camrescue-owner"]
    assert not private.exists()


def test_a_lost_ack_is_resent_and_a_lost_data_block_too(server):
    blob = os.urandom(1500)
    server.publish("fw.bin", blob)
    raw = Raw(server)
    try:
        first = raw.request(1, b"fw.bin")
        assert first[:4] == data(1, b"")
        again = raw.recv()  # no ACK: the server resends block 1 after its timeout
        assert again == first
    finally:
        raw.close()


def test_port_in_use_is_a_clear_error():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(NetworkError, match="in use") as e:
            TftpServer(None, ("127.0.0.1", port)).start()
    assert "--no-server" in (e.value.hint or "")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may bind port 69")
def test_privileged_port_is_a_clear_error():
    with pytest.raises(NetworkError, match="permission denied") as e:
        TftpServer(None, ("127.0.0.1", 69)).start()
    assert "sudo" in (e.value.hint or "")


def test_foreign_address_is_a_clear_error():
    with pytest.raises(NetworkError, match="not an address of this computer") as e:
        TftpServer(None, ("192.0.2.1", 0)).start()
    assert "--serverip" in (e.value.hint or "")


def test_stop_ends_the_thread_frees_the_port_and_removes_the_private_directory():
    server = TftpServer(None, ("127.0.0.1", 0)).start()
    port, private = server.port, server._private
    assert private is not None and private.is_dir()
    server.stop()
    assert server._thread is not None and not server._thread.is_alive()
    assert not private.exists()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port))


@given(st.text(max_size=40))
def test_safe_path_never_leaves_the_root(name):
    root = Path("/srv/tftp")
    try:
        p = safe_path(root, name)
    except UnsafeName:
        return
    assert root.resolve() in p.resolve().parents
    assert ".." not in Path(name).parts and not name.startswith("/")


@given(st.text(max_size=60))
def test_check_name_accepts_only_plain_printable_ascii(name):
    try:
        check_name(name)
    except UnsafeName:
        return
    assert name.isascii() and name.isprintable() and " " not in name
    assert not name.startswith("/") and "\\" not in name
    assert all(p not in ("", ".", "..") for p in name.split("/"))


curl = shutil.which("curl")


@pytest.mark.interop
@pytest.mark.skipif(curl is None, reason="curl is not installed")
def test_curl_tftp_client_interop(server, tmp_path):
    """curl sends options (tsize, blksize, timeout): the OACK must satisfy it."""
    blob = os.urandom(70_000)
    server.publish("fw.bin", blob)
    got = tmp_path / "got"
    url = f"tftp://127.0.0.1:{server.port}"
    subprocess.run([curl, "-s", "-o", str(got), f"{url}/fw.bin"], check=True, timeout=30)
    assert got.read_bytes() == blob
    mark = server.expect_upload("back.bin", len(blob))
    subprocess.run([curl, "-s", "-T", str(got), f"{url}/back.bin"], check=True, timeout=30)
    assert server.wait_upload("back.bin", 5, mark) is not None
    assert server.take_upload("back.bin") == blob
    r = subprocess.run([curl, "-s", "-o", str(got), f"{url}/../etc/passwd"], timeout=30)
    assert r.returncode != 0
