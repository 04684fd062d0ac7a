"""The lab: what tests and scenarios run against.

Emulated devices in their own directories (:mod:`harness.lab.devices`:
:class:`Lab`, :class:`LabDevice`, :func:`device`), the host-side console
client (:mod:`harness.lab.console`), running the engine
(:mod:`harness.lab.engine`), flash images from the firmware builders and their
cache (:mod:`harness.lab.images`), the one TFTP server (:mod:`harness.lab.tftp`),
the one network fault proxy and the device's network mapping
(:mod:`harness.lab.netfaults`), and the faults a test, a scenario or the
campaign can arm on a device (:mod:`harness.lab.faults`).
"""

from harness.lab.console import BAUDS, ConsoleClient, ConsoleTimeout, ExpectResult, attach
from harness.lab.devices import Lab, LabDevice, device
from harness.lab.engine import (
    EngineResult,
    engine_main,
    parse_json_output,
    run_engine_inprocess,
    run_engine_subprocess,
)
from harness.lab.images import build_image, builder_function, parse_flash_source
from harness.lab.netfaults import TftpFaultProxy, TftpFaults, interpose
from harness.lab.tftp import TftpServer, free_udp_port

__all__ = [
    "BAUDS",
    "ConsoleClient",
    "ConsoleTimeout",
    "EngineResult",
    "ExpectResult",
    "Lab",
    "LabDevice",
    "TftpFaultProxy",
    "TftpFaults",
    "TftpServer",
    "attach",
    "build_image",
    "engine_main",
    "builder_function",
    "device",
    "free_udp_port",
    "interpose",
    "parse_flash_source",
    "parse_json_output",
    "run_engine_inprocess",
    "run_engine_subprocess",
]
