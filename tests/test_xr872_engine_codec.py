"""The engine's own BROM codec (recovery/xr872/brom.py): framing, checksums, requests.

Reference values are computed here independently (a byte loop for checksum16,
hand-assembled frames), never with the codec itself.
"""

from __future__ import annotations

import os
import struct
import threading
import tty

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recovery.transport import Port
from recovery.xr872 import brom as b


def preimage(frame_bytes: bytes, fields: tuple[int, ...] = ()) -> bytes:
    """The little-endian pre-image of a frame: header fields swapped, then the payload
    with the multi-byte fields of sizes ``fields`` (after the 1-byte id) swapped."""
    h = frame_bytes[:12]
    out = h[:6] + h[6:8][::-1] + h[8:12][::-1]
    p = frame_bytes[12:]
    if fields:
        q, i = p[:1], 1
        for n in fields:
            q += p[i : i + n][::-1]
            i += n
        p = q + p[i:]
    return out + p


def ref_checksum16(data: bytes) -> int:
    total = 0
    for i in range(0, len(data) - 1, 2):
        total += data[i] | (data[i + 1] << 8)
    if len(data) % 2:
        total += data[-1]
    return total % 65536


# -- checksum16 -----------------------------------------------------------------
@given(st.binary(max_size=600))
def test_checksum16_matches_a_byte_loop(data):
    assert b.checksum16(data) == ref_checksum16(data)


def test_checksum16_known_values():
    assert b.checksum16(b"") == 0
    assert b.checksum16(b"\x01") == 1
    assert b.checksum16(b"\x01\x02") == 0x0201
    assert b.checksum16(b"\xff\xff\x02\x00") == 0x0001  # wraps
    assert b.checksum16(b"\x01\x02\x03") == 0x0204  # odd byte added alone


@given(st.binary(max_size=200).map(lambda x: x[: len(x) & ~1]), st.binary(max_size=200))
def test_checksum16_is_additive_over_even_splits(a, c):
    assert b.checksum16(a + c) == (b.checksum16(a) + b.checksum16(c)) % 65536
    assert b.checksum16(c, b.checksum16(a)) == b.checksum16(a + c)


@given(st.binary(min_size=1, max_size=300))
def test_data_checksum_complements(data):
    assert (ref_checksum16(data) + b.data_checksum(data)) % 65536 == 0xFFFF


# -- framing ----------------------------------------------------------------------
flags_st = st.integers(0, 0x1F)


@given(st.binary(max_size=400), flags_st, st.integers(0, 15))
def test_a_framed_buffer_sums_to_ffff(payload, flags, version):
    f = b.frame(payload, flags, version)
    assert ref_checksum16(preimage(f)) == 0xFFFF
    assert f[:4] == b"BROM" and f[4] == flags and f[5] & 0x0F == version
    assert struct.unpack(">I", f[8:12])[0] == len(payload)
    assert f[12:] == payload


