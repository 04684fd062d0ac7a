"""The line's one-byte faults (``corrupt_byte``, ``drop_byte``): each strikes exactly
one byte, the one it was aimed at, over a real pty; the scenario schema reads them,
refuses nonsense when the file loads, and a scenario's fault step says [fired]."""

from __future__ import annotations

import time

import pytest
import serial
import yaml

from emulators.serial import ByteFault, VirtualUart
from emulators.w90p745 import W90P745Device
from harness.lab.faults import LinkByteFault, arm
from harness.scenarios import ScenarioError, parse_scenario, run_scenario
from harness.scenarios.steps import fault_to_yaml

DATA = bytes(range(256)) + bytes(range(255, -1, -1))  # 512 bytes, no two neighbours alike


def open_host(uart: VirtualUart) -> serial.Serial:
    return serial.Serial(uart.path, 115200, timeout=0.2)


def host_read(port: serial.Serial, n: int, timeout: float = 3.0) -> bytes:
    out = bytearray()
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += port.read(n - len(out))
    return bytes(out)


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# --------------------------------------------------------------------------- the line


@pytest.mark.parametrize("chunk", [1, 7, 133, 512])
def test_corrupt_damages_exactly_the_nth_byte_the_host_sends(chunk):
    with VirtualUart() as uart, open_host(uart) as host:
        host.write(b"before arming")
        assert uart.read_exact(13, 2.0) == b"before arming"  # not counted
        f = uart.arm_byte_fault(ByteFault("host", 300, "corrupt", xor=0x10))
        for p in pieces(DATA, chunk):
            host.write(p)
        got = uart.read_exact(len(DATA), 2.0)
        want = bytearray(DATA)
        want[300] ^= 0x10
        assert got == bytes(want)
        assert f.fired and f.original == DATA[300] and f.where == 13 + 300
        # once: the same bytes again arrive intact
        host.write(DATA)
        assert uart.read_exact(len(DATA), 2.0) == DATA
        assert "corrupted 0x" in uart.transcript.text()


@pytest.mark.parametrize("chunk", [1, 5, 512])
def test_drop_loses_exactly_the_nth_byte_the_device_prints(chunk):
    with VirtualUart() as uart, open_host(uart) as host:
        f = uart.arm_byte_fault(ByteFault("device", 0, "drop"))
        g = uart.arm_byte_fault(ByteFault("device", 511, "drop"))
        for p in pieces(DATA, chunk):
            uart.write(p)
        assert host_read(host, len(DATA) - 2) == DATA[1:511]
        assert f.fired and g.fired and (f.where, g.where) == (0, 511)
        uart.write(DATA)
        assert host_read(host, len(DATA)) == DATA
        assert host.read(1) == b""  # nothing else came


def test_corrupt_a_device_byte_and_drop_a_host_byte():
    with VirtualUart() as uart, open_host(uart) as host:
        uart.arm_byte_fault(ByteFault("device", 2, "corrupt"))  # xor 0x01 by default
        uart.write(b"abcdef")
        assert host_read(host, 6) == b"abbdef"
        uart.arm_byte_fault(ByteFault("host", 3, "drop"))
        host.write(b"012345")
        assert uart.read_exact(5, 2.0) == b"01245"


XMODEM_START = b"fx 8 webui\nWaiting for download\nPress Ctrl-x to cancel ... \n"


@pytest.mark.parametrize("split", [1, 10, 40, len(XMODEM_START)])
def test_after_text_and_value_lose_the_tenth_ack(split):
    """The lost-ACK scenario's fault: counting starts after the loader's text, and
    only ACKs count, so the number of 'C's before the first block does not matter."""
    acks = b"\x06" * 14
    stream = XMODEM_START + b"CCC" + b"\x06" + b"C" + acks
    with VirtualUart() as uart, open_host(uart) as host:
        f = uart.arm_byte_fault(
            ByteFault("device", 9, "drop", after_text=b"Press Ctrl-x to cancel", value=0x06)
        )
        uart.write(b"\x06\x06 an ACK before the text does not count\n")
        for p in pieces(stream, split):
            uart.write(p)
        got = host_read(host, 41 + len(stream) - 1)
        assert got.endswith(XMODEM_START + b"CCC\x06C" + b"\x06" * 13)
        assert f.fired and f.original == 0x06
        # the 10th ACK after the text: 'fx...' 41 + start text + CCC, ACK, C, 8 ACKs
        assert f.where == 41 + len(XMODEM_START) + 3 + 1 + 1 + 8


