"""This machine's addresses, for telling a remote worker where to connect."""

from __future__ import annotations

import ipaddress
import socket

import psutil


def reachable_addresses() -> list[str]:
    """Non-loopback IPv4 addresses of this machine's interfaces that are up, best first."""
    stats = psutil.net_if_stats()
    found: list[str] = []
    for name, addrs in psutil.net_if_addrs().items():
        if name in stats and not stats[name].isup:
            continue
        for a in addrs:
            if a.family != socket.AF_INET:
                continue
            ip = ipaddress.ip_address(a.address)
            if ip.is_loopback or ip.is_link_local:
                continue
            found.append(a.address)
    # Private LAN addresses are what a second laptop on the same network can reach.
    return sorted(set(found), key=lambda a: (not ipaddress.ip_address(a).is_private, a))


def address_towards(host: str, port: int) -> str:
    """The local IP address this machine uses to reach host ("" if there is no route).

    Connecting a UDP socket only asks the kernel for a route: no packet is sent.
    """
    try:
        family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((host.strip("[]"), int(port) or 9))
            return str(s.getsockname()[0])
    except OSError:
        return ""
