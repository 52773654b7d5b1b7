"""Static inspection time against plain decompression of the same release, in the same run.

    .venv/bin/python bench/bench_inspect.py [--repeat 3] [--release PATH ...]

Baselines, each measured here and now on the same file:
- ``tar -xzf``: unpack the outer tarball to a temp dir (nested layer archives stay packed);
- ``tar -xzf + -xJf``: also unpack every nested layer archive, i.e. decompress every byte that
  inspection reads. Target: inspection <= 1.5x of that full decompression.
Inputs: the reference release (its venvstacks export packed as a Tiles-style tarball while the
reference build does not emit a tarball of its own), and a large tarball made of real PyPI
wheels' contents, both as nested .tar.xz layers and flat. Results: a table and bench/out/*.json.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

from harness.config import HostPaths
from harness.inspect.archive import is_layer_archive
from harness.inspect.runner import inspect_release

ROOT = Path(__file__).resolve().parents[1]
EXPORT = ROOT / "examples/reference_release/build/export"
TARGET_RATIO = 1.5


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 1_700_000_000
    tar.addfile(info, io.BytesIO(data))


def reference_tarball(out: Path) -> Path | None:
    built = sorted((ROOT / "examples/reference_release").glob("**/refapp-v*-linux.tar.gz"))
    if built:
        return built[0]
    if not EXPORT.is_dir():
        return None
    path = out / "reference-from-export.tar.gz"
    if not path.exists():
        with tarfile.open(path, "w:gz") as tar:
            tar.add(EXPORT, arcname="server/stack_export_prod")
            tar.add(ROOT / "examples/reference_release/server", arcname="server",
                    filter=lambda i: None if "__pycache__" in i.name else i)
    return path


def wheels_tarball(out: Path, layered: bool) -> Path | None:
    wheels = sorted((HostPaths.from_env().cache / "wheels").glob("*-linux/*.whl"))
    if not wheels:
        return None
    path = out / f"real-wheels-{'layered' if layered else 'flat'}.tar.gz"
    if path.exists():
        return path
    with tarfile.open(path, "w:gz") as outer:
        for wheel in wheels:
            layer = wheel.name.split("-")[0]
            with zipfile.ZipFile(wheel) as zf:
                files = [(i.filename, zf.read(i), (i.external_attr >> 16) & 0o777 or 0o644)
                         for i in zf.infolist() if not i.is_dir()]
            if not layered:
                for name, data, mode in files:
                    _add(outer, f"{layer}/{name}", data, mode)
                continue
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w:xz", preset=6) as inner:  # type: ignore[call-overload]
                for name, data, mode in files:
                    _add(inner, f"{layer}/lib/python3.11/site-packages/{name}", data, mode)
            _add(outer, f"server/stack_export_prod/{layer}.tar.xz", buffer.getvalue())
    return path


def time_it(fn) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def untar_outer(release: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["tar", "-xzf", str(release), "-C", tmp], check=True)


def untar_all(release: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["tar", "-xzf", str(release), "-C", tmp], check=True)
        for archive in sorted(p for p in Path(tmp).rglob("*") if p.is_file() and is_layer_archive(p.name)):
            subprocess.run(["tar", "-xJf" if archive.name.endswith(".xz") else "-xf", str(archive), "-C",
                            str(archive.parent)], check=True)


def measure(name: str, release: Path, repeat: int) -> dict[str, object]:
    rows: dict[str, list[float]] = {"inspect": [], "tar_outer": [], "tar_all": []}
    report = None
    for _ in range(repeat):
        rows["tar_outer"].append(time_it(lambda: untar_outer(release)))
        rows["tar_all"].append(time_it(lambda: untar_all(release)))
        started = time.perf_counter()
        report = inspect_release(release)
        rows["inspect"].append(time.perf_counter() - started)
    med = {k: statistics.median(v) for k, v in rows.items()}
    assert report is not None
    return {
        "input": name, "release": str(release), "bytes": release.stat().st_size,
        "unpacked_bytes": report.footprint["uncompressed_bytes"], "files": report.stats["files"],
        "layers": len(report.stats["layers"]), "target": report.target, "repeat": repeat,
        "median_s": med, "runs_s": rows,
        "ratio_vs_tar_all": med["inspect"] / med["tar_all"], "ratio_vs_tar_outer": med["inspect"] / med["tar_outer"],
        "errors": len(report.errors()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--release", type=Path, action="append", default=[], help="extra release(s) to measure")
    args = parser.parse_args(argv)
    out = ROOT / "bench/out"
    work = HostPaths.from_env().cache / "bench"
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    inputs = [("reference", reference_tarball(work)), ("real-wheels-layered", wheels_tarball(work, True)),
              ("real-wheels-flat", wheels_tarball(work, False))] + [(p.name, p) for p in args.release]
    results = []
    for name, path in inputs:
        if path is None:
            print(f"skip {name}: input not available (build the reference release / run the wheel tests first)")
            continue
        results.append(measure(name, path, args.repeat))
    header = f"{'input':<22} {'MiB':>7} {'files':>6} {'inspect s':>10} {'tar -xzf s':>11} {'+ -xJf s':>9} {'x full':>7} {'x outer':>8}"
    print(header)
    print("-" * len(header))
    for r in results:
        med = r["median_s"]
        print(f"{r['input']:<22} {r['bytes'] / 2**20:>7.1f} {r['files']:>6} {med['inspect']:>10.2f} "  # type: ignore[index]
              f"{med['tar_outer']:>11.2f} {med['tar_all']:>9.2f} {r['ratio_vs_tar_all']:>7.2f} {r['ratio_vs_tar_outer']:>8.2f}")  # type: ignore[index]
    ok = all(r["ratio_vs_tar_all"] <= TARGET_RATIO for r in results)  # type: ignore[operator]
    print(f"target: inspect <= {TARGET_RATIO}x full decompression: {'met' if ok else 'NOT met'}")
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (out / f"inspect-{stamp}.json").write_text(json.dumps({"target_ratio": TARGET_RATIO, "met": ok, "results": results},
                                                          indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
