"""The fault campaign (harness/fuzz.py) and the device's fault hooks (emulators/device.py).

The hooks are driven over the real pty of an emulated Hi3511; the judge is checked
on hand-made outcomes (so a broken checker cannot pass silently); then a bounded
campaign runs the real engine on every board and operation under drawn faults
and asserts the issue's two hard numbers: no silent corruption, no lost backup.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import time
from pathlib import Path

import pytest

from emulators.device import LinkTrigger
from emulators.hi3511 import Hi3511Device
from harness import fuzz
from harness.firmware.hi3511 import vendor_flash
from harness.fuzz.arming import fault_of
from harness.lab import EngineResult
from harness.lab.console import attach
from harness.scenarios import load_scenario
from harness.scenarios.model import FaultStep

PROMPT = "hilinux # "


@pytest.fixture(scope="module")
def vendor_a() -> bytes:
    return vendor_flash("A", uboot="upstream")  # the texts asserted are upstream's


@pytest.fixture
def board(vendor_a):
    dev = Hi3511Device(initial_flash=vendor_a, uboot_variant="upstream")
    try:
        term = attach(dev)
        yield dev, term
        term.close()
        assert dev.crash is None, dev.crash_text
    finally:
        dev.close()


# -- the device's fault hooks -----------------------------------------------------------


def test_a_watchdog_trigger_resets_at_the_chosen_host_byte(board):
    dev, term = board
    before = dev.flash.snapshot()
    trig = dev.arm_trigger(LinkTrigger("host", 3, "reset"))
    term.write("echo never\r")
    out = term.read_until("Hit any key to stop autoboot").decode("latin-1")
    assert trig.fired and dev.boots == 2
    # the third byte read restarts the CPU before it is echoed
    assert out.startswith("ec") and not out.startswith("ech")
    assert "never\r\n" not in out and "U-Boot 1.1.4" in out
    term.write(" ")
    term.read_until(PROMPT)
    assert term.cmd("echo alive") == "alive\r\n"
    assert dev.flash.snapshot() == before and dev.powered


def test_an_injected_log_line_arrives_between_the_echo_and_the_output(board):
    dev, term = board
    dev.arm_trigger(LinkTrigger("host", 0, "inject", b"eth0: link up\r\n"))
    term.write("echo hi\r")
    got = term.read_until(PROMPT).decode("latin-1")
    # the echo of the command line (U-Boot ends it with \r\r\n), then the log line, then
    # the command's output
    assert re.fullmatch(r"echo hi\r*\neth0: link up\r\nhi\r\n" + re.escape(PROMPT), got), got
    assert term.cmd("echo again") == "again\r\n"  # it fires once


def test_a_power_loss_trigger_cuts_at_a_device_byte_until_power_on(board):
    dev, term = board
    dev.arm_trigger(LinkTrigger("device", 5, "power_loss"))
    term.write("version\r")
    assert dev.wait_idle(5)
    time.sleep(0.05)
    assert term.read_for(0.2) == b"versi"  # the echo stops at the fifth byte
    assert dev.power_lost and not dev.powered and not dev.alive
    dev.power_on()
    term.read_until("Hit any key to stop autoboot")
    term.write(" ")
    term.read_until(PROMPT)
    assert dev.boots == 2
    assert term.cmd("echo back") == "back\r\n"


def test_disarmed_triggers_never_fire_and_counts_advance(board):
    dev, term = board
    r0, w0 = dev.link_counts
    trig = dev.arm_trigger(LinkTrigger("host", 2, "reset"))
    dev.disarm_triggers()
    assert term.cmd("echo quiet") == "quiet\r\n"
    r1, w1 = dev.link_counts
    assert not trig.fired and dev.boots == 1
    assert r1 - r0 == len("echo quiet\r") and w1 - w0 >= len("echo quiet\r\nquiet\r\n")


def test_a_reset_from_outside_restarts_the_firmware(board):
    dev, term = board
    dev.reset()
    term.read_until("Hit any key to stop autoboot")
    term.write(" ")
    term.read_until(PROMPT)
    assert dev.boots == 2 and dev.powered
    assert term.cmd("echo up") == "up\r\n"


def test_bad_triggers_are_refused():
    with pytest.raises(ValueError):
        LinkTrigger("sideways", 1, "reset")
    with pytest.raises(ValueError):
        LinkTrigger("host", 1, "explode")
    with pytest.raises(ValueError):
        LinkTrigger("host", -1, "reset")


# -- drawing ------------------------------------------------------------------------------


def test_a_draw_depends_only_on_its_arguments():
    for board in fuzz.BOARD_OPS:
        for seed in range(20):
            assert fuzz.draw(board, seed) == fuzz.draw(board, seed)
    kinds = {fuzz.draw("hi3511", s).fault["kind"] for s in range(200)}
    assert kinds == set(k for k, _ in fuzz.applicable_faults("hi3511", "flash"))


def test_operations_cycle_and_moments_stay_inside_the_budgets():
    for board, ops in fuzz.BOARD_OPS.items():
        seen = [fuzz.draw(board, s).op for s in range(len(ops))]
        assert seen == list(ops)
        for s in range(120):
            d = fuzz.draw(board, s)
            b = fuzz.budget(board, d.op, d.profile)
            f = d.fault
            if "program_bytes" in f:
                assert 0 <= f["program_bytes"] < max(1, b.program_bytes)
            if "erase_sectors" in f:
                assert 0 <= f["erase_sectors"] < max(1, b.erase_sectors)
            if "at_byte" in f:
                limit = b.host_bytes if f["direction"] == "host" else b.device_bytes
                assert 0 <= f["at_byte"] < limit
            if f["kind"] in fuzz.WRITE_FAULTS:
                assert d.op not in ("backup", "dump")
            if f["kind"] in fuzz.TFTP_FAULTS:
                assert board == "hi3511"


def test_a_line_fault_damages_one_bit_or_loses_one_byte():
    for seed in range(40):
        d = fuzz.draw("w90p745", seed, faults=["corrupt_byte", "drop_byte"])
        f, armed = d.fault, fault_of(d)
        assert armed is not None and armed.action == f["kind"] and armed.at_byte == f["at_byte"]
        if f["kind"] == "corrupt_byte":
            assert bin(f["xor"]).count("1") == 1 and armed.xor == f["xor"]
        else:
            assert "xor" not in f and armed.xor is None


def test_ops_and_fault_kinds_can_be_narrowed():
    d = fuzz.draw("xr872", 7, ops=["clone"], faults=["power_loss_program"])
    assert d.op == "clone" and d.fault["kind"] == "power_loss_program"
    # a kind that does not apply to the operation leaves only "none"
    assert fuzz.draw("xr872", 7, ops=["dump"], faults=["power_loss_erase"]).fault == {
        "kind": "none"
    }
    with pytest.raises(ValueError, match="no operation"):
        fuzz.draw("w90p745", 1, ops=["clone"])
    with pytest.raises(ValueError, match="unknown board"):
        fuzz.draw("hi3512", 1)
    with pytest.raises(ValueError, match="unknown fault"):
        fuzz.draw("hi3511", 1, faults=["meteor"])


# -- judging (hand-made outcomes, so that a broken judge fails here) -----------------------


def _plan(tmp_path: Path, *, read_only: bool = False) -> fuzz.Plan:
    initial = bytes(range(256)) * 64  # 16 KiB
    expected = b"\x55" * 0x1000 + initial[0x1000:]
    (tmp_path / "user.bin").write_bytes(b"the user's backup")
    return fuzz.Plan(
        argv=[],
        rerun_argv=[],
        initial=initial,
        expected=expected,
        files={"user.bin": b"the user's backup"},
        inputs=["user.bin"],
        read_only=read_only,
        coverage=lambda work, ok: [(0, 0x1000)] if ok else [],
    )


def _result(exit: int, payload: dict | None, *, timed_out: bool = False) -> EngineResult:
    return EngineResult(["x"], exit, json.dumps(payload or {}), "", payload, 1.0, timed_out)


def _judge(tmp_path, plan, r, final):
    hashes = {"user.bin": hashlib.sha256(b"the user's backup").hexdigest()}
    return fuzz.judge(fuzz.Draw("xr872", "write", 1), plan, r, tmp_path, hashes, final)


def test_judge_success_with_the_expected_flash_is_verified(tmp_path):
    plan = _plan(tmp_path)
    res = _judge(tmp_path, plan, _result(0, {"ok": True, "message": "done"}), plan.expected)
    assert res.outcome == "verified" and res.problems == []


def test_judge_success_with_other_bytes_is_silent_corruption(tmp_path):
    plan = _plan(tmp_path)
    final = bytearray(plan.expected)
    final[0x2345] ^= 1
    res = _judge(tmp_path, plan, _result(0, {"ok": True, "message": "done"}), bytes(final))
    assert res.outcome == "silent_corruption"
    assert "0x2000..0x3000" in res.problems[0]


def test_judge_a_changed_backup_is_backup_lost(tmp_path):
    plan = _plan(tmp_path)
    (tmp_path / "user.bin").write_bytes(b"the user's backup, truncated by a bug")
    err = {"ok": False, "message": "m", "flash_state": "untouched", "hint": None}
    res = _judge(tmp_path, plan, _result(4, err), plan.initial)
    assert res.outcome == "backup_lost" and "was changed" in res.problems[0]


def test_judge_changes_outside_the_backup_are_backup_lost(tmp_path):
    plan = _plan(tmp_path)
    final = bytearray(plan.initial)
    final[0x1801] ^= 0xFF  # outside the range the backup covers
    err = {"ok": False, "message": "m", "flash_state": "partly written", "hint": "rerun"}
    res = _judge(tmp_path, plan, _result(7, err), bytes(final))
    assert res.outcome == "backup_lost" and "0x1000..0x2000" in res.problems[0]


def test_judge_a_false_untouched_claim_is_wrong_state(tmp_path):
    plan = _plan(tmp_path)
    final = b"\xff" * 0x800 + plan.initial[0x800:]  # inside the covered range
    err = {"ok": False, "message": "m", "flash_state": "untouched (only read)", "hint": None}
    res = _judge(tmp_path, plan, _result(7, err), final)
    assert res.outcome == "wrong_state"


def test_judge_a_clean_failure_and_the_unclear_ones(tmp_path):
    plan = _plan(tmp_path)
    final = b"\xff" * 0x1000 + plan.initial[0x1000:]
    ok = {"ok": False, "message": "m", "flash_state": "erased", "hint": "camrescue ..."}
    assert _judge(tmp_path, plan, _result(7, ok), final).outcome == "clear_error"
    no_hint = dict(ok, hint=None)
    assert _judge(tmp_path, plan, _result(7, no_hint), final).outcome == "unclear"
    seen_only = dict(ok, hint="seen: ' \r\n# '")  # says what happened, not what to do
    assert _judge(tmp_path, plan, _result(4, seen_only), final).outcome == "unclear"
    rerun = dict(ok, hint="power-cycle the camera and run again")
    assert _judge(tmp_path, plan, _result(4, rerun), final).outcome == "clear_error"
    assert _judge(tmp_path, plan, _result(4, None), plan.initial).outcome == "unclear"
    no_state = {"ok": False, "message": "m", "flash_state": None}
    assert _judge(tmp_path, plan, _result(4, no_state), plan.initial).outcome == "unclear"


def test_judge_hang_crash_and_read_only_changes(tmp_path):
    plan = _plan(tmp_path)
    assert _judge(tmp_path, plan, _result(-1, None, timed_out=True), plan.initial).outcome == "hang"
    crash = {"ok": False, "message": "internal error: KeyError", "flash_state": "untouched"}
    assert _judge(tmp_path, plan, _result(1, crash), plan.initial).outcome == "crash"
    ro = _plan(tmp_path, read_only=True)
    ro.expected = ro.initial
    final = b"\xaa" + ro.initial[1:]
    res = _judge(tmp_path, ro, _result(0, {"ok": True, "message": "m"}), final)
    assert res.outcome == "silent_corruption" and "read-only" in res.problems[0]


# -- saved failures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("board", "op", "kind"),
    [
        ("xr872", "write", "power_cut"),
        ("w90p745", "restore", "power_loss_erase"),
        ("hi3511", "flash", "tftp_loss"),
        ("hi3511", "backup", "link_noise"),
        ("w90p745", "restore", "corrupt_byte"),
        ("xr872", "dump", "drop_byte"),
    ],
)
def test_a_saved_failure_is_a_valid_scenario_that_replays_its_draw(tmp_path, board, op, kind):
    d = fuzz.draw(board, 3, ops=[op], faults=[kind])
    assert d.fault["kind"] == kind
    res = fuzz.RunResult(d, "wrong_state", 7, "m", "untouched", None, ["the flash changed"])
    path = fuzz.save_failure(d, res, tmp_path / "saved")
    sc = load_scenario(path)  # the harness's own schema accepts it
    assert sc.name == d.name and sc.board == board
    assert sc.steps[-1].kind == "engine" and sc.steps[-1].argv[:2] == [board, op]
    assert fuzz.read_draw(path) == d
    text = path.read_text()
    assert text.startswith(fuzz.HEADER_PREFIX)
    assert f"--seed {d.seed} --runs 1" in text
    # the scenario arms exactly the fault the run armed (one vocabulary)
    assert isinstance(sc.steps[0], FaultStep) and sc.steps[0].faults == [fault_of(d)]
    for name in sc.files:
        spec = sc.files[name]
        if spec.kind == "file":
            assert (path.parent / spec.file).is_file()


def test_read_draw_refuses_a_plain_scenario(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("name: x\nboard: hi3511\nsteps: [power_cycle]\n")
    with pytest.raises(ValueError, match="not a saved fuzz draw"):
        fuzz.read_draw(p)


# -- the command line --------------------------------------------------------------------------


def test_fuzz_hooks_into_the_scenarios_command():
    from harness.scenarios import cli as runner

    parser = argparse.ArgumentParser(prog="camrescue")
    sub = parser.add_subparsers(dest="command")
    fuzz.hook_scenarios(runner.register_cli(sub))
    args = parser.parse_args(
        ["scenarios", "fuzz", "--board", "xr872", "--runs", "3", "--seed", "9"]
    )
    assert args.func is fuzz.fuzz_command and args.runs == 3 and args.board == ["xr872"]


def test_bad_fuzz_arguments_are_refused(capsys):
    assert fuzz.main(["--runs", "2"]) == 2
    assert "give --board" in capsys.readouterr().err
    assert fuzz.main(["--board", "w90p745", "--op", "clone"]) == 2
    assert "no operation clone" in capsys.readouterr().err
    assert fuzz.main(["--board", "xr872", "--runs", "0"]) == 2
    assert fuzz.main(["--replay", "/nonexistent/x.yaml"]) == 2


# -- the bounded campaign ---------------------------------------------------------------------

# Faults whose runs end within seconds in fast mode (the long timeouts of a camera
# that lost power belong to the bench): every operation of every board gets a few.
QUICK_FAULTS = {
    "hi3511": ["log_lines", "link_noise", "tftp_gone", "power_loss_erase", "power_cut"],
    "w90p745": ["log_lines", "link_noise", "watchdog", "power_cut"],
    "xr872": ["log_lines", "none", "power_loss_program"],
}
RUNS_PER_OP = {"hi3511": 2, "w90p745": 2, "xr872": 1}


@pytest.mark.slow
def test_a_bounded_campaign_loses_nothing_and_never_lies(tmp_path, capsys):
    results: list[fuzz.RunResult] = []
    t0 = time.monotonic()
    for board, kinds in QUICK_FAULTS.items():
        camp = fuzz.Campaign(
            boards=[board],
            runs=RUNS_PER_OP[board] * len(fuzz.BOARD_OPS[board]),
            seed=500,
            faults=kinds,
            save=tmp_path / "failures",
            rerun=False,
            timeout=30,
        )
        results += camp.run()
    table = fuzz.format_table(results)
    with capsys.disabled():
        print("\n" + "\n".join(r.line() for r in results))
        print(f"{table}\n({time.monotonic() - t0:.0f} s)")
    seen = {(r.draw.board, r.draw.op) for r in results}
    assert seen == {(b, o) for b, ops in fuzz.BOARD_OPS.items() for o in ops}
    for r in results:
        assert r.outcome not in fuzz.MUST_BE_ZERO, (r.line(), r.problems, r.saved)
    assert re.search(r"silent corruption 0 \(must be 0\), backup lost 0 \(must be 0\)$", table)
    for r in results:
        if r.outcome in fuzz.BAD_OUTCOMES:
            assert r.saved and Path(r.saved).is_file()
    # the faults were really armed: whether each struck is known, and most did
    armed = [r for r in results if r.draw.fault["kind"] != "none"]
    assert all(r.fired is not None for r in armed), [r.line() for r in armed if r.fired is None]
    assert sum(bool(r.fired) for r in armed) >= len(armed) // 2, [r.line() for r in armed]


def test_a_dump_cut_by_a_power_loss_fails_clearly_and_resumes_on_the_rerun():
    d = fuzz.Draw(
        "w90p745",
        "dump",
        1,
        "quick",
        {"kind": "power_cut", "direction": "device", "at_byte": 30000, "power_back": 0.05},
    )
    res, lab_dir = fuzz.run_draw(d, rerun=True, timeout=60)
    assert lab_dir is None  # nothing kept: nothing went wrong
    assert res.fired is True
    assert res.outcome == "clear_error", (res.problems, res.message)
    assert res.flash_state and res.flash_state.startswith("untouched")
    assert res.rerun == "ok"


def test_replay_runs_the_saved_draw_again(tmp_path, capsys):
    d = fuzz.Draw("w90p745", "dump", 4, "quick", {"kind": "none"})
    res = fuzz.RunResult(d, "hang", -1, "", None, None, ["the engine did not return"])
    path = fuzz.save_failure(d, res, tmp_path)
    assert fuzz.main(["--replay", str(path), "--no-rerun"]) == 0
    out = capsys.readouterr().out
    assert "replaying fuzz-w90p745-dump-4: dump with none (quick)" in out
    assert re.search(r"seed +4 w90p745 dump .* -> verified", out)


def test_an_xr872_write_cut_by_a_power_loss_is_written_by_the_rerun():
    """The rerun starts from the half-written flash, so its new backup holds that flash,
    not the first run's: the rerun is judged against what it read, and it succeeds."""
    d = fuzz.Draw(
        "xr872",
        "write",
        2,
        "quick",
        {"kind": "power_loss_program", "program_bytes": 8192, "power_back": 0.05},
    )
    res, lab_dir = fuzz.run_draw(d, rerun=True, timeout=60)
    assert lab_dir is None, (res.outcome, res.problems)
    assert res.fired is True
    assert res.outcome == "clear_error", (res.problems, res.message)
    assert res.rerun == "ok", res.rerun


