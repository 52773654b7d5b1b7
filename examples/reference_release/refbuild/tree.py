"""The release's contents before packing: arcname -> file, plus the installer shipped beside it.

Variants are edits of this value, so the defect of each variant is visible as a small diff.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from .errors import BuildError

EXCLUDED_NAMES = {"__pycache__", ".venv", ".env", ".git", ".DS_Store"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo"}


@dataclass(frozen=True)
class Member:
    data: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class ReleaseTree:
    members: dict[str, Member] = field(default_factory=dict)
    installer: str = ""
    # Names written verbatim (unsafe ones included): the bundler makes no parent directories for them.
    raw_members: dict[str, Member] = field(default_factory=dict)
    checksum_override: str | None = None

    def with_member(self, name: str, member: Member) -> ReleaseTree:
        return replace(self, members={**self.members, name: member})

    def text(self, name: str) -> str:
        if name not in self.members:
            raise BuildError(f"release has no member {name}")
        return self.members[name].data.decode("utf-8")

    def edit_text(self, name: str, old: str, new: str) -> ReleaseTree:
        """Replace exactly one occurrence of `old` in member `name` (fails loudly if it drifted)."""
        return self.with_member(name, Member(_replace_once(self.text(name), old, new, name).encode(),
                                             self.members[name].mode))

    def edit_installer(self, old: str, new: str) -> ReleaseTree:
        return replace(self, installer=_replace_once(self.installer, old, new, "install.sh"))

    def digest(self) -> str:
        h = hashlib.sha256(self.installer.encode())
        for table in (self.members, self.raw_members):
            for name in sorted(table):
                h.update(f"{name}\0{table[name].mode}\0".encode())
                h.update(hashlib.sha256(table[name].data).digest())
        h.update(str(self.checksum_override).encode())
        return h.hexdigest()


def _replace_once(text: str, old: str, new: str, where: str) -> str:
    count = text.count(old)
    if count != 1:
        raise BuildError(f"variant edit of {where}: expected one occurrence of {old!r}, found {count}",
                         "the good release changed; update the variant's edit in refbuild/variants.py")
    return text.replace(old, new)


def add_directory(tree: dict[str, Member], source: Path, prefix: str) -> None:
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if any(part in EXCLUDED_NAMES for part in rel.parts) or path.suffix in EXCLUDED_SUFFIXES:
            continue
        if path.is_file() and path.name != ".complete":
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            tree[str(PurePosixPath(prefix) / rel.as_posix())] = Member(path.read_bytes(), mode)
