"""camrescue's recovery engine: what a person runs against a real camera.

Shared parts: ``transport`` (any pyserial port, expect/send, transcript),
``errors`` (errors and exit codes), ``files`` (atomic outputs), ``progress``,
``jsonout``, ``cliutil`` (options and :func:`~recovery.cliutil.run_operation`),
``xmodem`` (the Xmodem-CRC sender), ``tftp/`` (the embedded TFTP server).
One package per board: ``hi3511/``, ``w90p745/``, ``xr872/``. ``cli`` is the
``camrescue BOARD OPERATION`` entry. Nothing here imports ``emulators`` or
``harness``.
"""
