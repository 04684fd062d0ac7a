"""Network preflight for a camera that fetches files by TFTP (the Hi3511's U-Boot).

U-Boot's ``tftp`` sends to ``serverip`` from ``ipaddr``; it has no useful
gateway support, so the two must be on one Ethernet segment and ``serverip``
must be an address of *this* computer, on the interface that cable is plugged
into. A mismatch is the most common first-hour failure: the camera prints ``T``
marks until it gives up. This module checks it before any transfer, and says
the addresses in use.

* :func:`local_interfaces` reads this computer's IPv4 addresses with the
  ``SIOCGIFADDR``/``SIOCGIFNETMASK`` ioctls (netdevice(7)) over
  ``socket.if_nameindex()``;
* :func:`local_routes` reads the kernel's IPv4 routing table
  ``/proc/net/route`` (proc(5): hex little-endian destination, gateway, mask);
* :func:`check` compares: ``serverip`` must belong to an interface (``--nic
  IFACE`` picks the interface and so the address), the camera's ``ipaddr``
  must be in that interface's subnet, and the kernel's route to ``ipaddr``
  (longest prefix) must leave through that same interface.

The result says ``camera A -> server B (IFACE)`` and, when refused, the one fix.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from dataclasses import dataclass, field

SIOCGIFADDR = 0x8915
SIOCGIFNETMASK = 0x891B


@dataclass(frozen=True)
class Interface:
    name: str
    address: ipaddress.IPv4Interface  # address with its prefix

    @property
    def ip(self) -> ipaddress.IPv4Address:
        return self.address.ip

    def __str__(self) -> str:
        return f"{self.name} {self.address.with_prefixlen}"


@dataclass(frozen=True)
class Route:
    iface: str
    network: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address | None


def _ioctl_addr(sock: socket.socket, name: str, request: int) -> str | None:
    try:
        raw = fcntl.ioctl(sock.fileno(), request, struct.pack("256s", name.encode()[:15]))
    except OSError:
        return None
    return socket.inet_ntoa(raw[20:24])


def local_interfaces() -> list[Interface]:
    """This computer's IPv4 interfaces (the first address of each)."""
    out: list[Interface] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            addr = _ioctl_addr(s, name, SIOCGIFADDR)
            mask = _ioctl_addr(s, name, SIOCGIFNETMASK)
            if addr and mask:
                out.append(Interface(name, ipaddress.IPv4Interface(f"{addr}/{mask}")))
    return out


def local_routes(path: str = "/proc/net/route") -> list[Route]:
    """The kernel's IPv4 routes (empty when the table cannot be read)."""
    routes: list[Route] = []
    try:
        with open(path) as table:
            lines = table.read().splitlines()[1:]
    except OSError:
        return routes
    for line in lines:
        f = line.split()
        if len(f) < 8:
            continue

        def ip(h: str) -> ipaddress.IPv4Address:
            return ipaddress.IPv4Address(struct.pack("<I", int(h, 16)))

        try:
            net = ipaddress.IPv4Network(f"{ip(f[1])}/{ip(f[7])}")
        except ValueError:
            continue
        gw = ip(f[2])
        routes.append(Route(f[0], net, None if int(gw) == 0 else gw))
    return routes


def route_to(
    target: ipaddress.IPv4Address, routes: list[Route], interfaces: list[Interface]
) -> str | None:
    """The interface the kernel would send to ``target`` through (longest prefix).
    Each interface's own subnet counts too: loopback's lives in the kernel's
    ``local`` table, which /proc/net/route does not show."""
    connected = [Route(i.name, i.address.network, None) for i in interfaces]
    candidates = [r for r in [*routes, *connected] if target in r.network]
    if not candidates:
        return None
    return max(candidates, key=lambda r: r.network.prefixlen).iface


@dataclass
class Preflight:
    camera: str
    server: str
    iface: str | None
    ok: bool
    problem: str = ""
    fix: str = ""
    interfaces: list[str] = field(default_factory=list)

    @property
    def line(self) -> str:
        via = f" ({self.iface})" if self.iface else ""
        return f"camera {self.camera} -> server {self.server}{via}"


def _listing(interfaces: list[Interface]) -> str:
    shown = [str(i) for i in interfaces if not i.ip.is_loopback]
    return ", ".join(shown) or "none but loopback"