@given(st.binary(max_size=100), st.integers(0, 8 * 112 - 1))
def test_any_single_bit_flip_breaks_the_sum(payload, bit):
    f = bytearray(b.frame(payload))
    bit %= len(f) * 8
    f[bit // 8] ^= 1 << (bit % 8)
    try:
        h = b.Header.unpack(bytes(f[:12]))
    except ValueError:
        return  # the magic itself was hit: not a frame at all
    assert not b.frame_sums_ok(h, bytes(f[12:]))


@given(
    st.integers(0, 0xFF),
    st.integers(0, 15),
    st.integers(0, 15),
    st.integers(0, 0xFFFF),
    st.integers(0, 2**32 - 1),
)
def test_header_round_trip(flags, version, reserved, cs, plen):
    h = b.Header(flags, version, cs, plen, reserved)
    raw = h.pack()
    assert len(raw) == 12
    assert b.Header.unpack(raw) == h


def test_header_rejects_bad_magic_and_length():
    with pytest.raises(ValueError):
        b.Header.unpack(b"BRON" + bytes(8))
    with pytest.raises(ValueError):
        b.Header.unpack(b"BROM")


def test_phoenixmc_get_flash_id_capture():
    # PhoenixMC's GET_FLASH_ID as captured on a real line (published reverse engineering)
    captured = bytes.fromhex("42524F4D040060510000000118")
    assert b.frame_request(b.Request(b.Cmd.FLASH_GETINFO)) == captured
    assert ref_checksum16(preimage(captured)) == 0xFFFF


def test_setuart_frame_by_hand():
    # SETUART 921600, CHECK flag: payload = id 0x10, lcr = 0x030E1000 big-endian on the wire
    wire_payload = bytes([0x10, 0x03, 0x0E, 0x10, 0x00])
    pre = b"BROM" + bytes([0x04, 0x00, 0, 0]) + (5).to_bytes(4, "little")
    pre += bytes([0x10, 0x00, 0x10, 0x0E, 0x03])
    cs = (~ref_checksum16(pre)) & 0xFFFF
    expected = b"BROM\x04\x00" + cs.to_bytes(2, "big") + (5).to_bytes(4, "big") + wire_payload
    req = b.Request(b.Cmd.SETUART, value=b.LCR_8N1 | 921600)
    assert b.frame_request(req) == expected


def test_command_ids_follow_group_and_key():
    assert b.Cmd.SEQRD == 8 and b.Cmd.SEQWR == 9
    assert b.Cmd.SETUART == 16 and b.Cmd.REBOOT == 18
    assert b.Cmd.FLASH_GETINFO == 24 and b.Cmd.FLASH_WRITE == 27


# -- requests ---------------------------------------------------------------------
u32 = st.integers(0, 2**32 - 1)


@st.composite
def requests(draw):
    c = draw(st.sampled_from(list(b.Cmd)))
    if c in (b.Cmd.READ1, b.Cmd.READ2, b.Cmd.READ4, b.Cmd.READ8):
        return b.Request(c, addr=draw(u32))
    if c in (b.Cmd.WRITE1, b.Cmd.WRITE2, b.Cmd.WRITE4, b.Cmd.WRITE8):
        n = 1 << ((c >> 1) & 3)
        return b.Request(c, addr=draw(u32), data=draw(st.binary(min_size=n, max_size=n)))
    if c in (b.Cmd.SEQRD, b.Cmd.FLASH_READ):
        return b.Request(c, addr=draw(u32), length=draw(u32))
    if c in (b.Cmd.SEQWR, b.Cmd.FLASH_WRITE):
        return b.Request(c, addr=draw(u32), length=draw(u32), dcs=draw(st.integers(0, 0xFFFF)))
    if c in (b.Cmd.SETUART, b.Cmd.SETPC):
        return b.Request(c, value=draw(u32))
    if c in (b.Cmd.SETJTAG, b.Cmd.SETCKCS):
        return b.Request(c, value=draw(st.integers(0, 255)))
    if c == b.Cmd.FLASH_ERASE:
        mode = draw(st.sampled_from(list(b.Erase)))
        return b.Request(c, addr=0 if mode == b.Erase.CHIP else draw(u32), value=mode)
    return b.Request(c)


@given(requests())
def test_request_round_trip(req):
    payload = b.encode_request(req)
    assert payload[0] == req.cmd
    assert b.decode_request(payload) == req
    framed = b.frame_request(req)
    assert b.decode_request(framed[12:]) == req
    # the pre-image has the same bytes, each multi-byte field reversed
    pre = b.encode_request(req, "<")
    assert len(pre) == len(payload) and sorted(pre) == sorted(payload)
    assert b.frame_sums_ok(b.Header.unpack(framed[:12]), pre)


def test_request_layouts_are_packed_big_endian():
    p = b.encode_request(b.Request(b.Cmd.SEQWR, addr=0x00201000, length=0x100, dcs=0xBEEF))
    assert p == bytes([9, 0x00, 0x20, 0x10, 0x00, 0, 0, 1, 0, 0xBE, 0xEF])
    p = b.encode_request(b.Request(b.Cmd.FLASH_ERASE, addr=0x1000, value=b.Erase.SECTOR_4K))
    assert p == bytes([25, 1, 0, 0, 0x10, 0])
    assert b.encode_request(b.Request(b.Cmd.SEQRD, addr=0x00201000, length=8), "<") == bytes(
        [8, 0x00, 0x10, 0x20, 0x00, 8, 0, 0, 0]
    )
    p = b.encode_request(b.Request(b.Cmd.FLASH_READ, addr=2, length=3))
    assert p == bytes([26, 0, 0, 0, 2, 0, 0, 0, 3])
    # XRRomFlasherBase.cs: the chip erase is mode 0 with no address
    assert b.encode_request(b.Request(b.Cmd.FLASH_ERASE, value=b.Erase.CHIP)) == bytes([25, 0])
    # BuildWrite32Packet: address big-endian, value little-endian on the wire and pre-image
    req = b.Request(b.Cmd.WRITE4, addr=0x40043C40, data=(0x1000AC02).to_bytes(4, "little"))
    assert b.encode_request(req) == bytes([5, 0x40, 0x04, 0x3C, 0x40, 0x02, 0xAC, 0x00, 0x10])
    assert b.encode_request(req, "<") == bytes([5, 0x40, 0x3C, 0x04, 0x40, 0x02, 0xAC, 0x00, 0x10])


def test_frames_match_bk7231guiflashtool():
    """XRBaseFlasher.cs BuildLegacyGetFlashIdPacket / BuildChipTypePacket."""
    assert b.frame_request(b.Request(b.Cmd.FLASH_GETINFO)) == bytes.fromhex(
        "42 52 4F 4D 04 00 60 51 00 00 00 01 18"
    )
    assert b.frame_request(b.Request(b.Cmd.CHIPTYPE)) == bytes.fromhex(
        "42 52 4F 4D 04 00 60 52 00 00 00 01 17"
    )


def test_decode_rejects_wrong_lengths_and_ids():
    with pytest.raises(ValueError):
        b.decode_request(b"")
    with pytest.raises(ValueError):
        b.decode_request(bytes([0x1F]))
    with pytest.raises(ValueError):
        b.decode_request(bytes([b.Cmd.SEQRD, 0, 0]))


# -- the client over a real pty ----------------------------------------------------
class ScriptedPeer:
    """The far end of a pty that answers each thing the host sends from a script.

    Each script step is (number of bytes to consume, bytes to answer). It is a
    serial line with canned answers, used to drive the client's retry paths.
    """

    def __init__(self, steps: list[tuple[int, bytes]]) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave
        self.steps = steps
        self.received: list[bytes] = []
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        for n, answer in self.steps:
            got = b""
            while len(got) < n:
                try:
                    chunk = os.read(self.master, n - len(got))
                except OSError:
                    return
                if not chunk:
                    return
                got += chunk
            self.received.append(got)
            if answer:
                os.write(self.master, answer)

    def close(self) -> None:
        self._t.join(timeout=2)
        os.close(self.master)
        os.close(self._slave)


def test_sync_answered_ok():
    peer = ScriptedPeer([(1, b"OK")])
    try:
        with Port(peer.path, timeout=1) as port:
            assert b.BromClient(port).sync(attempts=2)
    finally:
        peer.close()
    assert peer.received == [b"\x55"]


def test_a_pty_with_nothing_behind_it_never_syncs():
    master, slave = os.openpty()
    try:
        with Port(os.ttyname(slave), timeout=1) as port:
            assert not b.BromClient(port).sync(attempts=3, wait=0.05)
    finally:
        os.close(master)
        os.close(slave)


def test_corrupted_response_is_retried_after_a_resync():
    data = bytes(range(16))
    good = b.encode_response(data)
    bad = bytearray(good)
    bad[-1] ^= 0x40  # one bit flipped on the wire
    req_len = 12 + 9
    peer = ScriptedPeer([(req_len, bytes(bad)), (1, b"OK"), (req_len, good)])
    try:
        with Port(peer.path, timeout=1) as port:
            client = b.BromClient(port, timeout=0.5)
            assert client.read_mem(0x1000, 16) == data
            assert client.stats.checksum_errors == 1 and client.stats.retries == 1
    finally:
        peer.close()
    req = peer.received[0]
    assert ref_checksum16(preimage(req, (4, 4))) == 0xFFFF
    assert b.decode_request(req[12:]) == b.Request(b.Cmd.SEQRD, addr=0x1000, length=16)


def test_rom_checksum_error_every_time_gives_a_clear_error():
    err = b.encode_response(error=b.ErrCode.CHECKSUM)
    steps = [(12 + 9, err)]
    for _ in range(2):
        steps += [(1, b"OK"), (12 + 9, err)]
    peer = ScriptedPeer(steps)
    try:
        with Port(peer.path, timeout=1) as port:
            client = b.BromClient(port, timeout=0.5, retries=2)
            with pytest.raises(b.BromChecksumError, match="serial line is corrupting"):
                client.read_mem(0, 4)
    finally:
        peer.close()


def test_rom_invalid_is_not_retried():
    peer = ScriptedPeer([(12 + 9, b.encode_response(error=b.ErrCode.INVALID))])
    try:
        with Port(peer.path, timeout=1) as port:
            client = b.BromClient(port, timeout=0.5)
            with pytest.raises(b.BromError, match="INVALID") as ei:
                client.read_mem(0, 4)
            assert ei.value.code == b.ErrCode.INVALID
            assert client.stats.retries == 0
    finally:
        peer.close()


def test_seq_write_sends_data_in_a_second_transfer():
    data = b"\x11\x22\x33"
    ack = b.encode_response()
    peer = ScriptedPeer([(12 + 11, ack), (3, ack)])
    try:
        with Port(peer.path, timeout=1) as port:
            b.BromClient(port, timeout=0.5).write_mem(0x00201000, data)
    finally:
        peer.close()
    req = b.decode_request(peer.received[0][12:])
    assert req.length == 3 and (ref_checksum16(data) + req.dcs) % 65536 == 0xFFFF
    assert peer.received[1] == data


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=0, max_size=8))
def test_stray_bytes_before_a_response_are_skipped(junk):
    junk = junk.replace(b"B", b"")
    data = b"\xaa\xbb"
    peer = ScriptedPeer([(12 + 9, junk + b.encode_response(data))])
    try:
        with Port(peer.path, timeout=1) as port:
            assert b.BromClient(port, timeout=0.5).read_mem(4, 2) == data
    finally:
        peer.close()


# -- the emulator's published wire contract (docs/xr872-emulator.md), byte for byte ----
def test_contract_examples():
    assert b.frame_request(b.Request(b.Cmd.FLASH_READ, addr=0, length=8)) == bytes.fromhex(
        "42524F4D04005847000000091A0000000000000008"
    )
    data = bytes(range(256)) * 2
    req = b.Request(b.Cmd.FLASH_WRITE, addr=0x80, length=1, dcs=b.data_checksum(data))
    assert b.data_checksum(data) == 0x80FF
    assert b.frame_request(req) == bytes.fromhex("42524F4D0400DFC40000000B1B000000800000000180FF")
    ack = bytes.fromhex("42524F4D06025E6800000000")
    h = b.Header.unpack(ack)
    assert h.flags == b.Flag.ACK | b.Flag.CHECK and h.version == 2 and b.frame_sums_ok(h)
    nocheck = b.Header.unpack(bytes.fromhex("42524F4D02025E6C00000000"))
    assert b.frame_sums_ok(nocheck)
    err = bytes.fromhex("42524F4D05025E670000000101")
    assert b.frame_sums_ok(b.Header.unpack(err[:12]), err[12:])
    assert not b.frame_sums_ok(b.Header.unpack(err[:12]), b"\x03")
