"""harness/netfaults.py: the TFTP fault proxy, over real UDP on 127.0.0.1.

Two clients: tftpy's (third-party, lock-step RFC 1350) and the emulated Hi3511's
U-Boot ``tftp`` command typed on its pty; the server behind the proxy is tftpy's.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import zlib

import pytest
import tftpy

from emulators.hi3511 import Hi3511Device
from harness.firmware.hi3511 import root_image, vendor_flash
from harness.lab.console import attach
from harness.lab.netfaults import TftpFaultProxy, TftpFaults, interpose
from harness.lab.tftp import TftpServer, uploaded

PROMPT = "hilinux # "


@pytest.fixture
def server(tmp_path):
    with TftpServer(tmp_path / "srv") as s:
        yield s


def _client(proxy: TftpFaultProxy) -> tftpy.TftpClient:
    return tftpy.TftpClient("127.0.0.1", proxy.port)


def test_a_clean_proxy_passes_downloads_and_uploads_unchanged(server, tmp_path):
    data = os.urandom(50_000)
    (server.root / "fw.bin").write_bytes(data)
    with TftpFaultProxy(("127.0.0.1", server.port)) as proxy:
        _client(proxy).download("fw.bin", str(tmp_path / "got"), timeout=2)
        assert (tmp_path / "got").read_bytes() == data
        _client(proxy).upload("back.bin", str(tmp_path / "got"), timeout=2)
    # the server closes the file after it sent the last ACK: wait for it
    assert uploaded(server.root / "back.bin", len(data)) == data
    st = proxy.stats
    blocks = len(data) // 512 + 1
    # RRQ + blocks DATA + blocks ACK, then WRQ + ACK0 + blocks DATA + blocks ACK
    assert st.received == st.forwarded == 4 * blocks + 3
    assert st.opcodes == {1: 1, 2: 1, 3: 2 * blocks, 4: 2 * blocks + 1}
    assert st.dropped == st.duplicated == st.delayed == st.blocked == 0
    assert st.sessions == 2


def test_loss_and_duplicates_are_survived_by_a_retrying_client(server, tmp_path):
    data = os.urandom(30_000)
    (server.root / "fw.bin").write_bytes(data)
    faults = TftpFaults(loss=0.1, duplicate=0.2)
    with TftpFaultProxy(("127.0.0.1", server.port), faults, seed=4) as proxy:
        _client(proxy).download("fw.bin", str(tmp_path / "got"), timeout=0.3)
    assert (tmp_path / "got").read_bytes() == data
    assert proxy.stats.dropped > 0 and proxy.stats.duplicated > 0


def test_delays_hold_datagrams_without_blocking_others(server, tmp_path):
    (server.root / "fw.bin").write_bytes(b"x" * 3000)
    faults = TftpFaults(delay=0.02, delay_rate=1.0, direction="to_device")
    with TftpFaultProxy(("127.0.0.1", server.port), faults) as proxy:
        _client(proxy).download("fw.bin", str(tmp_path / "got"), timeout=2)
    assert (tmp_path / "got").read_bytes() == b"x" * 3000
    # only the server's DATA packets were held; the client's RRQ and ACKs were not
    assert proxy.stats.delayed == 6 == proxy.stats.opcodes[3]


def test_a_server_that_goes_away_mid_transfer(server, tmp_path):
    (server.root / "fw.bin").write_bytes(os.urandom(20_000))
    faults = TftpFaults(gone_after=9)
    with (
        TftpFaultProxy(("127.0.0.1", server.port), faults) as proxy,
        pytest.raises(tftpy.TftpShared.TftpException),
    ):
        _client(proxy).download("fw.bin", str(tmp_path / "got"), timeout=0.2, retries=2)
    assert proxy.stats.gone and proxy.stats.forwarded == 9 and proxy.stats.blocked > 0


def test_the_trigger_fires_once_after_n_datagrams(server, tmp_path):
    (server.root / "fw.bin").write_bytes(os.urandom(10_000))
    fired = []
    done = threading.Event()

    def hit() -> None:
        fired.append(proxy.stats.received)
        done.set()

    with TftpFaultProxy(
        ("127.0.0.1", server.port), TftpFaults(trigger_after=5), on_trigger=hit
    ) as proxy:
        _client(proxy).download("fw.bin", str(tmp_path / "got"), timeout=2)
        assert done.wait(2)
    assert len(fired) == 1 and fired[0] >= 6


def test_loss_decisions_follow_the_seed(server, tmp_path):
    """The same datagram sequence meets the same drops: one block, one drop pattern."""
    drops = []
    for _ in range(2):
        with TftpFaultProxy(("127.0.0.1", 9), TftpFaults(loss=0.5), seed=11) as proxy:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for i in range(40):
                    s.sendto(struct.pack("!H", 1) + f"f{i}\0octet\0".encode(), proxy.address)
            deadline = threading.Event()
            while proxy.stats.received < 40 and not deadline.wait(0.01):
                pass
            drops.append(proxy.stats.dropped)
    assert drops[0] == drops[1] and 5 < drops[0] < 35


def test_only_loopback_is_accepted():
    with pytest.raises(ValueError, match="loopback"):
        TftpFaultProxy(("192.0.2.7", 69))
    with pytest.raises(ValueError, match="loopback"):
        TftpFaultProxy(("127.0.0.1", 69), host="0.0.0.0")
    for bad in (dict(loss=1.5), dict(delay=-1), dict(gone_after=-2), dict(direction="up")):
        with pytest.raises(ValueError):
            TftpFaults(**bad)


# -- with the emulated camera's U-Boot ---------------------------------------------------------


@pytest.fixture(scope="module")
def vendor_a() -> bytes:
    return vendor_flash("A", uboot="upstream")  # the texts asserted are upstream's


@pytest.fixture
def camera(vendor_a, server):
    """A Hi3511 at its prompt whose TFTP goes through a proxy to ``server``."""
    proxy = TftpFaultProxy(("127.0.0.1", server.port))
    dev = Hi3511Device(initial_flash=vendor_a, tftp_server=proxy.address, uboot_variant="upstream")
    try:
        term = attach(dev)
        yield dev, term, proxy
        term.close()
        assert dev.crash is None, dev.crash_text
    finally:
        dev.close()
        proxy.close()


def test_u_boot_downloads_exactly_through_loss_and_duplicates(camera, server):
    dev, term, proxy = camera
    data = os.urandom(40_000)
    (server.root / "blob.bin").write_bytes(data)
    proxy.set_faults(TftpFaults(loss=0.05, duplicate=0.1))
    out = term.cmd("tftp 0xe1000000 blob.bin", timeout=60)
    assert f"Bytes transferred = {len(data)} ({len(data):x} hex)" in out
    assert term.cmd(f"crc32 0xe1000000 {len(data):#x}").endswith(f"==> {zlib.crc32(data):08x}\r\n")
    assert proxy.stats.duplicated > 0


def test_u_boot_sees_a_server_that_is_gone(camera, server):
    dev, term, proxy = camera
    (server.root / "blob.bin").write_bytes(os.urandom(40_000))
    proxy.set_faults(TftpFaults(gone_after=20))
    term.write("tftp 0xe1000000 blob.bin\r")
    out = term.read_until("Retry count exceeded; starting again", timeout=30).decode()
    assert "T T T T T T T T T T " in out  # ten 5 s timeouts (shortened in fast mode)
    term.write("\x03")
    term.read_until(PROMPT)


def test_power_cut_after_n_datagrams(camera, server):
    dev, term, proxy = camera
    (server.root / "blob.bin").write_bytes(os.urandom(40_000))
    cut = threading.Event()

    def power_off() -> None:
        dev.power_off()
        cut.set()

    proxy.on_trigger = power_off
    proxy.set_faults(TftpFaults(trigger_after=30))
    term.write("tftp 0xe1000000 blob.bin\r")
    assert cut.wait(10)
    assert not dev.powered and not dev.alive
    assert 30 < proxy.stats.received < 2 * 80  # 40000 bytes: 79 DATA and 79 ACK in all


def test_interpose_reroutes_a_lab_camera(tmp_path):
    from harness.lab import Lab

    with Lab(tmp_path / "lab") as lab:
        dev = lab.start("hi3511", flash="vendor:A", tftp_server=False)
        direct = dev.device.netmap.default
        assert direct == ("127.0.0.1", dev.server_port)
        proxy = interpose(dev, TftpFaults(duplicate=0.5), seed=2)
        try:
            assert dev.device.netmap.default == proxy.address
            assert proxy.upstream == direct
            image = root_image("B")
            lab.put_file("b.jffs2", image)
            argv = ["hi3511", "flash", str(lab.work / "b.jffs2"), "--no-backup", "--no-boot"]
            out = dev.engine(argv, timeout=120)
            assert out.exit == 0, out.json
            assert dev.flash.read(0x200000, len(image)) == image
            assert proxy.stats.duplicated > 500
        finally:
            proxy.close()
        with pytest.raises(ValueError, match="no network"):
            interpose(lab.start("xr872", name="x", power="off"))