def test_after_text_counts_host_bytes_from_the_text_on():
    """The corrupt-byte scenario's fault: what the host sent before the device printed
    the text is not counted; byte 698 after it is the 31st data byte of block 6."""
    frames = b"".join(bytes([1, n, 255 - n]) + bytes([n]) * 128 + b"\xaa\xbb" for n in range(1, 9))
    with VirtualUart() as uart, open_host(uart) as host:
        f = uart.arm_byte_fault(
            ByteFault("host", 698, "corrupt", xor=0x10, after_text=b"Press Ctrl-x to cancel")
        )
        host.write(b"fx 8 webui\ry")
        assert uart.read_exact(12, 2.0) == b"fx 8 webui\ry"
        uart.write(XMODEM_START[:30])
        uart.write(XMODEM_START[30:] + b"C")
        assert host_read(host, len(XMODEM_START) + 1).endswith(b"C")
        host.write(frames)
        got = uart.read_exact(len(frames), 2.0)
        assert [i for i in range(len(frames)) if got[i] != frames[i]] == [5 * 133 + 3 + 30]
        assert got[698] == 6 ^ 0x10 and f.fired


def test_a_fault_that_never_comes_does_not_fire_and_disarms():
    with VirtualUart() as uart, open_host(uart) as host:
        f = uart.arm_byte_fault(ByteFault("device", 5, "drop", after_text=b"never printed"))
        uart.write(DATA)
        assert host_read(host, len(DATA)) == DATA
        assert not f.fired
        uart.disarm_byte_fault(f)
        f2 = uart.arm_byte_fault(ByteFault("host", 1000, "drop"))
        host.write(DATA)
        assert uart.read_exact(len(DATA), 2.0) == DATA and not f2.fired


def test_byte_fault_checks_its_values():
    for bad, msg in [
        (dict(direction="up", at_byte=0, action="drop"), "direction"),
        (dict(direction="host", at_byte=-1, action="drop"), "at_byte"),
        (dict(direction="host", at_byte=0, action="flip"), "action"),
        (dict(direction="host", at_byte=0, action="corrupt", xor=0), "xor"),
        (dict(direction="host", at_byte=0, action="drop", value=256), "value"),
    ]:
        with pytest.raises(ValueError, match=msg):
            ByteFault(**bad)


# --------------------------------------------------------------------- the vocabulary


def test_armed_on_a_device_it_says_whether_it_fired():
    with W90P745Device(seed=1) as dev, serial.Serial(dev.path, 115200, timeout=0.2) as host:
        assert b"bootloader > " in _until(host, b"bootloader > ", b"\x1b")
        lab_device = type("LabDeviceLike", (), {"device": dev})()
        a = arm(lab_device, LinkByteFault("corrupt_byte", 0, "host", xor=0x01))
        assert a.fired is False
        host.write(b"ls\r")  # 'l' ^ 0x01 = 'm'
        said = _until(host, b"bootloader > ", b"")
        assert b"ms" in said and b"ERROR: unrecognised command" in said
        assert a.fired is True
        a.disarm()
        b = arm(lab_device, LinkByteFault("drop_byte", 100000, "device"))
        host.write(b"ls\r")
        assert b"Image: 8" in _until(host, b"bootloader > ", b"")
        b.disarm()
        assert b.fired is False


