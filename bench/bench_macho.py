"""Mach-O parse time: harness.inspect.macho against macholib and LIEF on the test wheels' binaries.

    .venv/bin/python bench/bench_macho.py [--repeat 3]

Reads every Mach-O member of the macOS wheels that tests/inspect/test_inspect_real_wheels.py
caches (run it once first), parses each from memory the way the release stream hands it over,
and prints the time per pass and whether each library found the same dylibs, rpaths and
signatures. macholib opens only a path, so it gets the bytes through its own ``load`` on a
BytesIO; LIEF is measured only when it is importable (it is no dependency of the project).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import time
import zipfile
from collections.abc import Callable
from typing import Any

from harness.config import HostPaths
from harness.inspect.macho import MachOInfo, is_macho, parse_macho

Summary = list[tuple[tuple[str, ...], tuple[str, ...], bool]]  # per slice: dylibs, rpaths, signed


def _samples() -> list[tuple[str, bytes]]:
    found = []
    for wheel in sorted((HostPaths.from_env().cache / "wheels").glob("*macos*/*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                data = archive.read(name)
                if is_macho(data[:8]):
                    found.append((f"{wheel.name}/{name}", data))
    return found


def _ours(data: bytes) -> Summary:
    info = parse_macho("", data)
    assert isinstance(info, MachOInfo)
    return [(tuple(sorted(s.dylibs + s.weak_dylibs)), s.rpaths, s.signed) for s in info.slices]


def _macholib(data: bytes) -> Summary:
    from macholib import mach_o
    from macholib.MachO import MachO

    parsed: Any = MachO.__new__(MachO)  # its constructor opens a path; load() takes a file object
    parsed.graphident = parsed.filename = parsed.loader_path = ""
    parsed.fat, parsed.headers, parsed.allow_unknown_load_commands = None, [], True
    parsed.load(io.BytesIO(data))
    dylib = {mach_o.LC_LOAD_DYLIB, mach_o.LC_LOAD_WEAK_DYLIB, mach_o.LC_REEXPORT_DYLIB,
             mach_o.LC_LAZY_LOAD_DYLIB, mach_o.LC_LOAD_UPWARD_DYLIB}
    return [(tuple(sorted(raw.rstrip(b"\0").decode() for lc, _c, raw in h.commands if lc.cmd in dylib)),
             tuple(raw.rstrip(b"\0").decode() for lc, _c, raw in h.commands if lc.cmd == mach_o.LC_RPATH),
             any(lc.cmd == mach_o.LC_CODE_SIGNATURE for lc, _c, _r in h.commands)) for h in parsed.headers]


def _lief(data: bytes) -> Summary:
    import lief

    fat = lief.MachO.parse(data)
    id_dylib = lief.MachO.LoadCommand.TYPE.ID_DYLIB
    return [(tuple(sorted(lib.name for lib in b.libraries if lib.command != id_dylib)),
             tuple(r.path for r in b.rpaths), b.has_code_signature) for b in fat]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    samples = _samples()
    if not samples:
        raise SystemExit("no cached macOS wheels: run tests/inspect/test_inspect_real_wheels.py once first")
    parsers: dict[str, tuple[str, Callable[[bytes], Summary]]] = {"harness": ("harness.inspect.macho", _ours)}
    libraries: dict[str, tuple[str, Callable[[bytes], Summary]]] = {
        "macholib": ("macholib.MachO", _macholib), "LIEF": ("lief", _lief)}
    for name, (module, parse) in libraries.items():
        if importlib.util.find_spec(module.split(".")[0]):
            parsers[name] = (module, parse)
    expected = [_ours(data) for _path, data in samples]
    print(f"{len(samples)} Mach-O files, {sum(len(d) for _p, d in samples) / 1e6:.0f} MB")
    for name, (module, parse) in parsers.items():
        started = time.perf_counter()
        importlib.import_module(module)  # harness's own parser is already loaded: 0 ms
        imported = time.perf_counter() - started
        best = float("inf")
        for _ in range(args.repeat):
            started = time.perf_counter()
            got = [parse(data) for _path, data in samples]
            best = min(best, time.perf_counter() - started)
        agree = sum(g == e for g, e in zip(got, expected, strict=True))
        print(f"{name:9} import {imported * 1000:6.0f} ms  parse {best * 1000:7.1f} ms a pass  "
              f"agrees on {agree}/{len(samples)}")


if __name__ == "__main__":
    main()
