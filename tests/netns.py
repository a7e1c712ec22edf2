"""Separate network hosts for tests: one Linux network namespace per host, joined by a bridge.

    with Lab("a", "b", "c") as lab:
        server = lab.popen("a", [...])        # a process on host a (10.77.N.1)
        lab.cut("b")                          # b's cable is pulled: packets vanish silently
        lab.restore("b")

Every name carries this process's pid, so concurrent runs never share a namespace, a bridge or
an interface, and the subnet's third octet is picked from the pid among those no interface or
route of this machine uses. The test process itself reaches the hosts through an address on the
bridge (``lab.gateway``); the hosts have no route anywhere else, so traffic stays on the
subnet. ``close()`` kills the hosts' processes by pid and deletes everything it made, and a
later run deletes what a run that was killed left behind (only names with a dead pid).
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Namespaces guidist-<pid>-<lab>-<host>, bridge gdbr<pid>x<lab>, cables gd<pid>x<lab><host>:
# interface names have at most 15 characters. <lab> counts the labs this process made, since
# the kernel deletes a namespace's interfaces asynchronously and the next test must not collide.
_PREFIX = "guidist"
_LABS = itertools.count(1)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30,
                          check=check)


def unavailable() -> str | None:
    """Why this machine cannot make test hosts (None when it can)."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    probe = f"{_PREFIX}-{os.getpid()}-probe"
    try:
        made = _ip("netns", "add", probe, check=False)
    except FileNotFoundError:
        return "the ip command (iproute2) is not installed"
    except subprocess.TimeoutExpired:
        return "ip netns add did not answer within 30 s"
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip() or made.returncode}"
    _ip("netns", "del", probe, check=False)
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers() -> None:
    """Delete namespaces and bridges of earlier runs whose process is gone."""
    listed = _ip("netns", "list", check=False).stdout
    for m in re.finditer(rf"^({_PREFIX}-(\d+)-\S+)", listed, re.M):
        if not _alive(int(m.group(2))):
            _ip("netns", "del", m.group(1), check=False)
    links = _ip("-o", "link", "show", "type", "bridge", check=False).stdout
    for m in re.finditer(r"^\d+:\s+(gdbr(\d+)x\d+)[:@]", links, re.M):
        if not _alive(int(m.group(2))):
            _ip("link", "del", m.group(1), check=False)


def _free_octet(seed: int) -> int:
    """A third octet for 10.77.X.0/24 that nothing on this machine uses yet."""
    used = _ip("-4", "-o", "addr", check=False).stdout + _ip("-4", "route", check=False).stdout
    taken = {int(x) for x in re.findall(r"\b10\.77\.(\d+)\.", used)}
    for i in range(250):
        octet = 1 + (seed + i) % 250
        if octet not in taken:
            return octet
    raise RuntimeError("every 10.77.X.0/24 subnet is in use")


@dataclass
class Host:
    """One machine: a network namespace with one interface (eth0) on the lab's bridge."""

    name: str
    netns: str
    address: str
    link: str  # the bridge end of its cable, in the test's own namespace

    def argv(self, command: Sequence[str]) -> list[str]:
        """command, run on this host."""
        return ["ip", "netns", "exec", self.netns, *command]


class Lab:
    """A few hosts on one subnet; cut and restore their cables; always torn down."""

    def __init__(self, *names: str) -> None:
        self.pid = os.getpid()
        self.tag = f"{self.pid}x{next(_LABS)}"
        self.names = names
        self.bridge = f"gdbr{self.tag}"
        self.subnet = ""
        self.gateway = ""
        self.hosts: dict[str, Host] = {}
        self._procs: list[subprocess.Popen] = []

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> None:
        """Make the bridge and the hosts; addresses .1, .2, ... in host order, .254 for us."""
        remove_leftovers()
        octet = _free_octet(self.pid)
        self.subnet = f"10.77.{octet}.0/24"
        self.gateway = f"10.77.{octet}.254"
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("link", "set", self.bridge, "up")
            _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            for i, name in enumerate(self.names, start=1):
                host = Host(name, f"{_PREFIX}-{self.tag.replace('x', '-')}-{name}",
                            f"10.77.{octet}.{i}", f"gd{self.tag}{name}"[:15])
                _ip("netns", "add", host.netns)
                self.hosts[name] = host
                # The peer is created inside the namespace, so it can be called eth0 there.
                _ip("link", "add", host.link, "type", "veth", "peer", "name", "eth0",
                    "netns", host.netns)
                _ip("link", "set", host.link, "master", self.bridge, "up")
                _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
                _ip("-n", host.netns, "link", "set", "eth0", "up")
                _ip("-n", host.netns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def popen(self, name: str, command: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        """Start command on a host (``ip netns exec`` execs it: the pid is the command's)."""
        p = subprocess.Popen(self.hosts[name].argv(command), **kwargs)
        self._procs.append(p)
        return p

    def run(self, name: str, command: Sequence[str], **kwargs: Any) -> \
            subprocess.CompletedProcess:
        """Run command on a host to completion."""
        kwargs.setdefault("timeout", 60)
        return subprocess.run(self.hosts[name].argv(command), **kwargs)

    def cut(self, name: str) -> None:
        """Pull the host's cable: its end stays up but has no carrier, so nothing is refused
        or reset; packets just stop arriving, as when a switch port or a route dies."""
        _ip("link", "set", self.hosts[name].link, "down")

    def restore(self, name: str) -> None:
        """Plug the cable back in."""
        _ip("link", "set", self.hosts[name].link, "up")

    def connections(self, name: str, port: int) -> list[str]:
        """Peer addresses of the established TCP connections to port on a host (seen by ss)."""
        out = self.run(name, ["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                       capture_output=True, text=True, check=True).stdout
        return [line.split()[-1].rsplit(":", 1)[0] for line in out.splitlines() if line.strip()]

    def close(self) -> None:
        """Kill the hosts' processes (by pid), then delete the hosts and the bridge."""
        for p in self._procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass
            for stream in (p.stdout, p.stderr):
                if stream is not None:
                    stream.close()
        self._procs.clear()
        for host in self.hosts.values():
            _ip("link", "del", host.link, check=False)  # both ends of the cable, at once
            _ip("netns", "del", host.netns, check=False)
        self.hosts.clear()
        _ip("link", "del", self.bridge, check=False)
