"""``pip install .`` (what ``pipx install .`` and ``uv tool install .`` do in a venv of
their own) gives a working ``camrescue`` command outside the checkout.

The project is installed with ``--no-deps`` into a fresh venv made with
``--without-pip`` by this interpreter's pip (``--prefix``; the build backend,
setuptools, comes from the configured index as in any ``pip install .``), and its
dependencies (pyserial, tftpy, PyYAML, pytest) come from the test venv through a
``.pth`` file, so only the build needs an index. The installed command is then run from
a directory outside the checkout: every package (emulators, recovery, harness and
their subpackages) must be in the install, not found through the working directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_pip_install_gives_a_camrescue_command_that_runs_outside_the_checkout(
    tmp_path: Path,
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # the dependencies: the test venv's site-packages, after the venv's own
    Path(purelib, "zz-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    work = tmp_path / "build"
    work.mkdir()
    done = subprocess.run(
        [
            # --ignore-installed: without it pip "replaces" the test venv's own
            # (editable) camrescue, i.e. uninstalls it, whatever --prefix says
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
            "--ignore-installed", "--prefix", str(venv),
            "--no-warn-script-location", str(ROOT),
        ],
        cwd=work, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (Path(sys.executable).parent / "camrescue").exists(), "the test venv lost camrescue"
    camrescue = venv / "bin" / "camrescue"
    assert camrescue.exists()
    # the console script must run the venv's python
    assert camrescue.read_text().splitlines()[0].startswith("#!")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}:/usr/bin:/bin"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(py), str(camrescue), *args],
            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    where = subprocess.run(
        [str(py), "-c", "import recovery, harness, emulators; print(recovery.__file__)"],
        cwd=elsewhere, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert where.stdout.startswith(purelib), (where.stdout, where.stderr)
    for args in (["--help"], ["ports"], ["hi3511", "info", "--help"]):
        r = run(*args)
        assert r.returncode == 0, (args, r.stderr)
    r = run("sample-image", "hi3511", "--out", "root.jffs2")
    assert r.returncode == 0 and (elsewhere / "root.jffs2").stat().st_size > 0, r.stderr
    r = run("scenarios", "list")
    assert r.returncode == 0, r.stderr
