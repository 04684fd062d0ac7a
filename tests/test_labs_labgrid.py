"""labgrid against the emulated Hi3511 over RFC 2217: the example environment
(examples/labgrid/hi3511.yaml) with its power commands (``camrescue power``), the
:class:`~harness.labgrid.UBoot114Strategy` from power-off to ``hilinux # ``, and the
:class:`~harness.labgrid.UBoot114Driver` reading ``version`` and ``md.b``, checked against
the emulator's flash.

Skipped when labgrid is not installed (``pip install 'camrescue[labgrid]'``).
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from emulators.hi3511 import Hi3511Device
from harness.firmware.hi3511 import vendor_flash
from harness.lab.power import ControlSocket, PowerSwitch
from harness.lab.serve import PortServer

pytest.importorskip(
    "labgrid", reason="labgrid is not installed: pip install 'camrescue[labgrid]' (.ci/run does)"
)

from labgrid import Environment  # noqa: E402
from labgrid.driver import ExecutionError  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "labgrid"
CAMRESCUE = f"{shlex.quote(sys.executable)} -m harness.cli"


def md_bytes(lines: list[str], addr: int) -> bytes:
    """The bytes of ``md.b`` lines (``34000000: 12 00 ...    ascii``), read independently
    of the engine's parser."""
    out = bytearray()
    for line in lines:
        m = re.match(r"([0-9a-f]{8}): ((?:[0-9a-f]{2} )+)", line)
        assert m, line
        assert int(m.group(1), 16) == addr + len(out), line
        out += bytes.fromhex(m.group(2))
    return bytes(out)


def environment(example: str, tmp: Path, port: int, control: Path) -> Environment:
    """The example, pointed at this test's port and control socket, its ``camrescue``
    commands run with this interpreter."""
    cfg = yaml.safe_load((EXAMPLES / example).read_text())
    target = cfg["targets"]["main"]
    target["resources"]["NetworkSerialPort"]["port"] = port
    power = target["drivers"]["ExternalPowerDriver"]
    for key in ("cmd_on", "cmd_off", "cmd_cycle"):
        words = shlex.split(power[key])
        assert words[:2] == ["camrescue", "power"] and "--control" in words
        words[words.index("--control") + 1] = str(control)
        power[key] = " ".join([CAMRESCUE, *map(shlex.quote, words[1:])])
    path = tmp / example
    path.write_text(yaml.safe_dump(cfg))
    return Environment(str(path))


# both boot loaders the Hi3511 model knows: upstream 1.1.4 (any key stops the countdown)
# and HiSilicon's tree (a space only; the factory bootdelay 0 needs the key early)
@pytest.fixture(scope="module", params=["upstream", "hisilicon"])
def uboot(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def flash(uboot) -> bytes:
    return vendor_flash("A", uboot=uboot)


@pytest.fixture
def lab(flash, uboot, tmp_path) -> Iterator[tuple[Hi3511Device, object]]:
    """An unpowered Hi3511 served over RFC 2217 with a power control socket, and the
    labgrid target of examples/labgrid/hi3511.yaml."""
    dev = Hi3511Device(initial_flash=flash, uboot_variant=uboot)
    control = tmp_path / "cam.ctl"
    try:
        with (
            PortServer(dev.path, "rfc2217://127.0.0.1:0", name="hi3511") as srv,
            ControlSocket(control, PowerSwitch(dev)),
        ):
            env = environment("hi3511.yaml", tmp_path, srv.address.port, control)
            target = env.get_target("main")
            try:
                yield dev, target
            finally:
                target.cleanup()
        assert dev.crash is None, dev.crash_text
    finally:
        dev.close()


def test_labgrid_reaches_the_prompt_from_power_off_and_reads_version_and_md(lab, flash):
    dev, target = lab
    strategy = target.get_driver("UBoot114Strategy")
    strategy.transition("uboot")
    assert dev.powered and dev.boots == 1  # one power-on, from off

    uboot = target.get_driver("UBoot114Driver")
    version = uboot.run_check("version")
    assert any(line.startswith("U-Boot 1.1.4") for line in version), version

    lines = uboot.run_check("md.b 0x34000000 0x40")
    assert md_bytes(lines, 0x34000000) == flash[:0x40]
    lines = uboot.run_check("md.b 0x34200000 0x20")
    assert md_bytes(lines, 0x34200000) == flash[0x200000:0x200020]

    strategy.transition("off")
    assert not dev.powered


def test_failure_is_judged_by_the_output_and_dollar_question_is_plain_text(lab):
    """1.1.4's simple parser has no ``$?`` (labgrid's own UBootDriver relies on it): the
    driver frames commands with markers only and reads failure from the output."""
    dev, target = lab
    target.get_driver("UBoot114Strategy").transition("uboot")
    uboot = target.get_driver("UBoot114Driver")

    out, _, code = uboot.run("echo $?")
    assert (out, code) == (["$?"], 0)
    out, _, code = uboot.run("nosuchcommand")
    assert code == 1 and out and "nosuchcommand" in out[0]
    with pytest.raises(ExecutionError):
        uboot.run_check("md.b")  # no address: U-Boot prints its usage
    # after a failure the console is still in step
    assert any(line.startswith("U-Boot") for line in uboot.run_check("version"))


def test_boot_types_what_bootcmd_holds(lab):
    """1.1.4 on the seed's board has no ``run``: ``boot()`` reads ``bootcmd`` and types it."""
    dev, target = lab
    target.get_driver("UBoot114Strategy").transition("uboot")
    uboot = target.get_driver("UBoot114Driver")
    (line,) = uboot.run_check("printenv bootcmd")
    uboot.boot()
    uboot.await_boot()  # "Linux version" from the kernel the flash holds
    assert line.startswith("bootcmd=bootm ")
    assert dev.boots == 1


def test_every_example_environment_loads(tmp_path):
    """Each board's example names a port and the power commands, and labgrid accepts it."""
    for example in ("hi3511.yaml", "w90p745.yaml", "xr872.yaml"):
        env = environment(example, tmp_path, 5000, tmp_path / "x.ctl")
        target = env.get_target("main")
        assert target.get_resource("NetworkSerialPort").protocol == "rfc2217"
        assert target.get_driver("ExternalPowerDriver", activate=False)
        assert target.get_driver("SerialDriver", activate=False)
        target.cleanup()
