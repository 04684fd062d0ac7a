"""What a running scenario's steps and checks share: the scenario, its lab, and
how placeholders and images become text and bytes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.lab.devices import Lab
from harness.lab.images import build_image
from harness.scenarios.model import PLACEHOLDER_RE, ImageSpec, Scenario


@dataclass
class RunContext:
    """One run of a scenario: its lab and how the engine runs (``inprocess`` or ``subprocess``)."""

    scenario: Scenario
    lab: Lab
    engine_mode: str = "inprocess"
    images: dict[str, bytes] = field(default_factory=dict)

    def subst(self, text: str, device: str) -> str:
        """``text`` with the placeholders (``{work}``, ``{port}``...) of ``device`` filled in.

        Before the device has started (its starting flash is being read) only the
        placeholders that do not depend on it are known."""
        values = {"work": str(self.lab.work), "scenario": self.scenario.name, "device": device}
        dev = self.lab.devices.get(device)
        if dev is not None:
            values.update(
                port=dev.path,
                tftp_port=str(dev.server_port),
                tftp_bind=dev.tftp_bind,
                dir=str(dev.dir),
                flash_file=str(dev.flash_path),
            )

        def fill(m: re.Match[str]) -> str:
            key = m.group(1)
            if key not in values:
                raise ValueError(f"{{{key}}} is not known before device {device!r} has started")
            return values[key]

        return PLACEHOLDER_RE.sub(fill, text)

    def image(self, im: ImageSpec, board: str, device: str, size_hint: int | None = None) -> bytes:
        """The bytes ``im`` describes (``size_hint`` sizes an erased image without ``size:``)."""
        if im.kind == "builder":
            return build_image(board, im.builder, **im.args)
        if im.kind == "file":
            raw = self.subst(im.file, device)
            p = Path(raw)
            if not p.is_absolute():
                p = self.scenario.path.parent / p
            if any(ch in p.name for ch in "*?["):
                matches = sorted(p.parent.glob(p.name))
                if len(matches) != 1:
                    raise FileNotFoundError(
                        f"{p}: {len(matches)} files match, expected exactly one"
                    )
                p = matches[0]
            data = p.read_bytes()
            end = None if im.length is None else im.offset + im.length
            return data[im.offset : end]
        if im.kind == "erased":
            n = im.size or size_hint
            if n is None:
                raise ValueError("an erased file needs size:")
            return b"\xff" * n
        if im.kind == "hex":
            return bytes.fromhex(im.hex)
        raise ValueError(f"cannot make bytes from a {im.kind} image")
