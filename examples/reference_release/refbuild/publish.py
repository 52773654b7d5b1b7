"""Writing one release directory: tarball, checksums.txt, install.sh; skipped when its inputs are unchanged."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import log
from .config import ReleaseIdentity
from .hashing import sha256_file
from .tarball import write_tarball
from .tree import ReleaseTree

INPUTS_KEY = ".inputs-key"


@dataclass(frozen=True)
class PublishedRelease:
    label: str
    directory: Path
    tarball: Path
    sha256: str
    rebuilt: bool


def publish(label: str, tree: ReleaseTree, directory: Path, identity: ReleaseIdentity) -> PublishedRelease:
    tarball = directory / identity.tarball_name
    key = json.dumps({"tree": tree.digest(), "identity": identity.__dict__}, sort_keys=True)
    key_file = directory / INPUTS_KEY
    if tarball.exists() and key_file.exists() and key_file.read_text() == key:
        log.info(f"{label}: up to date ({tarball})")
        return PublishedRelease(label, directory, tarball, sha256_file(tarball), rebuilt=False)
    with log.step(f"{label}: writing {tarball}"):
        key_file.unlink(missing_ok=True)
        write_tarball(tree, tarball, identity.source_date_epoch)
        digest = sha256_file(tarball)
        (directory / "checksums.txt").write_text(f"{tree.checksum_override or digest}  {tarball.name}\n")
        installer = directory / "install.sh"
        installer.write_text(tree.installer)
        installer.chmod(0o755)
        key_file.write_text(key)
    return PublishedRelease(label, directory, tarball, digest, rebuilt=True)
