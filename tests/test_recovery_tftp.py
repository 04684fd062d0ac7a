"""recovery.tftp: the embedded server, driven over real UDP on 127.0.0.1 by tftpy's client
(and by curl, a third-party client, when it is installed)."""

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
from recovery.tftp.server import TftpServer, UnsafeName, safe_path


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    with TftpServer(root, ("127.0.0.1", 0)) as server:
        yield root, server


def client(server: TftpServer) -> tftpy.TftpClient:
    return tftpy.TftpClient("127.0.0.1", server.port)


def test_download_upload_and_published_files(served, tmp_path):
    root, server = served
    data = os.urandom(100_000)
    (root / "fw.jffs2").write_bytes(data)
    got = tmp_path / "got"
    client(server).download("fw.jffs2", str(got))
    assert got.read_bytes() == data

    client(server).upload("dumps/kernel.bin", str(got))
    t = server.wait_upload("dumps/kernel.bin", 5)
    assert t is not None and t.status == "done" and t.bytes == len(data)
    assert (root / "dumps" / "kernel.bin").read_bytes() == data

    server.publish("staged.bin", b"\x5a" * 1536)  # a multiple of 512: ends with an empty block
    client(server).download("staged.bin", str(got))
    assert got.read_bytes() == b"\x5a" * 1536
    assert not (root / "staged.bin").exists()
    # the server closes a download when the client's last ACK arrives, which may be
    # just after the client returned
    deadline = time.monotonic() + 5
    while any(t.status == "started" for t in server.requests()) and time.monotonic() < deadline:
        time.sleep(0.01)
    kinds = [(t.kind, t.name, t.status) for t in server.requests()]
    assert kinds == [
        ("download", "fw.jffs2", "done"),
        ("upload", "dumps/kernel.bin", "done"),
        ("download", "staged.bin", "done"),
    ]


def test_missing_file_is_reported_to_client_and_recorded(served, tmp_path):
    _, server = served
    with pytest.raises(tftpy.TftpShared.TftpFileNotFoundError):
        client(server).download("nothere.bin", str(tmp_path / "x"))
    assert [t.status for t in server.requests("nothere.bin")] == ["missing"]


def test_traversal_and_absolute_names_are_refused(served, tmp_path):
    root, server = served
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the root")
    out = tmp_path / "got"
    for name in ("../secret.txt", str(secret), "/etc/passwd", "a/../../secret.txt"):
        with pytest.raises(tftpy.TftpShared.TftpException):
            client(server).download(name, str(out))
    assert not out.exists() or out.read_bytes() != secret.read_bytes()
    evil = tmp_path / "evil"
    evil.write_bytes(b"x" * 600)
    for name in ("../planted.bin", "/tmp/planted.bin"):
        with pytest.raises(tftpy.TftpShared.TftpException):
            client(server).upload(name, str(evil))
    assert not (tmp_path / "planted.bin").exists()
    assert [p.name for p in root.iterdir()] == []
    assert {t.status for t in server.requests()} <= {"refused", "missing"}


def test_symlink_out_of_the_root_is_refused(served, tmp_path):
    root, server = served
    (tmp_path / "outside.bin").write_bytes(b"secret")
    (root / "link.bin").symlink_to(tmp_path / "outside.bin")
    with pytest.raises(tftpy.TftpShared.TftpException):
        client(server).download("link.bin", str(tmp_path / "got"))
    assert server.requests("link.bin")[0].status == "refused"


def test_a_broken_upload_leaves_no_file(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    with TftpServer(root, ("127.0.0.1", 0), session_timeout=0.5) as server:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(struct.pack("!H", 2) + b"dump.bin\0octet\0", ("127.0.0.1", server.port))
            ack, tid = s.recvfrom(100)
            assert ack == struct.pack("!HH", 4, 0)
            s.sendto(struct.pack("!HH", 3, 1) + b"\xaa" * 512, tid)
            assert s.recvfrom(100)[0] == struct.pack("!HH", 4, 1)
            # ... and the client goes away in the middle of the transfer
        t = server.wait_upload("dump.bin", 10)
        assert t is not None and t.status == "failed" and t.bytes == 512
    assert list(root.iterdir()) == []


def test_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(NetworkError, match="in use") as e:
            TftpServer(tmp_path, ("127.0.0.1", port)).start()
    assert "--no-server" in (e.value.hint or "")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may bind port 69")
def test_privileged_port_is_a_clear_error(tmp_path):
    with pytest.raises(NetworkError, match="permission denied") as e:
        TftpServer(tmp_path, ("127.0.0.1", 69)).start()
    assert "sudo" in (e.value.hint or "")


def test_foreign_address_is_a_clear_error(tmp_path):
    with pytest.raises(NetworkError, match="not an address of this computer"):
        TftpServer(tmp_path, ("192.0.2.1", 0)).start()


def test_stop_ends_the_thread_and_frees_the_port(tmp_path):
    server = TftpServer(tmp_path, ("127.0.0.1", 0)).start()
    port = server.port
    server.stop()
    assert server._thread is not None and not server._thread.is_alive()
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


curl = shutil.which("curl")


@pytest.mark.interop
@pytest.mark.skipif(curl is None, reason="curl is not installed")
def test_curl_tftp_client_interop(served, tmp_path):
    root, server = served
    data = os.urandom(70_000)
    (root / "fw.bin").write_bytes(data)
    got = tmp_path / "got"
    url = f"tftp://127.0.0.1:{server.port}"
    subprocess.run([curl, "-s", "-o", str(got), f"{url}/fw.bin"], check=True, timeout=30)
    assert got.read_bytes() == data
    subprocess.run([curl, "-s", "-T", str(got), f"{url}/back.bin"], check=True, timeout=30)
    assert server.wait_upload("back.bin", 5) is not None
    assert (root / "back.bin").read_bytes() == data
    r = subprocess.run([curl, "-s", "-o", str(got), f"{url}/../etc/passwd"], timeout=30)
    assert r.returncode != 0
