"""camrescue's device models: three real boot environments behind real virtual serial ports.

Shared parts: ``flash`` (the NOR flash model: programming only clears bits, erase
sets a sector to 0xFF), ``serial`` (the virtual UART on a pty), ``console`` (line
editing), ``device`` (power, reset, the firmware thread), ``faults`` (link-byte
fault triggers), ``timing``, ``memory``, ``transcript``. One package per board:
``hi3511/`` (HiSilicon U-Boot 1.1.4), ``w90p745/`` (Winbond boot loader),
``xr872/`` (XRadio boot ROM). Each module names its source (a seed transcript, a
public source file, a datasheet) or says "assumption". Nothing here imports
``recovery`` or ``harness``.
"""
