"""The stand-in's network: Softnet's rule semantics and the relay that makes a VM's address real.

A real tart VM gets a DHCP address on a host-side bridge (usually 192.168.64.0/24) and the host
reaches its port 22 directly. The stand-in gives each VM a loopback address from its lease table
and relays ``<address>:<ssh port>`` to the QEMU guest's forwarded SSH port, so that "which address
did ``tart ip`` print" matters exactly as it does on a Mac.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from harness.ssh.relay import Relay, SocketStream

HOST_GATEWAY = "192.168.64.1"
HOST_TOKEN = "@host"
HOST_TOKEN_SINCE = (0, 19)


class SoftnetRuleError(ValueError):
    pass


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.strip().split(".") if part.isdigit())


@dataclass(frozen=True)
class SoftnetRules:
    """``--net-softnet-block/allow`` rules; the longest matching prefix decides (allow on a tie)."""

    enabled: bool
    block: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()

    def validate(self, softnet_version: tuple[int, ...]) -> None:
        for rule in (*self.block, *self.allow):
            if rule == HOST_TOKEN:
                if softnet_version < HOST_TOKEN_SINCE:
                    raise SoftnetRuleError(
                        f"invalid CIDR {rule!r}: this Softnet ({'.'.join(map(str, softnet_version))}) "
                        "predates @host (0.19)"
                    )
                continue
            try:
                ipaddress.ip_network(rule, strict=False)
            except ValueError as exc:
                raise SoftnetRuleError(f"invalid CIDR {rule!r}: {exc}") from None

    def _network(self, rule: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(f"{HOST_GATEWAY}/32" if rule == HOST_TOKEN else rule, strict=False)

    def allows(self, address: str) -> bool:
        if not self.enabled:
            return True
        target = ipaddress.ip_address(address)
        best_prefix, verdict = -1, True  # nothing matches: Softnet lets it through
        for rules, allowed in ((self.block, False), (self.allow, True)):
            for rule in rules:
                network = self._network(rule)
                if target in network and (network.prefixlen > best_prefix or (network.prefixlen == best_prefix and allowed)):
                    best_prefix, verdict = network.prefixlen, allowed
        return verdict

    def host_can_reach_guest(self) -> bool:
        """Traffic from the host arrives through the gateway: blocked gateway, no SSH."""
        return self.allows(HOST_GATEWAY)


def relay_to(listen: tuple[str, int], target: tuple[str, int]) -> Relay:
    """Accepts on ``listen`` and pipes each connection to ``target`` (the harness's one relay)."""
    return Relay(lambda _peer: SocketStream(socket.create_connection(target, timeout=10)), listen,
                 name="standin-relay")
