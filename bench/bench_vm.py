"""VM benchmark: clone-to-SSH-ready time, SFTP put throughput against OpenSSH ``scp`` and command
round-trip latency against the ``ssh`` CLI, all against the same VM in the same run.

    .venv/bin/python bench/bench_vm.py [--image linux-debian12] [--size-mb 200] [--repeats 3]

Baselines are measured next to the harness in the same run, interleaved, so that the ratios hold
even when the host is busy. Writes ``bench/out/bench_vm-<utc>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from harness.config import HostPaths
from harness.errors import HarnessError
from harness.host.slots import SlotPool
from harness.ssh import openssh_options
from harness.vm.machine import Machine, MachineSettings
from harness.vm.registry import provider_for_image

OUT_DIR = Path(__file__).parent / "out"
SCP_RATIO_TARGET = 0.8  # the bar: SFTP put at least 0.8x of scp


@dataclass(frozen=True)
class Figure:
    name: str
    harness: float
    baseline: float | None
    unit: str
    ratio: float | None  # > 1 means the harness is better (faster / higher throughput)
    note: str = ""


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _openssh(vm: Machine, program: str) -> list[str]:
    port_flag = "-P" if program == "scp" else "-p"
    return [program, port_flag, str(vm.endpoint.port), "-o", "BatchMode=yes",
            *openssh_options(vm.endpoint, vm.artifacts / "known_hosts")]


def _check(argv: list[str], timeout: float) -> None:
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"baseline failed: {shlex.join(argv)}\n{done.stderr}")


def bench_put(vm: Machine, size_mb: int, repeats: int, workdir: Path) -> list[Figure]:
    payload = workdir / "payload.bin"
    with payload.open("wb") as fh:
        for _ in range(size_mb):
            fh.write(os.urandom(2**20))
    size = payload.stat().st_size
    target = f"{vm.endpoint.user}@{vm.endpoint.host}"
    sftp_s: list[float] = []
    verified_s: list[float] = []
    scp_s: list[float] = []
    for _ in range(repeats):  # interleaved: both see the same host load
        vm.run("rm -f /tmp/bench-*.bin", timeout=120)
        scp_s.append(_timed(lambda: _check(
            [*_openssh(vm, "scp"), "-q", str(payload), f"{target}:/tmp/bench-scp.bin"], 1800)))
        vm.run("rm -f /tmp/bench-*.bin", timeout=120)
        started = time.perf_counter()
        transfer = vm.put(payload, "/tmp/bench-sftp.bin", timeout=1800)
        verified_s.append(time.perf_counter() - started)
        sftp_s.append(transfer.duration_s)
    vm.run("rm -f /tmp/bench-*.bin", timeout=120)
    mb = size / 1e6
    sftp, scp, verified = mb / _median(sftp_s), mb / _median(scp_s), mb / _median(verified_s)
    return [
        Figure(f"put {size_mb} MiB: SFTP vs scp", sftp, scp, "MB/s", sftp / scp,
               f"medians of {repeats}; target >= {SCP_RATIO_TARGET}x"),
        Figure(f"put {size_mb} MiB incl. sha256 check in the guest", verified, scp, "MB/s",
               verified / scp, "harness put + remote sha256sum vs bare scp"),
    ]


def bench_latency(vm: Machine, count: int) -> list[Figure]:
    target = f"{vm.endpoint.user}@{vm.endpoint.host}"
    ours = [_timed(lambda: vm.run("true", timeout=60)) for _ in range(count)]
    cli = [_timed(lambda: _check([*_openssh(vm, "ssh"), target, "true"], 120))
           for _ in range(count)]
    with tempfile.TemporaryDirectory(prefix="hns-mux-") as mux_dir:
        control = ["-o", "ControlMaster=auto", "-o", f"ControlPath={mux_dir}/%C",
                   "-o", "ControlPersist=60"]
        _check([*_openssh(vm, "ssh"), *control, target, "true"], 120)  # open the master
        muxed = [_timed(lambda: _check([*_openssh(vm, "ssh"), *control, target, "true"], 120))
                 for _ in range(count)]
        subprocess.run([*_openssh(vm, "ssh"), *control, "-O", "exit", target], check=False,
                       capture_output=True, timeout=30)
    ms = 1000.0
    ours_ms, cli_ms, mux_ms = _median(ours) * ms, _median(cli) * ms, _median(muxed) * ms
    return [
        Figure("command round trip vs ssh CLI", ours_ms, cli_ms, "ms", cli_ms / ours_ms,
               f"median of {count}; the CLI opens a connection per command"),
        Figure("command round trip vs ssh ControlMaster", ours_ms, mux_ms, "ms",
               mux_ms / ours_ms, "the CLI reusing one connection, like the harness does"),
    ]


def bench_boot(machine: Machine) -> list[Figure]:
    t = machine.timings
    return [
        Figure("clone to SSH ready", t["boot"], None, "s", None,
               f"clone {t['clone']:.1f} s, start {t['start']:.1f} s, ready {t['ready']:.1f} s, "
               f"connect {t['connect']:.1f} s"),
    ]


def _table(figures: list[Figure]) -> str:
    rows = [("measure", "harness", "baseline", "ratio", "note")]
    for f in figures:
        base = f"{f.baseline:.2f} {f.unit}" if f.baseline is not None else "-"
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "-"
        rows.append((f.name, f"{f.harness:.2f} {f.unit}", base, ratio, f.note))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row))
        for row in rows
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default="linux-debian12")
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--commands", type=int, default=20)
    parser.add_argument("--max-vms", type=int, default=2)
    args = parser.parse_args(argv)

    paths = HostPaths.from_env()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        provider = provider_for_image(args.image, paths)
        settings = MachineSettings(image=args.image, run_id="bench",
                                   artifacts_root=OUT_DIR / f"vms-{stamp}")
        with tempfile.TemporaryDirectory(prefix="hns-bench-") as tmp, Machine(
            provider, settings, slots=SlotPool(paths.slots, args.max_vms)
        ) as vm:
            vm.run("true", timeout=120)  # let the guest settle after boot
            figures = bench_boot(vm)
            figures += bench_put(vm, args.size_mb, args.repeats, Path(tmp))
            figures += bench_latency(vm, args.commands)
            cipher = vm.ssh.cipher
    except HarnessError as exc:
        print(f"bench_vm: {exc}", file=sys.stderr)
        return 1
    result = {
        "bench": "vm",
        "when": stamp,
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                 "load_avg": os.getloadavg()},
        "image": args.image,
        "harness_cipher": cipher,
        "figures": [asdict(f) for f in figures],
    }
    out = OUT_DIR / f"bench_vm-{stamp}.json"
    out.write_text(json.dumps(result, indent=2))
    print(_table(figures))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
