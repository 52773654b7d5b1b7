"""What makes a clone of a saved machine its own machine (host key, machine id, entropy), for
the QEMU and tart warm starts alike."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class Personalization:
    """What makes one clone its own machine. The host key is made here, not in the guest: an
    ed25519 key costs microseconds on the host against an exec of ssh-keygen under emulation, and
    the host then knows the key to expect before the first connection (no trust on first use)."""

    machine_id: str
    seed: str
    host_key_private: str  # OpenSSH PEM
    host_key_public: str  # "ssh-ed25519 AAAA..."

    @classmethod
    def new(cls) -> Personalization:
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption()).decode()
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
        return cls(machine_id=uuid.uuid4().hex, seed=secrets.token_hex(32),
                   host_key_private=private, host_key_public=public)

    def request(self, epoch: float) -> bytes:
        return (f"{epoch:.6f} {self.machine_id} {self.seed}\n{self.host_key_private.rstrip()}\n"
                f"{self.host_key_public}\n").encode()
