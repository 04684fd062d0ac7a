"""Recovery engine for HiSilicon Hi3511 cameras (U-Boot 1.1.4, ``hilinux # ``).

Written for a real camera on ``/dev/ttyUSB0`` (tested against the emulator).
Facts from the seed (000) and REFERENCE.md: console 115200 8N1, prompt
``hilinux # ``; RAM bank 0 at 0xE0000000 (128 MB); 16 MiB NOR at 0x34000000;
U-Boot 0x34000000, kernel uImage 0x34100000, JFFS2 root 0x34200000 (13 MiB),
settings 0x34F00000 (1 MiB); ``tftp addr file`` downloads, ``tftp addr file
len`` uploads ``len`` bytes from ``addr``.

This module holds the operations (``info``, ``backup``, ``flash``, ``restore``,
``boot``) and the order in which they touch the flash:

* **Safe order** for every write (:meth:`Session.write_region`): download into
  RAM (0xE1000000, ``LOAD_ADDRESS``), compare U-Boot's ``crc32`` of RAM with
  the file, and only then ``erase`` exactly the region, ``cp.b`` RAM to flash
  (in 1 MiB pieces, for progress), compare the flash's ``crc32``. A failed
  download never leaves an erased partition. ``--skip-erase`` reproduces the
  seed's mistake on purpose: ``tftp`` straight to the flash address with no
  erase (the flash ANDs old and new data).
* **Backup first**: ``flash`` makes (or takes) a verified backup of this camera
  before it writes; ``restore`` refuses the boot loader area without
  ``--confirm-bootloader``.
* Every failure is a ``recovery.common`` error that says what the flash holds
  now (:meth:`Session.guard`).

The parts, one job each:

* recovery/hi3511/flashmap.py: the flash and RAM map, regions, name/address checks;
* recovery/hi3511/driver.py: the U-Boot console driver (attach, commands, tftp, erase,
  cp.b, bootm) with recovery/hi3511/parsers.py, the parsers of its output;
* recovery/hi3511/network.py: IP settings and the TFTP files;
* recovery/hi3511/backupfile.py: the backup image and its manifest;
* recovery/hi3511/cli.py: ``camrescue hi3511 ...`` (:func:`register_cli`).

Their public names are re-exported here.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import os
import re
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recovery import netcheck
from recovery.cliutil import warn
from recovery.errors import (
    BootError,
    ConsoleError,
    DeviceError,
    Interrupted,
    NetworkError,
    RecoveryError,
    RefusedError,
    UsageError,
    VerifyError,
)
from recovery.hi3511.backupfile import (
    BackupImage,
    load_backup,
    make_manifest,
    manifest_path,
    save_backup,
)
from recovery.hi3511.driver import (
    ShellQuery,
    UBoot,
)
from recovery.hi3511.flashmap import (
    BAUD,
    DEFAULT_BACKUP,
    FLASH_BASE,
    FLASH_SIZE,
    JFFS2_REGIONS,
    KERNEL_ADDRESS,
    REGIONS,
    SECTOR_SIZE,
    Region,
    check_load_address,
    check_name,
    region_name,
)
from recovery.hi3511.images import looks_like_jffs2, parse_node_header, prepare_jffs2_image
from recovery.hi3511.network import NetOptions, NetSettings, TftpFiles, resolve_network
from recovery.hi3511.parsers import (
    BootReport,
    parse_mtdparts,
    parse_uimage_header,
)
from recovery.jsonout import ABSENT, hex_address, to_jsonable
from recovery.ports import wait_for_device
from recovery.safety import Area, check_protected, flash_tracker
from recovery.transport import Port, TransportError

# Judged by address, whatever a manifest calls a range (issue 17).
PROTECTED = (Area("boot loader (U-Boot)", REGIONS["uboot"].start, REGIONS["uboot"].end),)

# -- one attached camera -------------------------------------------------------------


@dataclass
class Connection:
    port: str
    baud: int = BAUD
    wait: float = 20.0
    reboot: bool = False
    transcript: str | None = None
    progress: bool = False
    wait_for_port: bool = False  # --wait given: a missing device path is waited for too


@dataclass
class Step:
    name: str
    seconds: float


# -- results (JSON through recovery.jsonout; ABSENT fields are left out) ---------------


@dataclass
class WriteResult:
    """One region written the safe way (:meth:`Session.write_region`)."""

    region: str
    address: str  # hex, as every address in the JSON
    length: int
    crc32: str
    erased_sectors: int


@dataclass
class BackupRange:
    name: str
    address: str  # hex
    offset: str  # hex, from the start of the backup file
    length: int
    crc32: str
    sha256: str


@dataclass
class BackupFacts:
    """A verified backup file (:func:`_do_backup`)."""

    path: str
    manifest: str
    size: int
    sha256: str
    ranges: list[BackupRange]


@dataclass
class FlashFacts:
    base: str  # hex
    size: int
    sectors: int
    sector_size: int
    protected: list[str]
    erase_timeout_ms: int


@dataclass
class InfoResult:
    message: str
    attached: str
    uboot_version: str
    flash: FlashFacts
    env: dict[str, str]
    partitions: list[dict[str, Any]]
    regions: dict[str, dict[str, Any]]
    rootfs_jffs2: bool
    rootfs_first_node: str | None
    rootfs_empty: bool
    setting_jffs2: bool
    kernel: Any
    steps: list[Step]


@dataclass
class BackupResult:
    message: str
    path: str
    manifest: str
    size: int
    sha256: str
    ranges: list[BackupRange]
    network: Any
    uboot_version: str
    steps: list[Step]


@dataclass
class Booted:
    """What a boot showed, as the results carry it (top-level keys)."""

    boot: Any = ABSENT
    mounted: Any = ABSENT
    crc_errors: Any = ABSENT
    panic: Any = ABSENT
    files: Any = ABSENT
    cat: Any = ABSENT

    def record(self, rep: BootReport) -> None:
        self.boot, self.mounted, self.crc_errors = rep, rep.mounted, rep.crc_errors
        self.panic, self.files, self.cat = rep.panic, rep.files, rep.cat


@dataclass
class FlashResult(Booted):
    message: str = ""
    partition: str = ""
    image: Any = None
    warnings: list[str] = field(default_factory=list)
    network: Any = ABSENT
    backup: Any = ABSENT  # BackupFacts, {"path", "given"} or None (--no-backup)
    write: WriteResult | Any = ABSENT
    flash_crc32: Any = ABSENT
    flash_matches_image: Any = ABSENT
    steps: list[Step] = field(default_factory=list)


@dataclass
class RestoreResult(Booted):
    message: str = ""
    backup: str = ""
    ranges: list[WriteResult] = field(default_factory=list)
    network: Any = ABSENT
    backup_before_restore: BackupFacts | Any = ABSENT
    steps: list[Step] = field(default_factory=list)


@dataclass
class BootResult(Booted):
    message: str = ""
    steps: list[Step] = field(default_factory=list)


def _facts(result: Any) -> dict[str, Any]:
    """A result's facts for an error's JSON (everything but the message)."""
    facts = to_jsonable(result)
    facts.pop("message", None)
    return facts


class Session:
    """One attached camera: the port, the driver, the flash state and step timings."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.state = "untouched"
        self.steps: list[Step] = []
        self.port: Port | None = None
        self.uboot: UBoot | None = None
        self.attached_via = ""
        self.preflight: netcheck.Preflight | None = None
        self.env: dict[str, str] = {}
        self.version = ""

    def status(self, text: str) -> None:
        if self.conn.progress:
            print(text, file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.steps.append(Step(name, round(time.monotonic() - t0, 3)))

    def __enter__(self) -> Session:
        # one rule on every board: a missing port fails at once unless --wait was given
        wait_for_device(
            self.conn.port, self.conn.wait if self.conn.wait_for_port else None, self.status
        )
        try:
            self.port = Port(self.conn.port, self.conn.baud, transcript=self.conn.transcript)
        except TransportError as e:
            raise ConsoleError(str(e), flash_state="untouched") from None
        self.uboot = UBoot(
            self.port, baud=self.conn.baud, progress=self.conn.progress, status=self.status
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.port is not None:
            self.port.close()

    @contextlib.contextmanager
    def guard(self) -> Iterator[Session]:
        """Open, and turn every failure into a RecoveryError that carries the flash state."""
        try:
            with self:
                try:
                    yield self
                except KeyboardInterrupt:
                    if self.port is not None:  # stop a running tftp loop in U-Boot too
                        with contextlib.suppress(Exception):
                            self.port.write(b"\x03")
                    raise
        except KeyboardInterrupt:
            raise Interrupted(
                "interrupted", flash_state=self.state, hint=self._merge_hint(None)
            ) from None
        except RecoveryError as e:
            if e.flash_state is None:
                e.flash_state = self.state
            if isinstance(e, NetworkError) and self.preflight is not None:
                # a TFTP failure shows the addresses in use (issue 20)
                pre = self.preflight
                e.message += (
                    f" [{pre.line}; this computer: {', '.join(pre.interfaces) or 'no IPv4'}]"
                )
            e.hint = self._merge_hint(e.hint)
            e.facts.setdefault("steps", [s.__dict__ for s in self.steps])
            raise
        except TransportError as e:
            raise ConsoleError(
                str(e),
                flash_state=self.state,
                hint=self._merge_hint(None),
                facts={"seen": getattr(e, "seen", "")[-300:]},
            ) from None

    def _merge_hint(self, hint: str | None) -> str | None:
        """Once the flash has changed, what to run comes first; a diagnostic (what was
        seen) follows it rather than replacing it."""
        restore = self._hint()
        if restore is None or (hint and restore in hint):
            return hint
        return f"{restore}. Detail: {hint}" if hint else restore

    def _hint(self) -> str | None:
        if self.state == "untouched":
            return None
        return (
            "do not power the camera off; run 'camrescue hi3511 restore' with your backup (or "
            "'flash' again); the boot loader itself was not touched"
        )

    def attach(self) -> UBoot:
        assert self.uboot is not None
        with self.step("attach"):
            self.attached_via = self.uboot.attach(self.conn.wait, reboot=self.conn.reboot)
        with self.step("identify"):
            self.version = self.uboot.version()
            self.env = self.uboot.printenv()
            self.uboot.read_flinfo()
        return self.uboot

    def check_geometry(self, regions: list[Region]) -> None:
        assert self.uboot is not None and self.uboot.flinfo is not None
        info = self.uboot.flinfo
        if info.size != FLASH_SIZE or FLASH_BASE not in info.sectors:
            raise DeviceError(
                f"the flash is {info.size} bytes at {info.sectors[0]:#x}, not the Hi3511's "
                "16 MiB at 0x34000000: is this the right camera?",
                flash_state="untouched",
            )
        for r in regions:
            if not info.aligned(r):
                raise DeviceError(
                    f"{r.describe()} is not on sector boundaries", flash_state="untouched"
                )

    def network(self, opts: NetOptions) -> NetSettings:
        assert self.uboot is not None
        if opts.nic is not None and opts.serverip is None:
            opts.serverip = netcheck.address_of(opts.nic)  # --nic: its address is serverip
        net = resolve_network(self.env, opts)
        # this computer's side (issue 20): serverip must be one of its addresses, on the
        # interface the camera is routed through; --nic picks the interface. Enforced for
        # the embedded server on serverip:69; an endpoint the person chose is reported only
        pre = netcheck.require(
            net.ipaddr,
            net.serverip,
            net.netmask,
            nic=opts.nic,
            enforce=opts.tftp_bind is None and opts.server,
        )
        if pre.server != net.serverip:
            net.serverip = pre.server
            net.changed["serverip"] = pre.server
        self.preflight = pre
        self.status(pre.line if pre.ok else f"{pre.line} (not checked: {pre.problem})")
        opts.tftp_bind = opts.tftp_bind or (net.serverip, 69)  # the address the camera is told
        opts.tftp_client = net.ipaddr
        for key, value in net.changed.items():
            self.uboot.setenv(key, value)
            self.env[key] = value
        return net

    def write_region(
        self, files: TftpFiles, opts: NetOptions, region: Region, data: bytes, name: str
    ) -> WriteResult:
        """The safe path: RAM, verify, erase exactly, copy, verify."""
        assert self.uboot is not None
        ub = self.uboot
        check_load_address(opts.load_address, len(data))
        crc = zlib.crc32(data)
        files.offer(name, data)
        with self.step(f"download {region.name} to RAM"):
            try:
                ub.tftp(
                    opts.load_address, name, len(data), upload=False, label=f"tftp {region.name}"
                )
            except NetworkError as e:
                e.hint = e.hint or files.explain_missing(name)
                raise
        with self.step(f"verify {region.name} in RAM"):
            ram_crc = ub.crc32(opts.load_address, len(data))
        if ram_crc != crc:
            raise VerifyError(
                f"the copy in RAM has crc32 {ram_crc:08x}, the file {crc:08x}: the download was "
                "damaged",
                hint="run the command again; nothing was erased",
            )
        if region.name == "uboot":
            ub.protect(False, region)
        self.state = f"{region.describe()} is being erased"
        flash_tracker().writing(region.start, region.end)
        with self.step(f"erase {region.name}"):
            sectors = ub.erase(region)
        self.state = (
            f"{region.describe()} is erased and being written: its old contents are gone and "
            "the new ones may be incomplete"
        )
        with self.step(f"write {region.name}"):
            ub.copy_to_flash(opts.load_address, region.start, len(data), region.name)
        self.state = f"{region.describe()} is written but not verified"
        flash_tracker().written(region.start, region.end)
        with self.step(f"verify {region.name} in flash"):
            flash_crc = ub.crc32(region.start, len(data))
        if flash_crc != crc:
            self.state = f"{region.describe()} holds data that does not match the image"
            raise VerifyError(
                f"the flash has crc32 {flash_crc:08x} after writing, the image {crc:08x}"
            )
        if region.name == "uboot":
            ub.protect(True, region)
        self.state = f"{region.describe()} written and verified"
        flash_tracker().verified(region.start, region.end)
        return WriteResult(region.name, hex_address(region.start), len(data), f"{crc:08x}", sectors)

    def boot(self, shell: ShellQuery) -> BootReport:
        assert self.uboot is not None
        with self.step("boot"):
            return self.uboot.bootm(KERNEL_ADDRESS, scan_bytes=REGIONS["rootfs"].size, shell=shell)


def _boot_verdict(rep: BootReport, result: Any, what: str) -> None:
    facts = _facts(result)
    if rep.image_error:
        raise BootError(f"{what}, but the kernel did not boot: {rep.image_error}", facts=facts)
    if rep.panic:
        raise BootError(f"{what}, but the kernel panicked: {rep.panic}", facts=facts)
    if not rep.mounted:
        raise BootError(f"{what}, but the root file system was not mounted", facts=facts)
    if rep.crc_errors:
        raise BootError(
            f"{what}; root mounted but the kernel reported {rep.crc_errors} JFFS2 CRC errors "
            "(was the partition erased before writing?)",
            facts=facts,
        )


# -- the operations -----------------------------------------------------------------------


def info(conn: Connection) -> InfoResult:
    """U-Boot version, flash geometry, environment, partition map, root fs check."""
    sess = Session(conn)
    with sess.guard():
        ub = sess.attach()
        assert ub.flinfo is not None
        root = ub.md_bytes(REGIONS["rootfs"].start, 64)
        kernel = parse_uimage_header(ub.md_bytes(KERNEL_ADDRESS, 64))
        setting = ub.md_bytes(REGIONS["setting"].start, 64)
        jffs2 = looks_like_jffs2(root)
        head = parse_node_header(root, 0)
        partitions = parse_mtdparts(sess.env.get("bootargs", ""))
        fi = ub.flinfo
        return InfoResult(
            message=f"{sess.version}; root file system "
            f"{'looks like JFFS2' if jffs2 else 'is NOT JFFS2'}",
            attached=sess.attached_via,
            uboot_version=sess.version,
            flash=FlashFacts(
                base=hex_address(FLASH_BASE),
                size=fi.size,
                sectors=len(fi.sectors),
                sector_size=fi.sector_size(0),
                protected=[f"{a:#010x}" for a in fi.protected],
                erase_timeout_ms=fi.erase_timeout_ms,
            ),
            env=sess.env,
            partitions=[
                {**p, "address": hex_address(p["address"]), "offset": hex_address(p["offset"])}
                for p in partitions
            ],
            regions={
                k: {"address": hex_address(r.start), "size": r.size} for k, r in REGIONS.items()
            },
            rootfs_jffs2=jffs2,
            rootfs_first_node=head.kind if head else None,
            rootfs_empty=root == b"\xff" * len(root),
            setting_jffs2=looks_like_jffs2(setting),
            kernel={
                **asdict(kernel),
                "load": hex_address(kernel.load),
                "entry": hex_address(kernel.entry),
            },
            steps=sess.steps,
        )


def _backup_ranges(include_bootloader: bool) -> list[Region]:
    names = (("uboot",) if include_bootloader else ()) + DEFAULT_BACKUP
    return [REGIONS[n] for n in names]


def _do_backup(sess: Session, files: TftpFiles, out: Path, include_bootloader: bool) -> BackupFacts:
    assert sess.uboot is not None
    ub = sess.uboot
    regions = _backup_ranges(include_bootloader)
    mac = re.sub(r"[^0-9a-fA-F]", "", sess.env.get("ethaddr", "")).lower() or "unknown"
    pieces: list[bytes] = []
    ranges: list[BackupRange] = []
    for r in regions:
        name = f"camrescue-{mac}-{r.name}.bin"
        since = files.expect_upload(name)
        with sess.step(f"upload {r.name}"):
            try:
                ub.tftp(r.start, name, r.size, upload=True, label=f"backup {r.name}")
            except NetworkError as e:
                e.hint = e.hint or files.explain_missing(name)
                raise
            data = files.collect(name, r.size, since)
        if len(data) != r.size:
            raise VerifyError(f"received {len(data)} bytes of {r.name}, expected {r.size}")
        with sess.step(f"verify {r.name}"):
            dev_crc = ub.crc32(r.start, r.size)
        crc = zlib.crc32(data)
        if crc != dev_crc:
            raise VerifyError(
                f"backup of {r.name}: the camera's crc32 is {dev_crc:08x}, the received file's "
                f"{crc:08x}: the upload was damaged",
                hint="run the backup again",
            )
        pieces.append(data)
        ranges.append(
            BackupRange(
                name=r.name,
                address=hex_address(r.start),
                offset=hex_address(r.start - regions[0].start),
                length=r.size,
                crc32=f"{crc:08x}",
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )
    image = b"".join(pieces)
    manifest = make_manifest(
        out.name, regions[0].start, image, [asdict(x) for x in ranges], sess.version, sess.env
    )
    with sess.step("write backup"):
        save_backup(out, image, manifest)
    return BackupFacts(
        path=str(out),
        manifest=str(manifest_path(out)),
        size=len(image),
        sha256=manifest["sha256"],
        ranges=ranges,
    )


def backup(
    conn: Connection,
    out: str | os.PathLike[str],
    net: NetOptions,
    *,
    include_bootloader: bool = False,
) -> BackupResult:
    """Upload kernel, root and settings (and the boot loader) and verify each range's crc32."""
    target = Path(out)
    _check_writable(target)
    sess = Session(conn)
    with sess.guard():
        sess.attach()
        sess.check_geometry(_backup_ranges(include_bootloader))
        settings = sess.network(net)
        with TftpFiles(net, sess.status) as files:
            facts = _do_backup(sess, files, target, include_bootloader)
        return BackupResult(
            message=f"backup of {len(facts.ranges)} ranges written to {target} (verified by crc32)",
            path=facts.path,
            manifest=facts.manifest,
            size=facts.size,
            sha256=facts.sha256,
            ranges=facts.ranges,
            network=settings,
            uboot_version=sess.version,
            steps=sess.steps,
        )


def _check_writable(target: Path) -> None:
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UsageError(f"cannot write {target}: {parent} is not a writable directory")


def _default_backup_path() -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(f"hi3511-backup-{stamp}.bin")


def flash(
    conn: Connection,
    image: str | os.PathLike[str],
    net: NetOptions,
    *,
    partition: str = "rootfs",
    backup_file: str | None = None,
    no_backup: bool = False,
    backup_out: str | None = None,
    skip_erase: bool = False,
    boot: bool = True,
    remote_name: str | None = None,
    shell: ShellQuery | None = None,
) -> FlashResult:
    """Write a JFFS2 image (raw or .pkg) to a partition the safe way, then boot and report.

    The order, in this function: attach and check the flash geometry; refuse another
    camera's backup; set the network; back up this camera (or take the given backup);
    then write the region (:meth:`Session.write_region`: download to RAM, crc32, erase
    exactly the region, copy, crc32) — or, with ``skip_erase``, tftp straight into the
    flash on purpose; then boot and judge the kernel's log."""
    partition = region_name(partition, note=False)
    if partition not in JFFS2_REGIONS:
        raise UsageError(f"--partition must be one of {', '.join(JFFS2_REGIONS)}")
    region = REGIONS[partition]
    prepared = prepare_jffs2_image(image, partition_size=region.size, erase_size=SECTOR_SIZE)
    if remote_name is None:
        stem = Path(image).name
        remote_name = stem if prepared.kind == "jffs2" else f"{Path(image).stem}.jffs2"
    check_name(remote_name, "file name for the camera")
    existing = None
    if backup_file:
        existing = load_backup(backup_file)
    elif not no_backup:
        out = Path(backup_out) if backup_out else _default_backup_path()
        _check_writable(out)
    warnings: list[str] = []
    if skip_erase:
        text = (
            f"--skip-erase: the image is written with tftp straight to {region.start:#x} WITHOUT "
            "erasing. NOR flash can only clear bits, so the result is old AND new data: expect "
            "JFFS2 CRC errors (the classic mistake, reproduced on purpose)"
        )
        warn(text)
        warnings.append(text)
    sess = Session(conn)
    result = FlashResult(partition=partition, image=prepared.summary(), warnings=warnings)
    given_backup: Any = ABSENT
    with sess.guard():
        sess.attach()
        sess.check_geometry([region])
        if existing is not None:
            _check_same_camera(
                sess, existing, hint="make a backup of this camera first (drop --backup)"
            )
            given_backup = {"path": str(existing.path), "given": True}
        result.network = sess.network(net)
        result.backup = given_backup
        with TftpFiles(net, sess.status) as files:
            if existing is None and not no_backup:
                result.backup = _do_backup(sess, files, out, include_bootloader=False)
            elif no_backup:
                result.backup = None
            assert sess.uboot is not None
            flash_tracker().plan([(region.start, region.end)])
            if skip_erase:
                files.offer(remote_name, prepared.data)
                sess.state = (
                    f"{region.describe()} is being programmed over its old contents (no erase)"
                )
                flash_tracker().writing(region.start, region.end)
                with sess.step(f"tftp {partition} straight to flash"):
                    sess.uboot.tftp(
                        region.start,
                        remote_name,
                        prepared.size,
                        upload=False,
                        label=f"tftp {partition}",
                    )
                sess.state = f"{region.describe()} holds old AND new data (written without erase)"
                flash_tracker().written(region.start, region.end)
                with sess.step(f"crc32 {partition}"):
                    flash_crc = sess.uboot.crc32(region.start, prepared.size)
                result.flash_crc32 = f"{flash_crc:08x}"
                result.flash_matches_image = flash_crc == prepared.crc32
            else:
                result.write = sess.write_region(files, net, region, prepared.data, remote_name)
                result.flash_crc32 = result.write.crc32
                result.flash_matches_image = True
        result.steps = sess.steps
        what = f"{partition} written from {Path(image).name}" + (
            " without erase" if skip_erase else " and verified"
        )
        if not boot:
            result.message = what + " (not booted)"
            return result
        rep = sess.boot(shell or ShellQuery())
        result.record(rep)
        _boot_verdict(rep, result, what)
        result.message = f"{what}; booted, root mounted with no CRC errors"
        return result


def _check_same_camera(sess: Session, backup: BackupImage, *, hint: str) -> None:
    """Refuse a backup whose manifest names another camera (by U-Boot's ``ethaddr``)."""
    mac = backup.manifest.get("ethaddr") if backup.manifest else None
    here = sess.env.get("ethaddr")
    if mac and here and mac.lower() != here.lower():
        raise RefusedError(
            f"the backup {backup.path} is of another camera (ethaddr {mac}, this one {here})",
            flash_state="untouched",
            hint=hint,
        )


def restore(
    conn: Connection,
    backup_path: str | os.PathLike[str],
    net: NetOptions,
    *,
    partitions: list[str] | None = None,
    include_bootloader: bool = False,
    confirm_bootloader: bool = False,
    address: int | None = None,
    boot: bool = True,
    shell: ShellQuery | None = None,
    other_camera: bool = False,
    backup_out: str | None = None,
) -> RestoreResult:
    """Write a backup's ranges back, each the safe way, then boot and report.

    With ``backup_out``, what is about to be overwritten is backed up there first.

    A backup whose manifest names another camera (its ``ethaddr``) is refused unless
    ``other_camera``: it would give this camera the other one's settings."""
    bk = load_backup(backup_path, address)
    ranges = bk.ranges
    partitions = [region_name(n, note=False) for n in partitions or []]
    if partitions:
        unknown = set(partitions) - {r["name"] for r in ranges}
        if unknown:
            raise UsageError(f"the backup has no {', '.join(sorted(unknown))} range")
        ranges = [r for r in ranges if r["name"] in partitions]
    if any(r["name"] == "uboot" for r in ranges):
        if not include_bootloader:
            ranges = [r for r in ranges if r["name"] != "uboot"]
        elif not confirm_bootloader:
            raise RefusedError(
                "restoring the boot loader area needs --confirm-bootloader: if it goes wrong the "
                "camera no longer starts and only a flash programmer can fix it",
                flash_state="untouched",
            )
    if not ranges:
        raise UsageError("nothing to restore")
    check_protected(
        [(r["name"], r["address"], r["address"] + r["length"]) for r in ranges],
        PROTECTED,
        allowed=include_bootloader and confirm_bootloader,
        option="--include-bootloader --confirm-bootloader",
    )
    sess = Session(conn)
    result = RestoreResult(backup=str(bk.path))
    with sess.guard():
        sess.attach()
        if not other_camera:
            _check_same_camera(
                sess,
                bk,
                hint="restore this camera's own backup, or add --other-camera if you really "
                "mean to put another camera's flash (and settings) on this one",
            )
        regions = [Region(r["name"], r["address"], r["length"]) for r in ranges]
        sess.check_geometry(regions)
        result.network = sess.network(net)
        flash_tracker().plan((r.start, r.end) for r in regions)
        with TftpFiles(net, sess.status) as files:
            if backup_out is not None:
                bootloader = any(r.start < REGIONS["kernel"].start for r in regions)
                result.backup_before_restore = _do_backup(sess, files, Path(backup_out), bootloader)
            for r, region in zip(ranges, regions, strict=True):
                name = f"camrescue-restore-{region.name}.bin"
                result.ranges.append(sess.write_region(files, net, region, bk.range_data(r), name))
        result.steps = sess.steps
        what = f"restored {', '.join(r.name for r in regions)} from {bk.path.name}"
        if not boot:
            result.message = what + " (not booted)"
            return result
        rep = sess.boot(shell or ShellQuery())
        result.record(rep)
        _boot_verdict(rep, result, what)
        result.message = f"{what}; booted, root mounted with no CRC errors"
        return result


def boot(conn: Connection, *, shell: ShellQuery | None = None) -> BootResult:
    """Boot the kernel and report CRC errors and the mount result."""
    sess = Session(conn)
    with sess.guard():
        sess.attach()
        rep = sess.boot(shell or ShellQuery())
        result = BootResult(steps=sess.steps)
        result.record(rep)
        _boot_verdict(rep, result, "booted")
        result.message = "booted, root mounted with no CRC errors"
        return result