def _until(host: serial.Serial, text: bytes, poke: bytes, timeout: float = 10.0) -> bytes:
    out = bytearray()
    deadline = time.monotonic() + timeout
    while text not in out and time.monotonic() < deadline:
        if poke:
            host.write(poke)
        out += host.read(4096)
    return bytes(out)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (
            '{corrupt_byte: {at_byte: 698, after_text: "Press Ctrl-x to cancel", xor: 0x10}}',
            LinkByteFault(
                "corrupt_byte", 698, "host", xor=0x10, after_text="Press Ctrl-x to cancel"
            ),
        ),
        (
            "{corrupt_byte: {at_byte: 3, direction: device}}",
            LinkByteFault("corrupt_byte", 3, "device"),
        ),
        (
            "{drop_byte: {at_byte: 9, direction: device, value: 0x06}}",
            LinkByteFault("drop_byte", 9, "device", value=6),
        ),
    ],
)
def test_scenario_fault_steps_read_and_write_the_line_faults(fault, expected):
    sc = parse_scenario(f"name: f\nboard: w90p745\nsteps:\n  - fault: {fault}\n", "f.yaml")
    assert sc.steps[0].faults == [expected]
    again = yaml.safe_dump(fault_to_yaml(expected), default_flow_style=True).strip()
    sc2 = parse_scenario(f"name: f\nboard: w90p745\nsteps:\n  - fault: {again}\n", "g.yaml")
    assert sc2.steps[0].faults == [expected]


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("{corrupt_byte: {at_byte: 1, xor: 0}}", "xor must be from 0x01 to 0xFF"),
        ("{corrupt_byte: {at_byte: 1, xor: 0x100}}", "xor must be from 0x01 to 0xFF"),
        ("{drop_byte: {at_byte: 1, xor: 1}}", "unknown key 'xor'"),
        ("{drop_byte: {at_byte: 1, value: 300}}", "value must be a byte"),
        ("{drop_byte: {at_byte: -1}}", "must be at least 0"),
        ("{drop_byte: {direction: host}}", "missing required key 'at_byte'"),
        ("{drop_byte: {at_byte: 1, direction: both}}", "expected one of"),
        ("{watchdog: {at_byte: 1, after_text: x}}", "unknown key 'after_text'"),
        ('{drop_byte: {at_byte: 1, after_text: "\\u20ac"}}', "after_text must be text"),
    ],
)
def test_bad_line_faults_are_refused_when_the_file_loads(fault, message):
    with pytest.raises(ScenarioError) as ei:
        parse_scenario(f"name: x\nboard: w90p745\nsteps:\n  - fault: {fault}\n", "bad.yaml")
    problems = [str(p) for p in ei.value.problems]
    assert any(message in p and ":4" in p for p in problems), problems


def test_a_scenario_step_reports_fired_and_did_not_fire(tmp_path):
    text = """name: line-faults
board: w90p745
device: {seed: 1, start: prompt}
steps:
  - fault: {drop_byte: {at_byte: 0, direction: host}}
  - console: {line: "xls -al", expect: 'name:webui[^\\n]*\\n\\s*bootloader > ', regex: true}
  - fault: {corrupt_byte: {at_byte: 1, direction: device, xor: 0x20}}
  - console: {line: "ls", expect: "lS"}
  - title: a fault that waits for text the loader never prints
    fault: {drop_byte: {at_byte: 5, direction: device, after_text: "never"}}
expect:
  transcript:
    contains: ["link fault: byte 0 (from 0) the host sends: dropped 0x78"]
"""
    res = run_scenario(parse_scenario(text, tmp_path / "l.yaml"), tmp_path / "run", keep="never")
    assert res.outcome == "passed", res.failure_text()
    assert res.steps[0].detail.endswith("[fired]"), res.steps[0].detail
    assert res.steps[2].detail.endswith("[fired]"), res.steps[2].detail
    assert res.steps[4].detail.endswith("[did not fire]"), res.steps[4].detail
    # a titled step: the title is its summary, the detail says which fault was armed
    assert res.steps[4].summary == "a fault that waits for text the loader never prints"
    assert "never" in res.steps[4].detail and "loader never prints" not in res.steps[4].detail
