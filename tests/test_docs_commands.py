"""Every shell command in README.md and docs/*.md runs, verbatim, against the emulators.

Each document's fenced shell blocks (```sh, ```shell, ```bash, ```console) become one
bash script, run in a fresh directory that links the repository's top-level entries
(as a reader's checkout, but what the commands write stays there), with ``.venv/bin``
first on PATH; a command's
exit code must be 0, or N when its trailing comment starts with ``# exit N``.
Untagged blocks are not run, so a block that holds a command (a line starting with
``camrescue`` or ``$ ``) must be tagged: ```sh to run it, ```text for a synopsis or
console output (:func:`test_every_command_block_is_tagged`).

A marker line right before a block (an HTML comment, invisible on the page):

* ``<!-- docs-test: skip: REASON -->`` the block is not run (the reason is required);
* ``<!-- docs-test: hardware -->`` the block is for a real camera: ``--port
  /dev/ttyUSB0`` (or ``/dev/ttyUSB1`` ...) becomes the emulated board's port plus
  the options ``camrescue emulate`` prints for pasting (the TFTP endpoint, ``--reboot``);
  hardware blocks share a directory of their own (a page's real-camera path and its
  rehearsal path are alternatives: both may write ``cam-backup.bin``);
* ``<!-- docs-test: hardware; setup: CMD -->`` runs CMD first (a file the reader
  brings to the real camera, e.g. ``camrescue sample-image xr872 --out xr_system.img``:
  never shown on the page, so nobody flashes a sample on a real camera).

What the script does with a command, besides running it:

* ``$ `` prompts are removed; in a block with prompts, lines without one are output;
* ``camrescue emulate BOARD ...`` (with or without ``&``) starts in the background,
  runs until the document ends, and is waited for until it prints its port; a
  Hi3511 emulator gets ``--tftp-server 127.0.0.1:<free port>`` unless it has one, and
  ``127.0.0.1:6969`` in later commands becomes that endpoint (parallel test runs
  must not fight over one UDP port); likewise a TCP port in ``rfc2217://127.0.0.1:PORT``,
  ``socket://127.0.0.1:PORT`` or ``TCP-LISTEN:PORT`` becomes a free one (the same
  all through the page);
* ``/dev/pts/N`` or ``/dev/pts/7`` becomes the port of the emulator of the command's
  board (``camrescue BOARD ...``), or of the last one started; a command for a board
  with no emulator running starts one first;
* paths under ``/tmp/`` move into the run's directory;
* ``make``, ``pip install``, ``python -m venv`` and ``.venv/`` are refused: they would
  change the venv the test runs in (such blocks carry a skip marker;
  tests/test_install.py installs into a venv of its own);
* ``picocom``/``minicom``/``screen`` (interactive) are replaced by a check that the
  port exists;
* a command ending in ``&`` runs in the background; the block waits for it at its
  end and checks its exit code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_TAGS = {"sh", "shell", "bash", "console"}
BOARDS = ("hi3511", "w90p745", "xr872")
INTERACTIVE = ("picocom", "minicom", "screen")
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(.*?)\s*-->\s*$")
TCP_PORT = r"(?:(?:rfc2217|socket)://127\.0\.0\.1:|TCP-LISTEN:)(\d+)"
COMMAND_LINE = re.compile(r"^\s*(\$ |camrescue\b|\.venv/bin/camrescue\b|sudo camrescue\b)")


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    tag: str
    lines: list[str]
    marker: str = ""

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    text = path.read_text().split("\n")
    out: list[Block] = []
    i = 0
    marker = ""
    while i < len(text):
        m = FENCE.match(text[i])
        mk = MARKER.match(text[i])
        if mk:
            marker = mk.group(1)
        elif m:
            fence = m.group(2)
            j = i + 1
            while j < len(text) and not text[j].strip().startswith(fence):
                j += 1
            indent = len(m.group(1))
            body = [ln[indent:] if ln[:indent].isspace() else ln for ln in text[i + 1 : j]]
            out.append(Block(path, i + 1, m.group(3).lower(), body, marker))
            marker = ""
            i = j
        elif text[i].strip():
            marker = ""
        i += 1
    return out


# -- turning a block into bash ------------------------------------------------------


@dataclass
class Command:
    text: str  # the command as the page has it (continuations joined)
    line: int
    heredoc: list[str] = field(default_factory=list)


def commands(block: Block) -> list[Command]:
    prompts = any(ln.startswith("$ ") for ln in block.lines)
    out: list[Command] = []
    i = 0
    lines = block.lines
    while i < len(lines):
        raw = lines[i]
        start = i
        i += 1
        if prompts:
            if not raw.startswith("$ "):
                continue
            raw = raw[2:]
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        text = raw
        while text.rstrip().endswith("\\") and i < len(lines):
            nxt = lines[i][2:] if prompts and lines[i].startswith("> ") else lines[i]
            text = text.rstrip()[:-1].rstrip() + " " + nxt.strip()
            i += 1
        cmd = Command(text, block.line + 1 + start)
        h = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", _code(text))
        if h:
            while i < len(lines) and lines[i].strip() != h.group(1):
                cmd.heredoc.append(lines[i])
                i += 1
            cmd.heredoc.append(lines[i] if i < len(lines) else h.group(1))
            i += 1
        out.append(cmd)
    return out


def _code(text: str) -> str:
    """``text`` without its trailing ``# comment`` (quotes respected)."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip()
    return text.rstrip()


