"""The two U-Boot trees of the emulated Hi3511 on the wire: what the TFTP client sends
and answers (the ``timeout`` option, OACK, ACK 0, DATA 1), what a download onto a
protected sector does, the idle ``bootcmd``, HiSilicon's history and its kept upload
length. The console texts of both trees are in tests/test_emu_hi3511.py."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
import zlib
from contextlib import closing

import pytest

from emulators.hi3511 import Hi3511Device
from harness.firmware.hi3511 import vendor_flash
from harness.lab.tftp import uploaded
from recovery.tftp.server import TftpServer as EngineTftpServer
from tests.test_emu_hi3511 import PROMPT, attach

VARIANTS = ["hisilicon", "upstream"]
OPTION = {"hisilicon": b"20", "upstream": b"5"}


def dev_for(variant: str, **kw) -> Hi3511Device:
    return Hi3511Device(initial_flash=vendor_flash("A", uboot=variant), uboot_variant=variant, **kw)


class OackServer:
    """A raw TFTP peer on 127.0.0.1 that records every datagram and answers a request
    with an OACK for ``timeout``, then serves ``blob`` (RRQ) or takes an upload (WRQ)."""

    def __init__(self, blob: bytes = b"") -> None:
        self.blob = blob
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.got: list[bytes] = []
        self.upload = bytearray()
        self.done = threading.Event()
        self._stop = False
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    def _serve(self) -> None:
        peer = None
        while not self._stop and not self.done.is_set():
            try:
                pkt, src = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            self.got.append(pkt)
            op = struct.unpack_from("!H", pkt)[0]
            if op in (1, 2) and peer is None:
                peer = src
                opts = pkt[2:].split(b"\0")
                value = opts[opts.index(b"timeout") + 1]
                self.sock.sendto(b"\0\6timeout\0" + value + b"\0", src)
            elif op == 4 and src == peer:  # ACK n: DATA n+1 of the download
                (n,) = struct.unpack_from("!H", pkt, 2)
                chunk = self.blob[n * 512 : n * 512 + 512]
                if n * 512 > len(self.blob):
                    self.done.set()
                    continue
                self.sock.sendto(struct.pack("!HH", 3, n + 1) + chunk, src)
            elif op == 3 and src == peer:  # DATA n of the upload
                (n,) = struct.unpack_from("!H", pkt, 2)
                if n == len(self.upload) // 512 + 1:
                    self.upload += pkt[4:]
                self.sock.sendto(struct.pack("!HH", 4, n), src)
                if len(pkt) - 4 < 512:
                    self.done.set()

    def close(self) -> None:
        self._stop = True
        self._t.join(2)
        self.sock.close()


@pytest.mark.parametrize("variant", VARIANTS)
def test_download_sends_the_timeout_option_and_acks_block_0_after_an_oack(variant):
    blob = os.urandom(1300)
    srv = OackServer(blob)
    try:
        with closing(dev_for(variant, tftp_server=("127.0.0.1", srv.port))) as dev:
            term = attach(dev)
            out = term.cmd("tftp 0xe1000000 fw.bin", timeout=20)
            assert "Bytes transferred = 1300 (514 hex)" in out
            crc = zlib.crc32(blob)
            assert term.cmd("crc32 0xe1000000 0x514").endswith(f"==> {crc:08x}\r\n")
            term.close()
    finally:
        srv.close()
    assert srv.got[0] == b"\0\1fw.bin\0octet\0timeout\0" + OPTION[variant] + b"\0"
    assert srv.got[1] == b"\0\4\0\0"  # ACK 0 answers the OACK
    assert srv.got[2] == b"\0\4\0\1"


@pytest.mark.parametrize("variant", VARIANTS)
def test_upload_sends_block_1_after_an_oack(variant):
    srv = OackServer()
    try:
        with closing(dev_for(variant, tftp_server=("127.0.0.1", srv.port))) as dev:
            term = attach(dev)
            out = term.cmd("tftp 0x34100000 up.bin 0x400", timeout=20)
            want = dev.flash.read(0x100000, 0x400)
            if variant == "hisilicon":
                assert out.endswith("\r\n\t 0.001 MB upload ok.\r\n")
                assert "Bytes transferred" not in out
            else:
                assert out.endswith("Bytes transferred = 1024 (400 hex)\r\n")
            term.close()
    finally:
        srv.close()
    assert srv.got[0] == b"\0\2up.bin\0octet\0timeout\0" + OPTION[variant] + b"\0"
    assert srv.got[1][:4] == b"\0\3\0\1"  # DATA 1 right after the OACK: no ACK 0 wait
    assert bytes(srv.upload) == want


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_engines_tftp_server_and_the_client_agree_on_the_option(variant):
    """The engine's own server (recovery/tftp/server.py) answers the option with an
    OACK; the emulated client takes it and the download is exact."""
    blob = os.urandom(70_000)
    with EngineTftpServer(None, ("127.0.0.1", 0)) as srv:
        srv.publish("root.jffs2", blob)
        with closing(dev_for(variant, tftp_server=("127.0.0.1", srv.port))) as dev:
            term = attach(dev)
            out = term.cmd("tftp 0xe1000000 root.jffs2", timeout=30)
            assert f"Bytes transferred = {len(blob)} " in out
            crc = zlib.crc32(blob)
            assert term.cmd(f"crc32 0xe1000000 {len(blob):#x}").endswith(f"==> {crc:08x}\r\n")
            term.close()


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_download_onto_a_protected_sector_says_so(variant, tftp_server):
    root, port = tftp_server
    (root / "x.bin").write_bytes(os.urandom(2000))
    with closing(dev_for(variant, tftp_server=("127.0.0.1", port))) as dev:
        term = attach(dev)
        before = dev.flash.read(0, 0x20000)
        out = term.cmd("tftp 0x34000000 x.bin", timeout=20)
        if variant == "hisilicon":  # a newline, flash_perror's text, no byte count
            assert out.endswith(
                "#\t[ Connected ]\r\n\r\nCan't write to protected Flash sectors\r\n"
            )
        else:
            assert "Can't write to protected Flash sectors\r\n" in out
        assert "Bytes transferred" not in out
        assert dev.flash.read(0, 0x20000) == before
        assert dev.crash is None
        term.close()


@pytest.mark.parametrize("variant", VARIANTS)
def test_idle_prompt_runs_bootcmd_when_configured(variant):
    """CONFIG_BOOT_RETRY_TIME (60 s in HiSilicon's board config; shortened here)."""
    with closing(dev_for(variant, idle_bootcmd=1.0)) as dev:
        term = attach(dev)
        t0 = time.monotonic()
        out = term.read_until(r"## Booting image at 34100000 \.\.\.", timeout=10).decode()
        assert time.monotonic() - t0 >= 0.9
        assert out.endswith("\r\nTimed out waiting for command\r\n## Booting image at 34100000 ...")
        term.close()


def test_without_the_option_the_prompt_waits():
    with closing(dev_for("hisilicon")) as dev:
        term = attach(dev)
        assert term.read_for(1.5) == b""
        term.close()


def test_hisilicon_history_recalls_the_last_line_with_the_up_arrow():
    with closing(dev_for("hisilicon")) as dev:
        term = attach(dev)
        assert term.cmd("echo one") == "one\r\n"
        term.write(b"\x1b[A")
        assert term.read_until("echo one") == b"echo one"
        term.write(b"\r")
        assert term.read_until(PROMPT) == b"\r\r\none\r\n" + PROMPT.encode()
        term.write(b"\x1b[C")  # right arrow: a bell
        assert term.read_until(b"\x07") == b"\x07"
        term.write(b"\x03")
        term.read_until(PROMPT)
        term.close()


def test_upstream_stores_an_escape_sequence_as_typed():
    with closing(dev_for("upstream")) as dev:
        term = attach(dev)
        term.cmd("echo one")
        term.write(b"\x1b[A\r")
        out = term.read_until(PROMPT)
        assert out.startswith(b"\x1b[A\r\r\nUnknown command '\x1b[A' - try 'help'")
        term.close()


def test_hisilicon_tftp_with_an_address_only_uploads_again(tftp_server):
    """common/cmd_net.c: upload_size is a global only ``tftp addr file`` clears."""
    root, port = tftp_server
    with closing(dev_for("hisilicon", tftp_server=("127.0.0.1", port))) as dev:
        term = attach(dev)
        assert "upload ok" in term.cmd("tftp 0x34100000 up.bin 0x200", timeout=20)
        # the server finishes the file after the device's last ACK: wait for it
        assert uploaded(root / "up.bin", 0x200) == dev.flash.read(0x100000, 0x200)
        (root / "up.bin").unlink()
        term.cmd("setenv bootfile up.bin")
        out = term.cmd("tftp 0x34f00000", timeout=20)
        assert "Upload Filename 'up.bin'." in out and "upload ok" in out
        assert uploaded(root / "up.bin", 0x200) == dev.flash.read(0x100000, 0x200)
        term.close()


def test_ctrlc_reads_one_character_per_check():
    """common/console.c ctrlc(): ``md`` checks once per line, so a Ctrl-C typed ahead
    stops it and the rest of what was typed reaches the prompt."""
    with closing(dev_for("hisilicon")) as dev:
        term = attach(dev)
        term.write(b"md 0xe0000000 0x4000\r\x03echo after\r")
        out = term.read_until(r"after\r\n" + PROMPT, timeout=10).decode()
        assert out.count("\r\n") < 100  # stopped long before 0x1000 lines
        term.close()
