"""A draw's fault as the lab's fault dataclass (:mod:`harness.lab.faults`): the campaign
arms it on the device (:meth:`~harness.lab.devices.LabDevice.arm`), and a saved failure
writes the same dataclass as a scenario ``fault:`` step, so a scenario reproduces the
run's fault exactly (one vocabulary for campaign and scenarios)."""

from __future__ import annotations

from emulators.serial import LinkFaults
from harness.fuzz.faults import LINE_FAULTS, Draw
from harness.lab.faults import Fault, LinkByteFault, PowerLoss, TftpPowerCut
from harness.lab.netfaults import TftpFaults


def fault_of(d: Draw) -> Fault | None:
    """The fault ``d`` arms (None for kind ``none``)."""
    f = dict(d.fault)
    kind = f.pop("kind")
    back = f.get("power_back")
    if kind == "none":
        return None
    if kind == "power_loss_erase":
        return PowerLoss(erase_sectors=f["erase_sectors"], power_back=back)
    if kind == "power_loss_program":
        return PowerLoss(program_bytes=f["program_bytes"], power_back=back)
    if kind in ("power_cut", "watchdog", "log_lines"):
        return LinkByteFault(
            kind,
            f["at_byte"],
            f["direction"],
            text=str(f.get("text", "")),
            power_back=back if kind == "power_cut" else None,
        )
    if kind in LINE_FAULTS:
        return LinkByteFault(kind, f["at_byte"], f["direction"], xor=f.get("xor"))
    if kind == "link_noise":
        return LinkFaults(**f)
    if kind == "link_silence":
        return LinkFaults(silent_after=f["silent_after"])
    if kind == "tftp_loss":
        return TftpFaults(
            loss=f["loss"], duplicate=f["duplicate"], delay=f["delay"], delay_rate=f["delay_rate"]
        )
    if kind == "tftp_gone":
        return TftpFaults(gone_after=f["gone_after"])
    if kind == "tftp_power_cut":
        return TftpPowerCut(f["after_packets"], power_back=back)
    raise ValueError(f"unknown fault kind {kind!r}")
