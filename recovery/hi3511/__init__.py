"""The Hi3511 engine (U-Boot 1.1.4 console, TFTP).

Imports flow one way: ``cli`` -> ``operations`` (info, backup, flash, restore,
boot: each one function with its safe order readable top to bottom) ->
``driver`` (the U-Boot console driver) and ``network`` (IP settings, the TFTP
files) -> ``recovery.transport``. ``parsers`` reads U-Boot's and the kernel's
output; ``flashmap`` holds the flash and RAM map; ``backupfile`` the backup
image and its manifest; ``images`` the preflight of firmware files.
"""