def check(
    ipaddr: str,
    serverip: str,
    netmask: str,
    *,
    nic: str | None = None,
    interfaces: list[Interface] | None = None,
    routes: list[Route] | None = None,
) -> Preflight:
    """Whether the camera at ``ipaddr`` can reach this computer at ``serverip``.

    With ``nic``, ``serverip`` is replaced by that interface's address (the
    caller then sets it on the camera). ``interfaces``/``routes`` default to this
    computer's.
    """
    ifs = local_interfaces() if interfaces is None else interfaces
    rts = local_routes() if routes is None else routes
    cam = ipaddress.IPv4Address(ipaddr)
    names = [str(i) for i in ifs]
    if nic is not None:
        chosen = [i for i in ifs if i.name == nic]
        if not chosen:
            return Preflight(
                ipaddr, serverip, nic, False,
                f"this computer has no IPv4 interface {nic!r}",
                f"give one of: {_listing(ifs)} (--nic NAME)",
                names,
            )  # fmt: skip
        serverip = str(chosen[0].ip)
    srv = ipaddress.IPv4Address(serverip)
    mine = [i for i in ifs if i.ip == srv]
    if not mine:
        on_camera_net = [
            i for i in ifs if cam in i.address.network and not i.ip.is_loopback and i.ip != cam
        ]
        fix = (
            f"give --serverip {on_camera_net[0].ip} (this computer's address on the "
            f"camera's network, {on_camera_net[0].name}) or --nic {on_camera_net[0].name}"
            if on_camera_net
            else f"give this computer an address in {ipaddress.IPv4Interface(f'{ipaddr}/{netmask}').network} "
            f"on the interface the camera is plugged into (e.g. sudo ip addr add "
            f"{_suggest(cam, netmask, srv)}/{ipaddress.IPv4Network(f'0.0.0.0/{netmask}').prefixlen} dev IFACE), "
            "or give --ipaddr/--serverip for the network you have"
        )
        return Preflight(
            ipaddr, serverip, None, False,
            f"serverip {serverip} is not an address of this computer "
            f"(its addresses: {_listing(ifs)})",
            fix, names,
        )  # fmt: skip
    iface = mine[0]
    if cam not in iface.address.network:
        return Preflight(
            ipaddr, serverip, iface.name, False,
            f"the camera's ipaddr {ipaddr} is not in {iface.name}'s network "
            f"{iface.address.network} (U-Boot's tftp has no gateway)",
            f"give --ipaddr with a free address in {iface.address.network}",
            names,
        )  # fmt: skip
    out = route_to(cam, rts, ifs)
    if out is not None and out != iface.name:
        return Preflight(
            ipaddr, serverip, iface.name, False,
            f"this computer reaches {ipaddr} through {out}, not through {iface.name} "
            f"(which has serverip {serverip}): two interfaces are on one subnet",
            f"give --nic {out} (use {out}'s address), or take the other interface off that subnet",
            names,
        )  # fmt: skip
    return Preflight(ipaddr, serverip, iface.name, True, interfaces=names)


def _suggest(
    cam: ipaddress.IPv4Address, netmask: str, server: ipaddress.IPv4Address | None = None
) -> str:
    """An address for this computer on the camera's network: the serverip the camera
    already has, when it fits."""
    net = ipaddress.IPv4Network(f"{cam}/{netmask}", strict=False)
    if server is not None and server in net and server != cam:
        return str(server)
    for host in (net.network_address + 100, net.network_address + 2, net.network_address + 1):
        if host in net and host != cam and host != net.broadcast_address:
            return str(host)
    return str(cam)


def require(
    ipaddr: str,
    serverip: str,
    netmask: str,
    *,
    nic: str | None = None,
    enforce: bool = True,
) -> Preflight:
    """:func:`check`, raising :class:`recovery.errors.NetworkError` (flash untouched,
    the fix as its hint) when refused and ``enforce`` is set. ``enforce`` is for the
    embedded server on ``serverip``:69; a server bound where the person said
    (``--tftp-bind``: an emulator, a lab) or the person's own server (``--no-server``)
    is not this check's business, but ``--nic`` still picks the address."""
    from recovery.errors import NetworkError

    result = check(ipaddr, serverip, netmask, nic=nic)
    if not result.ok and (enforce or (nic is not None and result.iface is None)):
        raise NetworkError(
            f"{result.line}: {result.problem}", flash_state="untouched", hint=result.fix
        )
    return result


def address_of(nic: str) -> str:
    """The IPv4 address of this computer's interface ``nic`` (``--nic``); a
    :class:`recovery.errors.NetworkError` listing the interfaces when it has none."""
    from recovery.errors import NetworkError

    ifs = local_interfaces()
    for i in ifs:
        if i.name == nic:
            return str(i.ip)
    raise NetworkError(
        f"this computer has no IPv4 interface {nic!r}",
        flash_state="untouched",
        hint=f"give one of: {_listing(ifs)} (--nic NAME), or --serverip ADDRESS",
    )