def _expected_exit(text: str) -> int:
    m = re.search(r"#\s*exit\s+(\d+)", text[len(_code(text)) :])
    return int(m.group(1)) if m else 0


PRELUDE = r"""
set -u
S=$(pwd)
mkdir -p "$S/tmp"
__pids=()
__bg=()
__n=0
LAST_PORT=""
trap 'for p in "${__pids[@]}"; do kill $p 2>/dev/null; done; wait 2>/dev/null' EXIT
__fail() { echo "docs-test: $*" >&2; exit 1; }
__free_tcp() { python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
__free_udp() { python -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
__emulate() {  # BOARD ARGS...: start an emulator, wait for its port
  local board=$1; shift
  __n=$((__n+1)); local log="$S/emulate-$__n.log"
  camrescue emulate "$board" "$@" >"$log" 2>&1 &
  local pid=$!
  __pids+=($pid)
  for i in $(seq 1 1200); do
    grep -q 'Ctrl-C stops it' "$log" 2>/dev/null && break
    kill -0 $pid 2>/dev/null || { cat "$log" >&2; __fail "camrescue emulate $board $* ended"; }
    sleep 0.05
  done
  grep -q 'Ctrl-C stops it' "$log" || { cat "$log" >&2; __fail "camrescue emulate $board: no port"; }
  local recipe
  recipe=$(sed -n 's/^  camrescue [a-z0-9]* info --port //p' "$log" | head -1)
  local port=${recipe%% *}
  local paste=""
  [ "$port" != "$recipe" ] && paste=${recipe#* }
  printf -v "PORT_$board" '%s' "$port"
  printf -v "PASTE_$board" '%s' "$paste"
  LAST_PORT=$port
}
__need() {  # BOARD: an emulator of BOARD must run
  local v="PORT_$1"
  if [ -z "${!v:-}" ]; then
    local extra=()
    [ "$1" = hi3511 ] && extra=(--tftp-server "127.0.0.1:$(__free_udp)")
    __emulate "$1" --flash "$S/auto-$1.bin" "${extra[@]}"
  fi
}
__waitbg() {
  for p in "${__bg[@]}"; do
    wait "${p%%:*}"; local rc=$?
    [ $rc -eq "$(echo "$p" | cut -d: -f2)" ] || __fail "${p#*:*:}: exit $rc, expected $(echo "$p" | cut -d: -f2)"
  done
  __bg=()
}
"""


def script(path: Path) -> tuple[str, list[str]]:
    """The bash script for one document, and the blocks it skips (with reasons)."""
    out = [PRELUDE]
    skipped: list[str] = []
    tftp_sub = False
    # TCP ports a page serves on: free ones instead, the same all through the page
    tcp = sorted(set(re.findall(TCP_PORT, path.read_text())), key=int)
    out += [f"TCP_{n}=$(__free_tcp)" for n in tcp]
    for block in blocks(path):
        if block.tag not in SHELL_TAGS:
            continue
        if block.marker.startswith("skip"):
            reason = block.marker.partition(":")[2].strip()
            assert reason, f"{block.where}: docs-test skip needs a reason"
            skipped.append(f"{block.where}: {reason}")
            continue
        hardware = block.marker.startswith("hardware")
        out.append(f"echo '## {block.where}' >&2")
        # the reader at a real camera is not the one rehearsing beside it: own files
        out.append('mkdir -p "$S/hardware" && cd "$S/hardware"' if hardware else 'cd "$S"')
        for part in block.marker.split(";")[1:]:
            key, _, setup = part.strip().partition(":")
            assert key == "setup" and setup.strip(), f"{block.where}: bad marker {block.marker!r}"
            out.append(f'{setup.strip()} >&2 || __fail "{block.where}: setup failed"')
        for cmd in commands(block):
            where = f"{block.path.relative_to(ROOT)}:{cmd.line}"
            code = _code(cmd.text)
            want = _expected_exit(cmd.text)
            code = re.sub(r"(?<![\w.])/tmp/", "$S/tmp/", code)
            if tftp_sub:
                code = code.replace("127.0.0.1:6969", "$TFTP_hi3511")
            code = re.sub(
                TCP_PORT, lambda m: m.group(0)[: -len(m.group(1))] + f"$TCP_{m.group(1)}", code
            )
            background = code.endswith("&") and not code.endswith("&&")
            if background:
                code = code[:-1].rstrip()
            words = code.split()
            if re.search(r"/dev/ttyUSB\d", code) and not hardware:
                raise AssertionError(
                    f"{where}: a command for real hardware (/dev/ttyUSB*) in a block "
                    "without <!-- docs-test: hardware -->"
                )
            prog = words[0] if words else ""
            if prog in ("make", "pip", "pip3") or re.search(r"\bpip install|-m venv|\.venv/", code):
                raise AssertionError(
                    f"{where}: installs or rebuilds the venv this test runs in: mark the block "
                    "<!-- docs-test: skip: REASON --> (tests/test_install.py covers installing)"
                )
            if prog in ("sudo",) and len(words) > 1:
                prog = words[1]
            if len(words) >= 3 and words[0] == "camrescue" and words[1] == "emulate":
                board = words[2]
                rest = code.split(None, 3)[3] if len(words) > 3 else ""
                if board == "hi3511" and "--tftp-server" not in rest:
                    out.append('TFTP_hi3511="127.0.0.1:$(__free_udp)"')
                    rest += ' --tftp-server "$TFTP_hi3511"'
                    tftp_sub = True
                out.append(f"echo '+ {where}: {_q(cmd.text)}' >&2")
                out.append(f"__emulate {board} {rest}")
                continue
            board = next((b for b in BOARDS if re.search(rf"\bcamrescue {b}\b", code)), None)
            if board:
                out.append(f"__need {board}")
                code = re.sub(r"/dev/pts/(N|\d+)\b", f"$PORT_{board}", code)
                code = re.sub(r"--port /dev/ttyUSB\d", f"--port $PORT_{board} $PASTE_{board}", code)
            else:
                code = re.sub(r"/dev/pts/(N|\d+)\b", "$LAST_PORT", code)
            if prog in INTERACTIVE:
                port = next((w for w in code.split() if w.startswith("$")), "$LAST_PORT")
                code = f'test -e "{port}"'
            out.append(f"echo '+ {where}: {_q(cmd.text)}' >&2")
            if background:
                out.append(f"{code} &")
                out.append(f'__bg+=("$!:{want}:{where}")')
                continue
            out.append(code)
            out += cmd.heredoc
            out.append(
                f'__rc=$?; [ $__rc -eq {want} ] || __fail "{where}: exit $__rc, expected {want}"'
            )
        out.append("__waitbg")
    return "\n".join(out) + "\n", skipped


