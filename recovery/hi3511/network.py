"""The network side of the Hi3511 engine: the camera's IP settings and the TFTP files.

U-Boot 1.1.4's ``tftp`` client (REFERENCE.md) takes ``ipaddr``, ``serverip``
and ``netmask`` from its environment and has no useful gateway support, so the
engine checks that the camera and this computer are two addresses on one
subnet before it types anything (:func:`resolve_network`).

:class:`TftpFiles` is the server side as the engine needs it: files offered to
the camera and uploads collected from it, either through the embedded server
(recovery/tftp/server.py) or through the root directory of the user's own TFTP server
(``--no-server --tftp-root DIR``; tftpd-hpa needs ``-c`` for uploads).
"""

from __future__ import annotations

import contextlib
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recovery.errors import NetworkError, UsageError
from recovery.files import atomic_write_bytes
from recovery.hi3511.flashmap import FLASH_SIZE, LOAD_ADDRESS
from recovery.tftp.server import TftpServer, safe_path


@dataclass
class NetOptions:
    ipaddr: str | None = None
    serverip: str | None = None
    netmask: str | None = None
    tftp_bind: tuple[str, int] | None = None  # None: serverip, port 69
    tftp_root: str | None = None
    server: bool = True
    load_address: int = LOAD_ADDRESS
    tftp_client: str | None = None  # the camera's address: the only one allowed to upload
    nic: str | None = None  # this computer's interface on the camera's network (--nic)


@dataclass
class NetSettings:
    ipaddr: str
    serverip: str
    netmask: str
    changed: dict[str, str]


def _ip(value: str | None, what: str) -> ipaddress.IPv4Address | None:
    if value in (None, ""):
        return None
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise NetworkError(
            f"{what} {value!r} is not an IPv4 address", flash_state="untouched"
        ) from None


def resolve_network(env: dict[str, str], opts: NetOptions) -> NetSettings:
    """The camera's ipaddr/serverip/netmask after the options; checked for one subnet."""
    changed = {}
    values = {}
    for key in ("ipaddr", "serverip", "netmask"):
        given = getattr(opts, key)
        if given is not None:
            _ip(given, f"--{key}")
            if env.get(key) != given:
                changed[key] = given
            values[key] = given
        else:
            values[key] = env.get(key, "")
    ip = _ip(values["ipaddr"], "the camera's ipaddr")
    server = _ip(values["serverip"], "the camera's serverip")
    missing = [k for k, v in (("ipaddr", ip), ("serverip", server)) if v is None]
    if missing:
        raise NetworkError(
            "the camera has no " + " and no ".join(missing) + " set",
            flash_state="untouched",
            hint="give --ipaddr (a free address for the camera), --serverip (this computer's "
            "address on the camera's network) and --netmask, e.g. --ipaddr 192.168.1.10 "
            "--serverip 192.168.1.1 --netmask 255.255.255.0",
        )
    assert ip is not None and server is not None
    mask_text = values["netmask"] or "255.255.255.0"
    try:
        net = ipaddress.IPv4Network(f"{ip}/{mask_text}", strict=False)
    except ValueError:
        raise NetworkError(f"netmask {mask_text!r} is not valid", flash_state="untouched") from None
    if server not in net or ip == server:
        raise NetworkError(
            f"ipaddr {ip} and serverip {server} are not two addresses on one subnet "
            f"({net}): U-Boot 1.1.4 would try a gateway and the transfer would fail",
            flash_state="untouched",
            hint="give --ipaddr/--serverip/--netmask on the network of this computer's "
            "card that the camera is plugged into",
        )
    return NetSettings(str(ip), str(server), mask_text, changed)


class TftpFiles:
    """The TFTP side as the engine needs it: offer files, collect uploads."""

    def __init__(self, opts: NetOptions, status: Callable[[str], None]) -> None:
        self.opts = opts
        self.status = status
        self.server: TftpServer | None = None
        self._staged: list[Path] = []
        # the embedded server serves only this job's files and keeps uploads private:
        # the root only matters for the user's own server (--no-server)
        self.root = Path(opts.tftp_root or ".")
        if opts.tftp_root and not self.root.is_dir():
            raise NetworkError(
                f"--tftp-root {self.root} is not a directory", flash_state="untouched"
            )
        if not opts.server and not opts.tftp_root:
            raise UsageError("--no-server needs --tftp-root DIR (the root of your TFTP server)")

    def __enter__(self) -> TftpFiles:
        if self.opts.server:
            assert self.opts.tftp_bind is not None
            client = self.opts.tftp_client
            try:
                self.server = TftpServer(
                    None, self.opts.tftp_bind, clients={client} if client else None
                ).start()
            except BaseException:
                self.__exit__()
                raise
            self.status(
                f"TFTP server on {self.opts.tftp_bind[0]}:{self.server.port} (this job's "
                "files only)"
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.stop()
        for p in self._staged:
            with contextlib.suppress(OSError):
                p.unlink()

    def offer(self, name: str, data: bytes) -> None:
        if self.server is not None:
            self.server.publish(name, data)
            return
        path = safe_path(self.root, name)
        if path.exists():
            if path.is_file() and path.read_bytes() == data:
                return  # the user's own copy: serve it, keep it
            raise UsageError(
                f"{path} already exists in the TFTP root with other content",
                flash_state="untouched",
                hint="give --remote-name with another name",
            )
        atomic_write_bytes(path, data, file_mode=0o644)  # the user's server must read it
        self._staged.append(path)

    def expect_upload(self, name: str, size: int = FLASH_SIZE) -> int:
        """Before an upload of at most ``size`` bytes: drop a stale file of that name;
        return the transfer mark."""
        if self.server is not None:
            return self.server.expect_upload(name, size)
        with contextlib.suppress(FileNotFoundError):
            safe_path(self.root, name).unlink()
        return self.mark()

    def mark(self) -> int:
        return len(self.server.transfers) if self.server is not None else 0

    def collect(self, name: str, length: int, since: int) -> bytes:
        """The uploaded file ``name`` (removed from the root afterwards)."""
        if self.server is not None:
            t = self.server.wait_upload(name, 10.0, since)
            if t is None or t.status != "done":
                raise NetworkError(f"the TFTP server did not receive {name!r} completely")
            return self.server.take_upload(name)
        path = safe_path(self.root, name)
        deadline = time.monotonic() + 10.0
        while not (path.is_file() and path.stat().st_size >= length):
            if time.monotonic() > deadline:
                raise NetworkError(
                    f"{path} did not appear with {length} bytes: does your TFTP server "
                    "allow uploads (tftpd-hpa needs -c) and serve --tftp-root?"
                )
            time.sleep(0.05)
        data = path.read_bytes()
        with contextlib.suppress(OSError):
            path.unlink()
        return data

    def explain_missing(self, name: str) -> str:
        if self.server is None:
            return f"is {self.root} the root of your TFTP server?"
        reqs = self.server.requests(name)
        if not reqs:
            return (
                f"the camera never reached this computer's TFTP server ({self.server.bind[0]}:"
                f"{self.server.port}): check serverip, the cable and the firewall"
            )
        return f"the server saw the request ({reqs[-1].status})"
