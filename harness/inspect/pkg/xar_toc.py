"""The xar header and table of contents, read by hand for what libarchive does not expose.

libarchive reads the member files; it does not hand out the TOC's ``<signature>`` (the
productsign certificate chain) or say where the heap ends, which tells a truncated file and a
stapled notarization ticket (bytes appended after the heap) apart. The header is 28 bytes
(magic, header size, version, compressed and plain TOC lengths, checksum algorithm); the TOC is
zlib-compressed XML right after it.
"""

from __future__ import annotations

import base64
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import Element

from cryptography import x509
from cryptography.x509.oid import NameOID

from harness.errors import UsageError
from harness.inspect.pkg.facts import parse_xml

XAR_MAGIC = b"xar!"
HEADER = struct.Struct(">4sHHQQI")
MAX_TOC_BYTES = 64 << 20  # a TOC lists names and offsets; more than this is not a package
STAPLE_MAGIC = b"t8lr"  # the trailer stapler appends after a flat package's heap


@dataclass(frozen=True)
class Signature:
    signed: bool
    style: str = ""  # RSA (productsign) or CMS
    chain: tuple[str, ...] = ()  # certificate subjects, leaf first
    stapled: bool = False
    trailing_bytes: int = 0  # bytes after the heap (a stapled ticket lives there)


def _subject(der: bytes) -> str:
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return "(unreadable certificate)"
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


def _heap_end(toc: Element) -> int:
    end = 0
    for parent in toc.iter():
        offset, length = parent.find("offset"), parent.find("length")
        size = parent.find("size") if length is None else length
        if offset is not None and size is not None and (offset.text or "").isdigit() and (size.text or "").isdigit():
            end = max(end, int(offset.text or 0) + int(size.text or 0))
    return end


def read_toc(path: Path) -> tuple[Element, Signature]:
    """The parsed TOC and the package's signature facts; UsageError naming the file when the
    header, the TOC or the heap's length says the file is not a whole xar archive."""
    size = path.stat().st_size
    with path.open("rb") as raw:
        head = raw.read(HEADER.size)
        if len(head) < HEADER.size or not head.startswith(XAR_MAGIC):
            raise UsageError(f"package {path} is not a xar archive (a flat installer package starts with 'xar!')",
                             hint="pass the .pkg productbuild or pkgbuild wrote; a bundle-style .pkg directory is not supported")
        _magic, header_size, _version, toc_packed, toc_plain, _alg = HEADER.unpack(head)
        if toc_packed > MAX_TOC_BYTES or toc_plain > MAX_TOC_BYTES:
            raise UsageError(f"package {path} claims a {toc_plain:,}-byte table of contents: not a package",
                             hint="rebuild the package with productbuild/pkgbuild")
        raw.seek(header_size)
        packed = raw.read(toc_packed)
        try:
            text = zlib.decompress(packed)
        except zlib.error as exc:
            raise UsageError(f"package {path} is truncated or corrupt: its table of contents cannot be read ({exc})",
                             hint="download or build the package again and compare its checksum") from exc
        toc = parse_xml(text, f"the table of contents of {path}")
        heap_start = header_size + toc_packed
        heap_end = heap_start + _heap_end(toc)
        if size < heap_end:
            raise UsageError(f"package {path} is truncated: its members end at byte {heap_end:,} but the file has {size:,}",
                             hint="the download or copy was cut short: fetch or build the package again")
        trailing = size - heap_end
        tail = b""
        if trailing >= len(STAPLE_MAGIC):
            raw.seek(heap_end)
            tail = raw.read(min(trailing, 64))
    sig = toc.find("toc/signature")
    if sig is None:
        sig = toc.find("toc/x-signature")
    chain: tuple[str, ...] = ()
    if sig is not None:
        chain = tuple(_subject(base64.b64decode("".join((c.text or "").split())))
                      for c in sig.iter() if c.tag.endswith("X509Certificate"))
    return toc, Signature(signed=sig is not None, style=sig.get("style", "") if sig is not None else "", chain=chain,
                          stapled=STAPLE_MAGIC in tail, trailing_bytes=trailing)
