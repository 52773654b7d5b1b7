"""Where a ready guest's OpenSSH server listens, and how to log in: what a provider hands the SSH
layer, so the SSH layer needs nothing of the providers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SSHEndpoint:
    """How to reach a ready VM's OpenSSH server from the host."""

    host: str
    port: int
    user: str
    key_path: Path
    password: str | None = None  # tart's vanilla images start with admin/admin
    # The guest's host public key ("ssh-ed25519 AAAA...") when the provider made it (warm clones):
    # pinned before the first connection instead of trusted on first use.
    host_key: str | None = None
