"""Commands, file copies and port forwards into a guest over SSH (paramiko).

One :class:`SSHTransport` per VM. It pins the guest's host key on first contact (an OpenSSH
``known_hosts`` file, so a human's ``ssh`` uses the same pin), writes every command and its output
to a per-VM log, puts a deadline on every remote step and kills what overruns it, and verifies
every copied file by sha256 on both ends. The port-forward relay (:mod:`harness.ssh.relay`) is the
one every forward in the harness and its test doubles uses.
"""

from harness.ssh.command_log import CommandLog
from harness.ssh.host_keys import HostKeyPin, openssh_options, ssh_command
from harness.ssh.results import CommandResult, RemoteCommandFailed, Transfer
from harness.ssh.transport import SSHTransport

__all__ = [
    "CommandLog",
    "CommandResult",
    "HostKeyPin",
    "RemoteCommandFailed",
    "SSHTransport",
    "Transfer",
    "openssh_options",
    "ssh_command",
]
