"""Root pytest configuration: the scenario collection and fixtures live in harness.scenarios.plugin
(loaded through the ``pytest11`` entry point when the package is installed)."""
