"""The XR872 engine end to end against the emulated XF16 over its pty.

Every check is against the emulator's own flash (``dev.flash.snapshot()``) or
the firmware's console, never against the engine's own idea of the result.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
import time

import pytest

from emulators.serial import LinkFaults
from emulators.xr872 import XR872Device
from harness.firmware import xr872 as fw
from recovery.errors import (
    BootError,
    ConsoleError,
    DeviceError,
    ImageError,
    RefusedError,
)
from recovery.transport import Port
from recovery.xr872 import cli as xcli
from recovery.xr872 import operations as x

FAST = {"boot_wait": 0.5, "timeout": 0.5, "settle": 0.1, "progress": False}
CLI_FAST = ["--boot-wait", "0.5", "--timeout", "0.5", "--settle", "0.1"]


def opts(dev: XR872Device, **kw) -> x.Options:
    return x.Options(port=dev.path, **{**FAST, **kw})


def sysinfo_mac(flash: bytes) -> str:
    """The MAC of the current FDCM record, straight from the SDK layout (fdcm.c,
    sysinfo.h): header 8 bytes, a 3-byte bitmap, 236-byte slots, MAC at +5."""
    area = flash[0xFF000:]
    assert int.from_bytes(area[:4], "little") == 0xA55A5AA5
    used = 24 - int.from_bytes(area[8:11], "little").bit_count()
    rec = area[11 + 236 * (used - 1) :]
    return ":".join(f"{b:02x}" for b in rec[5:11])


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- info -------------------------------------------------------------------------------
def test_info_through_the_console_and_back(cwd):
    with XR872Device(seed=1) as dev:
        flash = dev.flash.snapshot()
        r = x.info(opts(dev))
        assert dev.crash is None
        assert r.link.entered_via == "console" and r.link.baud == 921_600
        assert r.link.jedec_id == "c74014" and r.link.flash_size == 1 << 20
        assert r.link.efuse is not None and r.link.efuse.hex == dev.efuse.hex()
        assert r.chip == "xr872" and r.problems == []
        assert [s.name for s in r.sections][:2] == ["boot", "app"]
        # the sections are where the flash says they are
        for s in r.sections:
            assert flash[s.offset : s.offset + 4] == b"AWIH"
            assert struct.unpack_from("<I", flash, s.offset + 36)[0] == s.id
        assert r.sysinfo.valid and r.sysinfo.mac == sysinfo_mac(flash)
        assert r.boot is not None and r.boot.booted and dev.mode == "firmware"
        assert r.boot.mac_in_use == dev.mac_in_use() == r.link.efuse.chipid_mac
        assert dev.flash.snapshot() == flash


def test_console_entry_when_the_boot_log_is_long_gone(cwd):
    """The unit booted a while ago and a user typed half a line: the blind preamble's
    leading newline ends it, and 'upgrade' still gets in (no login on the SDK console)."""
    with XR872Device(seed=16) as dev:
        with Port(dev.path, timeout=2) as port:
            port.drain_input(quiet=0.3, limit=3)
            port.send("hel")
            port.expect([r"hel$"], 3)  # echoed: the console runs
        r = x.info(opts(dev))
        assert r.link.entered_via == "console" and r.boot.booted and dev.crash is None
        typed = b"".join(c.data for c in dev.transcript.chunks if c.direction == "host")
        assert b"\nupgrade\n\x00" in typed and b"admin" not in typed


def test_info_in_recovery_mode_leaves_the_unit_in_the_rom(cwd):
    with XR872Device(seed=2, boot_pins=True) as dev:
        r = x.info(opts(dev))
        assert r.link.entered_via == "recovery mode" and r.boot is None
        assert dev.mode == "rom" and dev.crash is None
        # the engine put the ROM back to 115200 on the way out: a fresh sync works
        r2 = x.info(opts(dev, max_baud=115200))
        assert r2.link.baud == 115200 and r2.sysinfo == r.sysinfo


def test_info_cli_json(cwd, capsys):
    with XR872Device(seed=3) as dev:
        code = xcli.main(["xr872", "info", "--port", dev.path, "--json", *CLI_FAST])
        out = json.loads(capsys.readouterr().out)
        assert code == 0 and out["ok"] is True and out["exit_code"] == 0
        assert out["link"]["jedec_id"] == "c74014"
        assert out["sysinfo"]["mac"] == sysinfo_mac(dev.flash.snapshot())
        assert out["link"]["efuse"]["hex"] == dev.efuse.hex()
        assert out["chip"] == "xr872"


# -- dump ---------------------------------------------------------------------------------
def test_dump_is_byte_exact_with_a_manifest(cwd):
    with XR872Device(seed=4) as dev:
        snap = dev.flash.snapshot()
        r = x.dump(opts(dev), "unit.bin")
        assert dev.crash is None
        data = (cwd / "unit.bin").read_bytes()
        assert data == snap
        man = json.loads((cwd / "unit.bin.json").read_text())
        assert man["size"] == 1 << 20 and man["sha256"] == hashlib.sha256(snap).hexdigest()
        assert man["jedec_id"] == "c74014" and man["chunk_size"] == 4096 and man["date"]
        assert man["sysinfo"]["mac"] == sysinfo_mac(snap)
        assert man["efuse"]["hex"] == dev.efuse.hex()
        assert r.sha256 == man["sha256"] and r.resumed_from == 0
        assert sorted(p.name for p in cwd.iterdir()) == ["unit.bin", "unit.bin.json"]
        assert r.boot.booted and dev.mode == "firmware"


def test_dump_at_115200_and_verified_by_reading_twice(cwd):
    with XR872Device(seed=5, boot_pins=True) as dev:
        r = x.dump(opts(dev, max_baud=115200, verify="twice", chunk=0x4000), "d.bin")
        assert r.link.baud == 115200 and r.link.rereads == 64
        assert (cwd / "d.bin").read_bytes() == dev.flash.snapshot()


def test_an_interrupted_dump_resumes(cwd):
    """Power is cut in the middle of a dump; after power-on the same command resumes."""
    with XR872Device(seed=6) as dev:
        snap = dev.flash.snapshot()
        part = cwd / "u.bin.part"

        def cut() -> None:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if part.exists() and part.stat().st_size >= 300_000:
                    dev.power_off()
                    return
                time.sleep(0.001)

        t = threading.Thread(target=cut)
        t.start()
        with pytest.raises((DeviceError, ConsoleError)):
            x.dump(opts(dev, max_baud=921_600, retries=1), "u.bin")
        t.join()
        assert part.exists() and (cwd / "u.bin.part.json").exists()
        assert not (cwd / "u.bin").exists()
        done = part.stat().st_size
        assert done >= 300_000 and done % 4096 == 0
        assert part.read_bytes() == snap[:done]
        dev.power_on()
        r = x.dump(opts(dev), "u.bin")
        assert r.resumed_from == done
        assert (cwd / "u.bin").read_bytes() == snap
        assert not part.exists() and not (cwd / "u.bin.part.json").exists()


# -- write -------------------------------------------------------------------------------
def test_write_backs_up_erases_only_what_differs_and_boots(cwd):
    with XR872Device(seed=7) as dev:
        before = dev.flash.snapshot()
        image = fw.build_image(fw.xr872_sections(seed=11))
        (cwd / "new.img").write_bytes(image)
        erases_before = list(dev.flash.stats.erase_counts)
        r = x.write(opts(dev), "new.img", backup="backup.bin", include_bootloader=True)
        assert dev.crash is None
        after = dev.flash.snapshot()
        assert after[: len(image)] == image
        end = -(-len(image) // 4096) * 4096
        assert after[len(image) : end] == before[len(image) : end]  # rest of the last sector
        assert after[end:] == before[end:]  # sysinfo and the tail untouched
        assert (cwd / "backup.bin").read_bytes() == before
        assert (
            json.loads((cwd / "backup.bin.json").read_text())["sha256"]
            == hashlib.sha256(before).hexdigest()
        )
        erased = [
            i
            for i, (a, b) in enumerate(
                zip(erases_before, dev.flash.stats.erase_counts, strict=True)
            )
            if b > a
        ]
        assert all(i * 4096 < end for i in erased)
        assert r.sectors_changed == sum(
            1 for o in range(0, end, 4096) if before[o : o + 4096] != after[o : o + 4096]
        )
        assert r.verified and r.boot.booted and dev.mode == "firmware"
        # the same image again: nothing to erase or program
        r2 = x.write(opts(dev), "new.img", no_backup=True)
        assert r2.sectors_changed == 0 and r2.sectors_erased == 0 and r2.bytes_programmed == 0
        assert dev.flash.snapshot() == after


def test_write_of_a_whole_dump_keeps_this_units_sysinfo_unless_asked(cwd):
    with XR872Device(seed=8, mac_source="flash") as dev:
        own = dev.flash.snapshot()
        donor = fw.xr872_flash(seed=30)
        (cwd / "donor.bin").write_bytes(donor)
        r = x.write(opts(dev), "donor.bin", no_backup=True, include_bootloader=True)
        after = dev.flash.snapshot()
        assert after[:0xFF000] == donor[:0xFF000] and after[0xFF000:] == own[0xFF000:]
        assert r.sysinfo == "kept" and "kept this unit's own sysinfo" in r.warnings[0]
        assert "--take-donor-data" in r.warnings[0]
        assert r.boot.mac_in_use == sysinfo_mac(own)
        r = x.write(
            opts(dev), "donor.bin", no_backup=True, take_donor_data=True, include_bootloader=True
        )
        assert dev.flash.snapshot() == donor and r.sysinfo == "the image's"
        assert "wrote the image's sysinfo" in r.warnings[0]
        assert r.boot.mac_in_use == sysinfo_mac(donor)  # FLASH source: the dump's MAC
        # the same dump again: nothing differs, nothing to say
        r = x.write(opts(dev), "donor.bin", no_backup=True, include_bootloader=True)
        assert r.warnings == [] and r.sectors_changed == 0


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: fw.build_image(fw.xr809_sections()), "XR809"),
        (lambda: fw.build_image(fw.xr872_sections(1))[:50_000], "truncated"),
        (lambda: fw.corrupt_image(fw.build_image(fw.xr872_sections(1)), "magic"), "AWIH"),
        (
            lambda: fw.corrupt_image(fw.build_image(fw.xr872_sections(1)), "data_checksum", 32768),
            "data checksum",
        ),
        (lambda: b"\xff" * (1 << 20) + b"\xff", "do not fit"),
    ],
)
def test_write_refuses_bad_images_before_touching_anything(cwd, capsys, make, words):
    (cwd / "bad.img").write_bytes(make())
    with XR872Device(seed=9) as dev:
        before = dev.flash.snapshot()
        code = xcli.main(["xr872", "write", "--port", dev.path, "bad.img", "--json"])
        out = json.loads(capsys.readouterr().out)
        assert code == 3 and out["ok"] is False and out["error"] == "ImageError"
        assert words in out["message"] and "nothing was written" in out["flash_state"]
        assert dev.flash.snapshot() == before
        assert not [c for c in dev.transcript.chunks if c.direction == "host"]  # not a byte sent
        assert list(cwd.iterdir()) == [cwd / "bad.img"]  # no backup: it never got that far


def test_forced_xr809_image_is_written_and_the_unit_stays_in_recovery(cwd, capsys):
    img = fw.build_image(fw.xr809_sections())
    (cwd / "xr809.img").write_bytes(img)
    with XR872Device(seed=10) as dev:
        code = xcli.main(
            ["xr872", "write", "--port", dev.path, "xr809.img", "--ignore-image-checks",
             "--include-bootloader", "--backup", "b.bin", "--json", *CLI_FAST]
        )  # fmt: skip
        out = json.loads(capsys.readouterr().out)
        assert code == 8 and out["error"] == "BootError"
        assert out["boot"]["state"] == "recovery mode" and out["forced"] is True
        assert dev.flash.snapshot()[: len(img)] == img and dev.mode == "rom"
        # the backup brings it back
        with pytest.raises(RefusedError):
            x.write(opts(dev), "b.bin", backup="b.bin")
        r = x.write(opts(dev), "b.bin", no_backup=True, include_bootloader=True)
        assert r.boot.booted and dev.flash.snapshot() == (cwd / "b.bin").read_bytes()


# -- the seed's story ------------------------------------------------------------------------
@pytest.mark.parametrize("source", ["chipid", "flash"])
def test_seed_story_clone_a_donor_onto_a_unit_bricked_by_an_xr809_image(cwd, source):
    own = fw.xr872_flash(seed=21, sta_ssid="home-21")
    own = own[:0xE0000] + b"APPDATA-21".ljust(4096, b"\xff") + own[0xE1000:]  # app data
    bricked = fw.bricked_flash(own)
    with XR872Device(seed=20, mac_source=source) as donor_dev:
        d = x.dump(opts(donor_dev), "donor.bin")
        assert d.link.entered_via == "console" and d.boot.booted
        donor = (cwd / "donor.bin").read_bytes()
        assert donor == donor_dev.flash.snapshot()
    with XR872Device(seed=21, initial_flash=bricked, mac_source=source) as dev:
        i = x.info(opts(dev))
        assert i.link.entered_via == "recovery mode" and i.chip == "xr809" and i.boot is None
        assert any("XR809" in p for p in i.problems) and dev.mode == "rom"
        r = x.clone(opts(dev), "donor.bin", backup="broken.bin", include_bootloader=True)
        assert dev.crash is None
        assert r.write.link.entered_via == "recovery mode"
        assert (cwd / "broken.bin").read_bytes() == bricked
        man = json.loads((cwd / "broken.bin.json").read_text())
        assert man["efuse"]["hex"] == dev.efuse.hex()  # this unit's eFuse in the backup
        after = dev.flash.snapshot()
        assert (
            after[:0xE0000] == donor[:0xE0000] and after[0xE1000:0xFF000] == donor[0xE1000:0xFF000]
        )
        assert after[0xE0000:0xE1000] == bricked[0xE0000:0xE1000]  # app data byte for byte
        assert after[0xFF000:] == bricked[0xFF000:]  # and sysinfo
        assert r.kept_sectors == [0xE0000] and r.write.sysinfo == "kept"
        assert r.unit_sysinfo.sta_ssid == "home-21"
        assert r.write.boot.booted and dev.mode == "firmware"
        assert r.mac.in_use == dev.mac_in_use() == sysinfo_mac(own)
        assert r.mac.efuse == r.write.link.efuse.efuse_mac
        assert not r.mac.follows_donor and "its own MAC" in r.mac.text


def test_clone_with_take_donor_data_on_a_flash_mac_unit_carries_the_donors_mac(cwd):
    donor = fw.xr872_flash(seed=40)
    (cwd / "donor.bin").write_bytes(donor)
    with XR872Device(seed=41, mac_source="flash") as dev:
        r = x.clone(
            opts(dev), "donor.bin", backup="b.bin", take_donor_data=True, include_bootloader=True
        )
        assert dev.flash.snapshot() == donor
        assert r.mac.follows_donor and r.mac.in_use == sysinfo_mac(donor)
        assert "DONOR's MAC" in r.mac.text and "without --take-donor-data" in r.mac.text


def test_clone_onto_a_unit_whose_sysinfo_is_not_fdcm_leaves_it_erased(cwd):
    donor = fw.xr872_flash(seed=40)
    (cwd / "donor.bin").write_bytes(donor)
    unit = fw.bricked_flash(fw.xr872_flash(seed=43, sysinfo="corrupt"))
    with XR872Device(seed=43, initial_flash=unit) as dev:
        r = x.clone(opts(dev), "donor.bin", no_backup=True, include_bootloader=True)
        assert r.write.sysinfo == "left erased" and r.write.backup is None
        assert "not saved" in r.write.warnings[0] and "from defaults" in r.write.warnings[1]
        after = dev.flash.snapshot()
        # the firmware rebuilt its defaults at boot: a fresh FDCM area with one record
        assert after[0xFF000:0xFF00B] == bytes.fromhex("a55a5aa5 0300 ec00 fe ffff")
        assert r.mac.in_use == sysinfo_mac(after) == fw.chipid_mac(43).hex(":")
        assert not r.mac.follows_donor


def test_clone_refuses_a_donor_that_is_not_a_whole_dump(cwd):
    (cwd / "img.bin").write_bytes(fw.build_image(fw.xr872_sections()))
    with XR872Device(seed=42) as dev, pytest.raises(ImageError, match="whole 1024 KiB"):
        x.clone(opts(dev), "img.bin")


# -- bad links ------------------------------------------------------------------------------
def test_a_port_with_nothing_behind_it(cwd, capsys):
    master, slave = os.openpty()
    try:
        code = xcli.main(["xr872", "info", "--port", os.ttyname(slave), "--json", *CLI_FAST])
    finally:
        os.close(master)
        os.close(slave)
    out = json.loads(capsys.readouterr().out)
    assert code == 4 and out["error"] == "ConsoleError"
    assert "PB02" in out["hint"] and "PB03" in out["hint"]
    assert "Nothing at all came back" in out["message"]


def test_a_port_that_cannot_be_opened(cwd, capsys):
    code = xcli.main(["xr872", "info", "--port", str(cwd / "ttyNOPE"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 4 and "ttyNOPE does not exist. " in out["message"]  # and the ports that do


def test_an_adapter_that_refuses_the_rate_stops_before_setuart(cwd, monkeypatch):
    """pyserial refuses a rate the adapter cannot do (on a pty every rate is accepted, so
    the refusal is injected into the host's port object, the line stays the real pty)."""
    real = Port.set_baud

    def refuse(self, baud):
        if baud == 3_000_000:
            import serial

            raise serial.SerialException("Could not configure port: (22, 'Invalid argument')")
        real(self, baud)

    monkeypatch.setattr(Port, "set_baud", refuse)
    with XR872Device(seed=18, boot_pins=True) as dev:
        with pytest.raises(ConsoleError, match="refuses 3000000 baud") as ei:
            x.info(opts(dev, max_baud=3_000_000))
        assert "--max-baud 921600" in ei.value.hint and "still at 115200" in str(ei.value)
        host = b"".join(c.data for c in dev.transcript.chunks if c.direction == "host")
        assert (3_000_000 | 0x03000000).to_bytes(4, "big") not in host  # no SETUART sent
        assert dev.uart.baud == 115200 and dev.crash is None


def test_setuart_to_a_rate_the_adapter_cannot_do(cwd):
    """The ROM acknowledges 3000000, the adapter cannot make it: the engine resyncs at the
    new rate, then at 115200, then says what to do; after a power cycle 115200 works."""
    with XR872Device(seed=19, adapter_max_baud=921_600) as dev:
        with pytest.raises(DeviceError, match="does not really do 3000000") as ei:
            x.info(opts(dev, max_baud=3_000_000))
        assert "power-cycle" in ei.value.hint and "--max-baud 921600" in ei.value.hint
        assert "untouched" in ei.value.flash_state
        assert dev.mode == "rom" and dev.uart.baud == 3_000_000
        dev.power_cycle()
        r = x.info(opts(dev, max_baud=115200))
        assert r.link.baud == 115200 and r.boot.booted and dev.crash is None


def test_wrong_baud_is_reported(cwd):
    """Whatever the unit said while the port opened (a busy run once caught its '====='
    rule in the moment before pyserial set 9600), a --baud other than 115200 that
    finds no ROM is named as the likely baud mismatch."""
    with XR872Device(seed=12) as dev:
        with pytest.raises(ConsoleError) as ei:
            x.info(opts(dev, baud=9600, max_baud=9600))
        assert "baud mismatch" in str(ei.value) and "--baud 115200" in ei.value.hint
        assert dev.crash is None


def test_wrong_baud_is_reported_when_the_unit_boots_while_the_engine_listens(cwd):
    """The unit powered on after camrescue opened the port at 9600: its boot log
    arrives as garbage at that rate, and the engine names the baud mismatch."""
    dev = XR872Device(seed=12)
    try:
        result: list[BaseException] = []

        def engine() -> None:
            try:
                x.info(opts(dev, baud=9600, max_baud=9600))
            except BaseException as e:  # noqa: BLE001 - handed to the test thread
                result.append(e)

        t = threading.Thread(target=engine)
        t.start()
        while dev.uart.host_baud() != 9600 and t.is_alive():
            time.sleep(0.01)  # the engine opens the port at 9600
        dev.power_on()
        t.join(120)
        assert not t.is_alive()
        (err,) = result
        assert isinstance(err, ConsoleError), err
        assert "baud mismatch" in str(err) and "--baud 115200" in err.hint
        assert dev.crash is None
    finally:
        dev.close()


def test_line_noise_is_retried_and_the_dump_is_still_exact(cwd):
    faults = LinkFaults(bit_error_rate=2e-6)
    with XR872Device(seed=13, boot_pins=True, faults=faults) as dev:
        r = x.dump(opts(dev, max_baud=115200), "n.bin")
        assert (cwd / "n.bin").read_bytes() == dev.flash.snapshot()
        assert r.link.retries > 0


def test_noise_on_the_requests_is_retried_and_the_write_is_exact(cwd):
    """Bit errors host -> ROM: the ROM answers CHECKSUM (or times out); the engine retries."""
    image = fw.build_image(fw.xr872_sections(seed=12))
    (cwd / "new.img").write_bytes(image)
    faults = LinkFaults(bit_error_rate=4e-6, directions="rx")
    with XR872Device(seed=15, boot_pins=True, faults=faults) as dev:
        before = dev.flash.snapshot()
        r = x.write(
            opts(dev, max_baud=115200),
            "new.img",
            no_backup=True,
            reboot=False,
            include_bootloader=True,
        )
        after = dev.flash.snapshot()
        assert (
            after[: len(image)] == image
            and after[len(image) + 4096 :] == before[len(image) + 4096 :]
        )
        assert r.link.retries > 0 and dev.crash is None
        assert "brom: error" in dev.transcript.text()  # the ROM refused a corrupted frame


def test_a_line_that_corrupts_everything_gives_a_clear_error(cwd):
    faults = LinkFaults(bit_error_rate=2e-3, directions="tx")
    with XR872Device(seed=14, boot_pins=True, faults=faults) as dev:
        with pytest.raises((DeviceError, ConsoleError)) as ei:
            x.dump(opts(dev, max_baud=115200, retries=2), "bad.bin")
        assert "corrupting data" in str(ei.value) and "untouched" in ei.value.flash_state
        assert not (cwd / "bad.bin").exists()


def test_boot_error_is_not_raised_by_the_api_but_by_the_cli():
    assert issubclass(BootError, Exception)


def test_bytes_heard_at_the_wrong_rate_are_not_text_even_when_printable():
    """At 9600 a 115200 banner's '=====' rule came out as a run of '=' in a busy run,
    and the engine called it text ('did not take upgrade') instead of a baud mismatch."""
    from recovery.xr872.driver import _looks_like_text

    assert not _looks_like_text(b"=" * 40)
    assert not _looks_like_text(b"\x00\x80\xfe=~")
    assert _looks_like_text(b"====================\r\nXRADIO Skylark SDK v1.1.1\r\n")
    assert _looks_like_text(b"<ACK> 200 OK\r\n")
