"""Shared test fixtures. The host-side terminal tests use is the harness's own
(:class:`harness.lab.console.ConsoleClient`, :func:`harness.lab.console.attach`).

Hypothesis runs without its per-example deadline (200 ms by default): how long an
example takes depends on the machine, and timing never decides pass/fail here
(issue 19: the suite passes with CPU hogs beside it, ``make test-busy``).

Ctrl-C tests send SIGINT to an engine they start. A process started in the background
by a non-interactive shell (``make test &``, ``nohup``, some CI runners) inherits SIGINT
*ignored*, and so would every engine the tests start: Python keeps an inherited
SIG_IGN, and the engine would never see the test's Ctrl-C. The suite gives SIGINT its
default meaning back in its own processes, so the engines it starts get it too."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from harness.lab.tftp import TftpServer

if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    # a Python handler is reset to the default by exec: the engines see Ctrl-C again
    signal.signal(signal.SIGINT, signal.default_int_handler)

settings.register_profile("camrescue", deadline=None)
settings.load_profile("camrescue")


@pytest.fixture
def tftp_server(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A tftpy server on 127.0.0.1 serving (and accepting uploads into) a fresh directory."""
    with TftpServer(tmp_path / "tftp") as server:
        yield server.root, server.port