def _q(text: str) -> str:
    return text.replace("'", "'\\''")


def _runnable(path: Path) -> bool:
    return any(b.tag in SHELL_TAGS and not b.marker.startswith("skip") for b in blocks(path))


@pytest.mark.parametrize("doc", [d for d in DOCS if _runnable(d)], ids=lambda d: d.name)
def test_doc_commands_run(doc: Path, tmp_path: Path) -> None:
    text, skipped = script(doc)
    # the reader's checkout: the repository's files, but what the commands write stays here
    for entry in ROOT.iterdir():
        # never .venv: a command must not reach the venv this test runs in
        if entry.name not in (".git", ".venv") and not entry.name.endswith((".bin", ".json")):
            (tmp_path / entry.name).symlink_to(entry)
    (tmp_path / "docs-test.sh").write_text(text)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.run(
        ["bash", str(tmp_path / "docs-test.sh")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert proc.returncode == 0, (
        f"{doc.name}: a command failed\n--- stderr (tail)\n{proc.stderr[-6000:]}"
        f"\n--- stdout (tail)\n{proc.stdout[-3000:]}"
    )


def test_every_command_block_is_tagged() -> None:
    """A block holding a shell command is ```sh (run) or ```text (not a command)."""
    untagged = [
        f"{b.where}: {next(ln for ln in b.lines if COMMAND_LINE.match(ln)).strip()[:70]}"
        for doc in DOCS
        for b in blocks(doc)
        if b.tag == "" and any(COMMAND_LINE.match(ln) for ln in b.lines)
    ]
    assert not untagged, "untagged blocks with commands:\n" + "\n".join(untagged)


def test_skips_give_reasons() -> None:
    for doc in DOCS:
        for b in blocks(doc):
            if b.marker.startswith("skip"):
                assert b.marker.partition(":")[2].strip(), f"{b.where}: skip without a reason"
            elif b.marker:
                assert b.marker.split(";")[0] == "hardware", f"{b.where}: unknown {b.marker!r}"


def test_the_extractor_sees_what_a_reader_sees(tmp_path: Path) -> None:
    """Continuations, prompts, heredocs, comments and markers as the page shows them."""
    page = tmp_path / "page.md"
    page.write_text(
        "intro\n\n<!-- docs-test: hardware -->\n```sh\n"
        "camrescue hi3511 info --port /dev/ttyUSB0 \\\n    --cat /etc/version   # exit 8: x\n"
        "```\n\n```console\n$ camrescue ports\n/dev/ttyS0\n$ python - <<'PY'\nprint(1)\nPY\n```\n"
    )
    first, second = blocks(page)
    assert first.marker == "hardware" and second.marker == ""
    (c,) = commands(first)
    assert _code(c.text) == "camrescue hi3511 info --port /dev/ttyUSB0 --cat /etc/version"
    assert _expected_exit(c.text) == 8
    a, b = commands(second)
    assert a.text == "camrescue ports" and b.heredoc == ["print(1)", "PY"]
