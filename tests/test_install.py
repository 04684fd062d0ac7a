"""Installing camrescue as README.md says gives a working ``camrescue`` command outside
the checkout: ``pip install .`` into a fresh venv, ``pipx install .`` and
``uv tool install .``.

The pip test installs the project with ``--no-deps`` into a fresh venv made with
``--without-pip`` by this interpreter's pip (``--prefix``; the build backend,
setuptools, comes from the configured index as in any ``pip install .``), and its
dependencies (pyserial, tftpy, PyYAML, pytest) come from the test venv through a
``.pth`` file, so only the build needs an index. The installed command is then run from
a directory outside the checkout: every package (emulators, recovery, harness and
their subpackages) must be in the install, not found through the working directory.

The pipx and uv tests install a copy of the checkout the way a reader does, into homes
under the test's temporary directory (``PIPX_HOME``/``PIPX_BIN_DIR``,
``UV_TOOL_DIR``/``UV_TOOL_BIN_DIR``), with the dependencies from the package index pip is
configured with (uv does not read pip's configuration: it is handed pip's ``index-url``
when one is set, and may not download a Python of its own). The installed command then
prints its help and runs ``camrescue hi3511 info --reboot`` against an emulated camera's
pty. pipx and uv come with the ``[test]`` extra; without them the test is skipped and
says which one is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

import pytest

from emulators.hi3511 import Hi3511Device
from harness.firmware.hi3511 import vendor_flash
from harness.lab.tftp import free_udp_port

ROOT = Path(__file__).resolve().parent.parent
# what a checkout holds besides the project: left out of the copy that gets installed
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "*.egg-info", "__pycache__", "reports", ".hypothesis",
    ".pytest_cache", ".mypy_cache", ".ruff_cache", "mutants",
)  # fmt: skip


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
    # the bundled scenarios came with it (<prefix>/share/camrescue/scenarios): every one is
    # listed and ready, far from any checkout, and one runs by its name
    r = run("scenarios", "list")
    assert r.returncode == 0, r.stderr
    for f in sorted((ROOT / "scenarios").glob("*.yaml")):
        assert re.search(rf"{re.escape(f.stem)}\s.*\bready\b", r.stdout), (f.stem, r.stdout)
    assert str(venv / "share" / "camrescue" / "scenarios" / "hi3511-backup-verify.yaml") in r.stdout
    r = run("scenarios", "run", "hi3511-backup-verify", "--report", str(elsewhere / "rep"))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


# -- pipx and uv ----------------------------------------------------------------------------
def _tool(name: str) -> str:
    """The installer beside this interpreter (the [test] extra puts it there), else on PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install '.[test]' brings it)")
    return found


def _pip_index() -> str | None:
    """The index pip is configured with (``PIP_INDEX_URL`` or pip's config files), if any."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"]
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        if key.endswith(".index-url") and not key.endswith("extra-index-url"):
            return value.strip().strip("'\"")
    return None


def _clean_env(tmp_path: Path) -> dict[str, str]:
    """This environment, less the test venv's marks; HOME stays (pip's user configuration
    is read from it), the installers' homes are set by the callers."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def _pipx_install(src: Path, tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    pipx = _tool("pipx")
    env = _clean_env(tmp_path)
    home, bindir = tmp_path / "pipx", tmp_path / "pipx-bin"
    env.update(PIPX_HOME=str(home), PIPX_BIN_DIR=str(bindir), PIPX_MAN_DIR=str(tmp_path / "man"))
    done = subprocess.run(
        [pipx, "install", "."], cwd=src, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return bindir, home, env


def _uv_install(src: Path, tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    uv = _tool("uv")
    env = _clean_env(tmp_path)
    home, bindir = tmp_path / "uv-tools", tmp_path / "uv-bin"
    env.update(
        UV_TOOL_DIR=str(home),
        UV_TOOL_BIN_DIR=str(bindir),
        UV_CACHE_DIR=str(tmp_path / "uv-cache"),
        UV_PYTHON_DOWNLOADS="never",  # this machine's Python, never one from the network
        UV_NO_CONFIG="1",
    )
    index = _pip_index()
    if index:
        env["UV_DEFAULT_INDEX"] = index
    done = subprocess.run(
        [uv, "tool", "install", "--python", sys.executable, "."],
        cwd=src, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return bindir, home, env


INSTALLERS: dict[str, Callable[[Path, Path], tuple[Path, Path, dict[str, str]]]] = {
    "pipx": _pipx_install,
    "uv": _uv_install,
}


@pytest.mark.slow
@pytest.mark.parametrize("installer", sorted(INSTALLERS))
def test_tool_install_gives_a_camrescue_that_reaches_an_emulated_camera(
    installer: str, tmp_path: Path
) -> None:
    src = tmp_path / "camrescue"
    shutil.copytree(ROOT, src, ignore=NOT_SOURCE, symlinks=True)
    bindir, home, env = INSTALLERS[installer](src, tmp_path)
    shutil.rmtree(src)  # the tool must not need the checkout it came from
    camrescue = bindir / "camrescue"
    assert camrescue.exists(), sorted(p.name for p in bindir.iterdir())
    # the command runs the tool's own venv, not the test's
    shebang = camrescue.read_text().splitlines()[0]
    assert shebang.startswith(f"#!{home}"), shebang
    env["PATH"] = f"{bindir}:/usr/bin:/bin"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["camrescue", *args], cwd=elsewhere, env=env, capture_output=True, text=True,
            timeout=180,
        )  # fmt: skip

    r = run("--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: camrescue") and "hi3511" in r.stdout

    udp = free_udp_port()
    flash = vendor_flash("A")
    dev = Hi3511Device(initial_flash=flash, tftp_server=("127.0.0.1", udp))
    try:
        dev.power_on()  # it boots Linux; the engine types reboot and stops the countdown
        r = run(
            "hi3511", "info", "--port", dev.path, "--reboot", "--json", "--wait", "20",
            "--tftp-bind", f"127.0.0.1:{udp}",
        )  # fmt: skip
        assert dev.crash is None, dev.crash_text
    finally:
        dev.close()
    assert r.returncode == 0, r.stdout + r.stderr
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["operation"] == "info"
    assert info["uboot_version"].startswith("U-Boot 1.1.4")
    assert info["flash"]["size"] == len(flash)
