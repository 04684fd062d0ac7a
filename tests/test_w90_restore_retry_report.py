"""A W90P745 restore that succeeds only after a retry says so: each retry is told (on
stderr with the CLI) as it happens, and the result (the JSON's images[]) carries
``attempts`` and ``retried_because``. The faults are those of
tests/test_w90_restore_link_faults.py (its relay "cable" damages one byte): one block
byte flipped (the loader NAKs and stores the resent block 128 bytes later) and one ACK
lost (the transfer is cancelled)."""

from __future__ import annotations

from test_w90_restore_link_faults import BASE, DATA, cable, dumped

from emulators.w90p745 import W90P745Device
from recovery.transport import Port
from recovery.w90p745.operations import restore


def test_a_grown_image_resent_is_reported(tmp_path):
    flash, out = dumped(tmp_path)
    state = {"seen": b"", "done": False}

    def corrupt_block_5(data: bytes) -> bytes:
        if state["done"]:
            return data
        seen = state["seen"] + data
        at = seen.find(b"\x01\x05\xfa")
        pos = at + 3 + 30 - (len(seen) - len(data))
        if at >= 0 and len(seen) >= at + 40 and 0 <= pos < len(data):
            state["done"] = True
            return data[:pos] + bytes([data[pos] ^ 0x10]) + data[pos + 1 :]
        state["seen"] = seen[-64:]
        return data

    told: list[str] = []
    with W90P745Device(seed=4, initial_flash=flash) as dev:
        with cable(dev, to_device=corrupt_block_5) as c, Port(c.path) as port:
            result = restore(port, out, progress=False, notify=told.append, baud=115200)
        assert state["done"]
        assert dev.flash.read(BASE - 0x7F000000, len(DATA)) == DATA
    image = result.images[0]
    assert image.verified and image.attempts == 2
    assert len(image.retried_because) == 1
    assert "stored 0x2400 bytes for 0x2380 sent" in image.retried_because[0]
    again = [t for t in told if "sending it again" in t]
    assert len(again) == 1 and "image 9 (tiny)" in again[0] and "try 2 of 5" in again[0]
    assert "image 9 (tiny) took 2 tries" in result.message


def test_a_cancelled_transfer_sent_again_is_reported(tmp_path):
    flash, out = dumped(tmp_path)
    state = {"acks": 0, "dropped": False, "armed": False}

    def drop_tenth_ack(data: bytes) -> bytes:
        if b"Press Ctrl-x to cancel" in data:
            state["armed"] = True
        if not state["armed"] or state["dropped"]:
            return data
        kept = bytearray()
        for b in data:
            if b == 0x06:
                state["acks"] += 1
                if state["acks"] == 10:
                    state["dropped"] = True
                    continue
            kept.append(b)
        return bytes(kept)

    told: list[str] = []
    with W90P745Device(seed=4, initial_flash=flash) as dev:
        with cable(dev, to_host=drop_tenth_ack) as c, Port(c.path) as port:
            result = restore(port, out, progress=False, notify=told.append, baud=115200)
        assert state["dropped"]
        assert dev.flash.read(BASE - 0x7F000000, len(DATA)) == DATA
    image = result.images[0]
    assert image.attempts == 2 and "Xmodem download" in image.retried_because[0]
    assert any("sending it again (try 2 of 5)" in t for t in told)


def test_a_clean_restore_reports_one_attempt(tmp_path):
    flash, out = dumped(tmp_path)
    told: list[str] = []
    with W90P745Device(seed=4, initial_flash=flash) as dev, Port(dev.path) as port:
        result = restore(port, out, progress=False, notify=told.append, baud=115200)
    assert result.images[0].attempts == 1 and result.images[0].retried_because == []
    assert not any("sending it again" in t for t in told) and "tries" not in result.message
