"""HiSilicon Hi3511 with U-Boot 1.1.4 (seed 000): see :mod:`emulators.hi3511.board`."""

from emulators.hi3511.board import Hi3511Device, add_emulate_options, emulate_kwargs

__all__ = ["Hi3511Device", "add_emulate_options", "emulate_kwargs"]
