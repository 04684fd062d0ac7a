"""What a running scenario's steps and checks share: the scenario, its lab, and
how placeholders and images become text and bytes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.lab.devices import Lab
from harness.lab.faults import ArmedFault
from harness.lab.images import build_image
from harness.scenarios.model import PLACEHOLDER_RE, PLACEHOLDERS, ImageSpec, Scenario


@dataclass
class RunContext:
    """One run of a scenario: its lab and how the engine runs (``inprocess`` or ``subprocess``)."""

    scenario: Scenario
    lab: Lab
    engine_mode: str = "inprocess"
    images: dict[str, bytes] = field(default_factory=dict)
    armed: dict[int, list[ArmedFault]] = field(default_factory=dict)  # by step index

    def subst(self, text: str, device: str) -> str:
        """``text`` with the placeholders (``{work}``, ``{port}``...) of ``device`` filled in.

        Before the device has started (its starting flash is being read) only the
        placeholders that do not depend on it are known."""
        values = {"work": str(self.lab.work), "scenario": self.scenario.name, "device": device}
        values.update({k: str(v) for k, v in self.scenario.variant.items()})
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

        return self._pattern().sub(fill, text)

    def _pattern(self) -> re.Pattern[str]:
        if not self.scenario.variant:
            return PLACEHOLDER_RE
        names = (*PLACEHOLDERS, *self.scenario.variant)
        return re.compile(r"\{(" + "|".join(map(re.escape, names)) + r")\}")

    def builder_args(self, args: Any) -> Any:
        return variant_args(args, self.scenario.variant)

    def image(self, im: ImageSpec, board: str, device: str, size_hint: int | None = None) -> bytes:
        """The bytes ``im`` describes (``size_hint`` sizes an erased image without ``size:``)."""
        if im.kind == "builder":
            return build_image(board, im.builder, **self.builder_args(im.args))
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


def variant_args(args: Any, variant: dict[str, Any]) -> Any:
    """Builder arguments with the variant placeholders filled in: a value that is
    exactly ``"{KEY}"`` becomes the variant's value as it is (not as text)."""
    if isinstance(args, dict):
        return {k: variant_args(v, variant) for k, v in args.items()}
    if isinstance(args, str):
        m = re.fullmatch(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", args)
        if m and m.group(1) in variant:
            return variant[m.group(1)]
    return args