# Each fault kind, armed early in a short operation, strikes; armed beyond the end of the
# operation, it does not (so "fired" is measured, not assumed) and the run verifies.
EARLY = [
    ("w90p745", "dump", {"kind": "watchdog", "direction": "host", "at_byte": 5}),
    (
        "w90p745",
        "dump",
        {"kind": "log_lines", "direction": "device", "at_byte": 200, "text": "MAC 0 link up\r\n"},
    ),
    ("w90p745", "dump", {"kind": "link_silence", "silent_after": 2000}),
    (
        "w90p745",
        "dump",
        {"kind": "power_cut", "direction": "host", "at_byte": 20, "power_back": 0.05},
    ),
    ("xr872", "write", {"kind": "power_loss_erase", "erase_sectors": 1, "power_back": 0.05}),
    ("hi3511", "restore", {"kind": "tftp_gone", "gone_after": 50}),
    (
        "hi3511",
        "restore",
        {"kind": "tftp_loss", "loss": 0.0, "duplicate": 0.05, "delay": 0.0, "delay_rate": 0.0},
    ),
    ("hi3511", "restore", {"kind": "tftp_power_cut", "after_packets": 100, "power_back": 0.05}),
    (
        "w90p745",
        "restore",
        {"kind": "corrupt_byte", "direction": "host", "at_byte": 2000, "xor": 0x10},
    ),
    ("w90p745", "dump", {"kind": "drop_byte", "direction": "device", "at_byte": 3000}),
]


@pytest.mark.parametrize(("board", "op", "fault"), EARLY, ids=[f["kind"] for _, _, f in EARLY])
def test_an_early_fault_fires_and_nothing_is_lost(board, op, fault):
    res, lab_dir = fuzz.run_draw(fuzz.Draw(board, op, 7, "quick", fault), rerun=False, timeout=60)
    assert res.fired is True, res.line()
    assert res.outcome not in fuzz.MUST_BE_ZERO, (res.line(), res.problems)


def test_a_fault_beyond_the_operation_does_not_fire():
    far = {"kind": "watchdog", "direction": "host", "at_byte": 10**9}
    res, _ = fuzz.run_draw(fuzz.Draw("w90p745", "dump", 7, "quick", far), rerun=False, timeout=60)
    assert res.fired is False and res.outcome == "verified", (res.line(), res.problems)
