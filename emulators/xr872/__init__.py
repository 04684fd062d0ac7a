"""XRadio XR872 (board XF16): boot ROM UART protocol, 1 MiB SPI NOR, camera firmware."""

from emulators.xr872.board import XR872Device, add_emulate_options, emulate_kwargs

__all__ = ["XR872Device", "add_emulate_options", "emulate_kwargs"]
