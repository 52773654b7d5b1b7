"""Opening an authenticated SSH connection to a guest: retried while the guest's sshd comes up,
its host key checked against the pin, tuned for throughput to an emulated guest."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Protocol, cast

import paramiko

from harness.errors import InfrastructureError
from harness.ssh.command_log import CommandLog
from harness.ssh.endpoint import SSHEndpoint
from harness.ssh.host_keys import HostKeyPin
from harness.waiting import attempts

# Large windows and packets keep the pipe full: the guest (often under software emulation)
# is the bottleneck, so every round trip the host saves is throughput gained.
WINDOW_SIZE = 2**27
MAX_PACKET_SIZE = 2**15
# AES-GCM first: one pass per packet (no separate MAC), cheapest for an emulated guest CPU.
PREFERRED_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
)


def open_connection(endpoint: SSHEndpoint, pin: HostKeyPin, log: CommandLog, deadline_s: float,
                    still_alive: Callable[[], None] | None = None) -> paramiko.Transport:
    """Connect, retrying refused/half-open connections until ``deadline_s`` has passed.

    ``still_alive`` is called between attempts and may raise (e.g. the VM's process died)
    to give up early. A refused key is not retried: it will not start working.
    """
    if endpoint.host_key:
        pin.expect(endpoint.host_key)
    key = load_key(endpoint)
    tried, last_error = 0, "no attempt made"
    for attempt in attempts(deadline_s, lambda number: min(0.5 * number, 3.0)):
        if (remaining := attempt.remaining_s()) <= 0:
            break
        tried = attempt.number
        try:
            transport = open_transport(endpoint, remaining)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
            if still_alive is not None:
                still_alive()
            continue
        try:
            pin.check(transport.get_remote_server_key())
            authenticate(transport, endpoint, key)
        except BaseException:
            transport.close()
            raise
        log.note(f"connected to {endpoint.user}@{endpoint.host}:{endpoint.port} "
                 f"(attempt {attempt.number}, cipher {remote_cipher(transport)})")
        return transport
    raise InfrastructureError(
        f"could not open SSH to {endpoint.user}@{endpoint.host}:{endpoint.port} "
        f"within {deadline_s:.0f} s ({tried} attempts); last error: {last_error}",
        hint="the guest's sshd is not answering: look at the VM's console log",
    )


def load_key(endpoint: SSHEndpoint) -> paramiko.PKey:
    try:
        return paramiko.PKey.from_path(endpoint.key_path)
    except FileNotFoundError:
        raise InfrastructureError(
            f"SSH private key {endpoint.key_path} does not exist",
            hint="build the base image (`harness images build ...`); the key is made with it",
        ) from None
    except (paramiko.SSHException, ValueError, OSError) as exc:
        raise InfrastructureError(
            f"cannot read SSH private key {endpoint.key_path}: {exc}",
            hint="the key must be an unencrypted OpenSSH private key; rebuild the image",
        ) from None


def open_transport(endpoint: SSHEndpoint, remaining: float) -> paramiko.Transport:
    sock = socket.create_connection((endpoint.host, endpoint.port), timeout=min(remaining, 10.0))
    try:
        transport = paramiko.Transport(
            sock, default_window_size=WINDOW_SIZE, default_max_packet_size=MAX_PACKET_SIZE
        )
    except BaseException:
        sock.close()
        raise
    try:
        options = transport.get_security_options()
        offered = [c for c in PREFERRED_CIPHERS if c in options.ciphers]
        options.ciphers = tuple(offered + [c for c in options.ciphers if c not in offered])
        transport.banner_timeout = min(remaining, 30.0)
        transport.start_client(timeout=min(remaining, 30.0))
    except BaseException:
        transport.close()
        raise
    return transport


def authenticate(transport: paramiko.Transport, endpoint: SSHEndpoint, key: paramiko.PKey) -> None:
    try:
        transport.auth_publickey(endpoint.user, key)
        return
    except paramiko.AuthenticationException as exc:
        refused = exc
    if endpoint.password is not None:
        try:
            transport.auth_password(endpoint.user, endpoint.password)
            return
        except paramiko.AuthenticationException as exc:
            refused = exc
    raise InfrastructureError(
        f"SSH authentication as '{endpoint.user}' with key {endpoint.key_path} was refused by "
        f"{endpoint.host}:{endpoint.port}"
        + (" (password also refused)" if endpoint.password is not None else ""),
        hint="the guest does not authorize this key for this user: rebuild the image "
        "(`harness images build <image>`) so that its authorized key matches the key file",
        detail=str(refused),
    )


class _NegotiatedCipher(Protocol):
    remote_cipher: str


def remote_cipher(transport: paramiko.Transport) -> str:
    """The cipher negotiated for data sent to the peer.

    ``Transport`` sets ``remote_cipher`` in its constructor; types-paramiko declares only
    ``local_cipher``.
    """
    return cast(_NegotiatedCipher, transport).remote_cipher
