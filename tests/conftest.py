"""Shared test fixtures. The host-side terminal tests use is the harness's own
(:class:`harness.lab.console.ConsoleClient`, :func:`harness.lab.console.attach`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.lab.tftp import TftpServer


@pytest.fixture
def tftp_server(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A tftpy server on 127.0.0.1 serving (and accepting uploads into) a fresh directory."""
    with TftpServer(tmp_path / "tftp") as server:
        yield server.root, server.port
