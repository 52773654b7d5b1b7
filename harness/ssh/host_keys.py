"""The guest's host key, pinned in an OpenSSH ``known_hosts`` file, and the ``ssh`` line a human
uses with the very same pin and key."""

from __future__ import annotations

import shlex
from pathlib import Path

import paramiko

from harness.errors import InfrastructureError
from harness.ssh.endpoint import SSHEndpoint


class HostKeyPin:
    """The guest's host key, recorded on first connect and required on every later one.

    Stored as an OpenSSH ``known_hosts`` file so that ``ssh -o UserKnownHostsFile=...`` checks the
    very same key.
    """

    def __init__(self, path: Path, host: str, port: int) -> None:
        self.path = path
        self.host_id = host if port == 22 else f"[{host}]:{port}"

    def expect(self, public_line: str) -> None:
        """Pin a key known before first contact (an existing pin is left as it is)."""
        known = paramiko.HostKeys()
        if self.path.exists():
            known.load(str(self.path))
        if known.lookup(self.host_id):
            return
        entry = paramiko.hostkeys.HostKeyEntry.from_line(f"{self.host_id} {public_line}")
        if entry is None or entry.key is None:
            raise InfrastructureError(f"cannot pin host key {public_line[:60]!r} for {self.host_id}")
        known.add(self.host_id, entry.key.get_name(), entry.key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        known.save(str(self.path))

    def check(self, key: paramiko.PKey) -> None:
        known = paramiko.HostKeys()
        if self.path.exists():
            known.load(str(self.path))
        pinned = known.lookup(self.host_id)
        if not pinned:
            known.add(self.host_id, key.get_name(), key)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            known.save(str(self.path))
            return
        expected = pinned.get(key.get_name())
        if expected is None or expected != key:
            was = ", ".join(k.fingerprint for k in pinned.values())
            raise InfrastructureError(
                f"the SSH host key of {self.host_id} changed: pinned {was}, now {key.fingerprint}",
                hint="this is not the VM first connected to (did another VM take over its port?); "
                f"remove it with `harness gc` and re-run. The pin lives in {self.path}",
            )


def openssh_options(endpoint: SSHEndpoint, known_hosts: Path) -> list[str]:
    return [
        "-i", str(endpoint.key_path),
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "IdentitiesOnly=yes",
    ]


def ssh_command(endpoint: SSHEndpoint, known_hosts: Path) -> str:
    """The exact ``ssh`` line a human pastes to log into the VM."""
    args = ["ssh", "-p", str(endpoint.port), *openssh_options(endpoint, known_hosts),
            f"{endpoint.user}@{endpoint.host}"]
    return shlex.join(args)
