"""Write flat installer packages on Linux, for the harness's own tests and benchmarks.

libarchive writes both layers: a cpio payload (gzip, as pkgbuild's default, or left plain) and the
xar container (members stored, as productbuild stores payloads). Nothing here signs or staples.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import libarchive  # type: ignore[import-untyped]  # libarchive-c ships no type information

PLAIN_XAR = "compression=none"


@dataclass(frozen=True)
class PayloadFile:
    data: bytes = b""
    mode: int = 0o644
    kind: str = "file"  # file | dir


@dataclass(frozen=True)
class ComponentSpec:
    name: str  # directory in the product archive, e.g. "tiles-unsigned.pkg"
    identifier: str
    version: str
    payload: dict[str, PayloadFile]  # member name as stored ("./usr/local/bin/tiles") -> file
    scripts: dict[str, PayloadFile] = field(default_factory=dict)  # "postinstall" -> script
    install_location: str = "/"
    relocatable: tuple[str, ...] = ()


def cpio_bytes(files: dict[str, PayloadFile], compress: bool = True) -> bytes:
    out = io.BytesIO()
    with libarchive.custom_writer(out.write, "cpio", filter_name="gzip" if compress else None) as writer:
        for name, f in files.items():
            if f.kind == "dir":
                writer.add_file_from_memory(name, 0, b"", filetype=0o040000, permission=f.mode)
            else:
                writer.add_file_from_memory(name, len(f.data), f.data, permission=f.mode)
    return out.getvalue()


def package_info(spec: ComponentSpec) -> bytes:
    scripts = "".join(f'<{phase} file="./{phase}"/>' for phase in spec.scripts if phase in ("preinstall", "postinstall"))
    relocate = "".join(f'<bundle id="{b}"/>' for b in spec.relocatable)
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<pkg-info format-version="2" identifier="{spec.identifier}" '
            f'version="{spec.version}" install-location="{spec.install_location}" auth="root">'
            f'<payload numberOfFiles="{len(spec.payload)}" installKBytes="0"/>'
            f"<relocate>{relocate}</relocate><scripts>{scripts}</scripts></pkg-info>\n").encode()


def write_pkg(out: Path, components: list[ComponentSpec], distribution: str | None = None) -> Path:
    """A product archive when ``distribution`` is given, else a single component package."""
    with libarchive.file_writer(str(out), "xar", options=PLAIN_XAR) as writer:
        if distribution is not None:
            writer.add_file_from_memory("Distribution", len(distribution.encode()), distribution.encode())
        for spec in components:
            base = f"{spec.name}/" if distribution is not None else ""
            info = package_info(spec)
            writer.add_file_from_memory(f"{base}PackageInfo", len(info), info)
            payload = cpio_bytes(spec.payload)
            writer.add_file_from_memory(f"{base}Payload", len(payload), payload)
            if spec.scripts:
                scripts = cpio_bytes({f"./{k}": v for k, v in spec.scripts.items()})
                writer.add_file_from_memory(f"{base}Scripts", len(scripts), scripts)
    return out
