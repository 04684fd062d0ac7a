"""recovery/netcheck.py: the Hi3511 network preflight (issue 20): serverip must be this
computer's, the camera in that interface's subnet and routed through it; ``--nic``
picks the interface; every refusal names the addresses in use and the fix."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from recovery.netcheck import Interface, Route, check, local_interfaces, local_routes, route_to

ETH = Interface("eth0", ipaddress.IPv4Interface("192.168.1.5/24"))
WLAN = Interface("wlan0", ipaddress.IPv4Interface("10.0.0.7/24"))
LO = Interface("lo", ipaddress.IPv4Interface("127.0.0.1/8"))
IFS = [LO, ETH, WLAN]


def _routes(*items: tuple[str, str]) -> list[Route]:
    return [Route(i, ipaddress.IPv4Network(n), None) for i, n in items]


def test_this_computers_loopback_is_seen_and_checked_for_real() -> None:
    assert any(i.name == "lo" and str(i.ip) == "127.0.0.1" for i in local_interfaces())
    result = check("127.0.0.2", "127.0.0.1", "255.0.0.0")
    assert result.ok and result.line == "camera 127.0.0.2 -> server 127.0.0.1 (lo)"


def test_proc_net_route_is_parsed(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "wlan0\t00000000\t0100000A\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
        "eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n"
    )
    default, lan = local_routes(str(table))
    assert default.network == ipaddress.IPv4Network("0.0.0.0/0")
    assert str(default.gateway) == "10.0.0.1"
    assert (lan.iface, str(lan.network), lan.gateway) == ("eth0", "192.168.1.0/24", None)
    assert route_to(ipaddress.IPv4Address("192.168.1.10"), [default, lan], IFS) == "eth0"
    assert route_to(ipaddress.IPv4Address("8.8.8.8"), [default, lan], IFS) == "wlan0"
    local_routes()  # the real table parses


def test_good_setup_prints_camera_to_server() -> None:
    r = check("192.168.1.10", "192.168.1.5", "255.255.255.0", interfaces=IFS, routes=[])
    assert r.ok and r.line == "camera 192.168.1.10 -> server 192.168.1.5 (eth0)"


def test_serverip_not_mine_names_my_addresses_and_the_one_to_use() -> None:
    r = check("192.168.1.10", "192.168.1.100", "255.255.255.0", interfaces=IFS, routes=[])
    assert not r.ok
    assert "192.168.1.100 is not an address of this computer" in r.problem
    assert "eth0 192.168.1.5/24" in r.problem and "wlan0 10.0.0.7/24" in r.problem
    assert "--serverip 192.168.1.5" in r.fix and "--nic eth0" in r.fix


def test_no_interface_on_the_cameras_network_says_how_to_add_one() -> None:
    r = check("192.168.0.10", "192.168.0.100", "255.255.255.0", interfaces=IFS, routes=[])
    assert not r.ok and "sudo ip addr add 192.168.0.100/24 dev IFACE" in r.fix


def test_nic_picks_the_server_address() -> None:
    r = check("10.0.0.20", "192.168.1.100", "255.255.255.0", nic="wlan0", interfaces=IFS, routes=[])
    assert r.ok and r.server == "10.0.0.7" and r.line.endswith("(wlan0)")
    bad = check("10.0.0.20", "192.168.1.100", "255.255.255.0", nic="eth9", interfaces=IFS)
    assert not bad.ok and "no IPv4 interface 'eth9'" in bad.problem and "eth0" in bad.fix


def test_camera_outside_the_servers_subnet_is_refused() -> None:
    r = check("192.168.2.10", "192.168.1.5", "255.255.255.0", interfaces=IFS, routes=[])
    assert not r.ok and "not in eth0's network 192.168.1.0/24" in r.problem


def test_a_route_through_another_interface_is_refused() -> None:
    eth1 = Interface("eth1", ipaddress.IPv4Interface("192.168.1.6/24"))
    routes = _routes(("eth1", "192.168.1.0/24"), ("eth0", "192.168.1.0/25"))
    r = check(
        "192.168.1.200", "192.168.1.5", "255.255.255.0", interfaces=[ETH, eth1], routes=routes
    )
    assert not r.ok and "through eth1, not through eth0" in r.problem and "--nic eth1" in r.fix


def test_require_refuses_before_any_transfer_with_the_fix() -> None:
    import pytest

    from recovery.errors import NetworkError
    from recovery.netcheck import require

    with pytest.raises(NetworkError) as e:
        require("192.0.2.77", "198.51.100.1", "255.255.255.0")  # no such address here
    assert e.value.flash_state == "untouched" and e.value.hint
    assert "camera 192.0.2.77 -> server 198.51.100.1" in e.value.message
    assert "is not an address of this computer" in e.value.message
    # an endpoint the person chose (emulator, lab): reported, not refused
    assert not require("192.0.2.77", "198.51.100.1", "255.255.255.0", enforce=False).ok
    assert (
        require("127.0.0.2", "10.9.9.9", "255.0.0.0", nic="lo", enforce=False).server == "127.0.0.1"
    )
