"""Static inspection of a large installer package against listing its payload with bsdtar.

    .venv/bin/python bench/bench_pkg.py [--gib 2] [--runs 3] [--dir /tmp]

Writes a product archive of about --gib GiB (incompressible files in a gzip cpio payload, as
pkgbuild writes by default; every layer streamed to disk, never held in memory), extracts its
Payload member once, then times `harness inspect PKG` and `bsdtar -tvf Payload` alternately,
--runs times each, with each child's peak memory (/usr/bin/time). Prints the ratio of the medians
against the targets (within 1.2x, under 200 MB) and removes everything it wrote.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import libarchive  # type: ignore[import-untyped]  # libarchive-c ships no type information

from harness.testing.pkg_writer import PLAIN_XAR, ComponentSpec, package_info

FILE_BYTES = 64 << 20
TIME_FORMAT = "%e %M"  # wall seconds, peak resident KiB


def write_payload_files(root: Path, total: int) -> None:
    bin_dir = root / "usr" / "local" / "share" / "tiles" / "blobs"
    bin_dir.mkdir(parents=True)
    for index in range(max(1, total // FILE_BYTES)):
        with (bin_dir / f"blob-{index:03d}.bin").open("wb") as handle:
            for _ in range(FILE_BYTES // (1 << 20)):
                handle.write(os.urandom(1 << 20))


def write_package(work: Path, total: int) -> Path:
    root = work / "root"
    write_payload_files(root, total)
    payload = work / "Payload"
    cwd = Path.cwd()
    os.chdir(root)  # members stored as ./usr/..., as pkgbuild stores them
    try:
        with libarchive.file_writer(str(payload), "cpio", filter_name="gzip", options="compression-level=1") as writer:
            writer.add_files(".")
    finally:
        os.chdir(cwd)
    subprocess.run(["rm", "-rf", str(root)], check=True)
    info = package_info(ComponentSpec("", "com.example.big", "1.0", {}))
    pkg = work / "big.pkg"
    os.chdir(work)
    try:
        with libarchive.file_writer(str(pkg), "xar", options=PLAIN_XAR) as writer:
            writer.add_file_from_memory("PackageInfo", len(info), info)
            writer.add_files("Payload")
    finally:
        os.chdir(cwd)
    return pkg


def timed(command: list[str]) -> tuple[float, int]:
    """(wall seconds, peak resident MiB) of one child run."""
    done = subprocess.run(["/usr/bin/time", "-f", TIME_FORMAT, *command], check=False, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        sys.exit(f"bench_pkg: {command[0]} failed ({done.returncode}): {done.stderr[-500:]}")
    seconds, kib = done.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kib) // 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_pkg.py", description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-pkg-") as tmp:
        work = Path(tmp)
        started = time.monotonic()
        pkg = write_package(work, int(args.gib * (1 << 30)))
        print(f"package {pkg.stat().st_size / (1 << 30):.2f} GiB written in {time.monotonic() - started:.0f} s")
        harness = [sys.executable, "-m", "harness.cli", "inspect", str(pkg)]
        bsdtar = ["bsdtar", "-tvf", str(work / "Payload")]  # the payload the package holds, listed
        results: dict[str, list[tuple[float, int]]] = {"harness inspect": [], "bsdtar -tvf Payload": []}
        for _ in range(args.runs):
            results["harness inspect"].append(timed(harness))
            results["bsdtar -tvf Payload"].append(timed(bsdtar))
        for name, runs in results.items():
            print(f"{name:22} " + "  ".join(f"{s:.1f} s/{m} MiB" for s, m in runs))
        ours = statistics.median(s for s, _ in results["harness inspect"])
        base = statistics.median(s for s, _ in results["bsdtar -tvf Payload"])
        peak = max(m for _, m in results["harness inspect"])
        print(f"ratio {ours / base:.2f}x (target <= 1.2x); harness peak {peak} MiB (target < 200 MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
