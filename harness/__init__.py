"""The test harness: everything that exercises the engine (recovery/) against the
emulated cameras (emulators/) without hardware.

:mod:`harness.boards` is the one board registry; :mod:`harness.lab` runs devices
for tests and scenarios (console client, engine runner, images, TFTP server,
network fault proxy, faults); :mod:`harness.scenarios` holds the declarative
scenarios (schema, loader, executor, report, pytest plugin);
:mod:`harness.fuzz` is the randomized fault campaign; :mod:`harness.firmware`
builds realistic flash images; :mod:`harness.cli` is the ``camrescue`` command.
"""
