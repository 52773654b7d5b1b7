"""Warm-start benchmark: clone-to-SSH-ready of warm and cold VMs, and tarball-to-verdict of the
reference release with the full portability suite, against the same guest work done with plain
OpenSSH, all in one run.

    .venv/bin/python bench/bench_warm.py [--image linux-debian12] [--repeats 3] [--skip-verdict]

Cold and warm boots are interleaved so that both see the same host load. The verdict run is a real
``pytest --pyargs harness.portability`` process (warm VMs); its guests' command logs are then replayed with
``ssh``/``scp`` (one multiplexed connection, as a person scripting it would) on warm VMs of their
own: the harness's overhead is the run's wall time minus that replay. Writes
``bench/out/bench_warm-<utc>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from harness.config import HostPaths
from harness.errors import HarnessError
from harness.host.slots import SlotPool
from harness.journal import read_journal
from harness.ssh.trace import TRACE_ENV
from harness.vm.machine import Machine, MachineSettings
from harness.vm.provider import VMOptions
from harness.vm.registry import provider_for_image
from harness.vm.warm.plan import start_mode

sys.path.insert(0, str(Path(__file__).parent))
from ssh_replay import guest_busy_s, load_traces, replay_run  # bench/ is not a package

OUT_DIR = Path(__file__).parent / "out"
ROOT = Path(__file__).resolve().parents[1]
REFERENCE_TARBALL = ROOT / "examples/reference_release/dist/refapp-v0.1.0-x86_64-linux.tar.gz"
TARGET_WARM_READY_S = 3.0
TARGET_VERDICT_S = 30.0
TARGET_OVERHEAD = 0.05


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    baseline: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""


@dataclass
class Boot:
    mode: str
    seconds: float
    first_command_s: float
    phases: dict[str, float] = field(default_factory=dict)


def boot_once(image: str, warm: bool, paths: HostPaths, slots: SlotPool, artifacts: Path) -> Boot:
    provider = provider_for_image(image, paths)
    settings = MachineSettings(image=image, run_id="benchwarm", artifacts_root=artifacts,
                               options=VMOptions(warm=warm))
    with Machine(provider, settings, slots=slots, say=lambda _text: None) as vm:
        started = time.perf_counter()
        vm.run("true", timeout=120)
        first = time.perf_counter() - started
        mode = start_mode(vm.provider, vm.name).used
        phases = {k: round(v, 3) for k, v in vm.timings.items()}
        boot = phases["clone"] + phases["start"] + phases["ready"] + phases["connect"]
    return Boot(mode=mode, seconds=boot, first_command_s=first, phases=phases)


def bench_boots(image: str, repeats: int, paths: HostPaths, artifacts: Path) -> tuple[list[Figure], dict[str, object]]:
    slots = SlotPool(paths.slots, 2)
    # The first warm clone may build the snapshot (one cold boot, inside its clone phase):
    # measured apart, then excluded.
    prime = boot_once(image, True, paths, slots, artifacts)
    prime_s = prime.phases["clone"]
    if prime.mode != "warm":
        raise SystemExit(f"bench_warm: the warm start fell back to cold: see {artifacts}")
    boots: list[Boot] = []
    for _ in range(repeats):
        for warm in (False, True):  # interleaved: both see the same host load
            boots.append(boot_once(image, warm, paths, slots, artifacts))
    warm_runs = [b for b in boots if b.mode == "warm"]
    cold_runs = [b for b in boots if b.mode == "cold"]
    warm_s = statistics.median(b.seconds for b in warm_runs)
    cold_s = statistics.median(b.seconds for b in cold_runs)
    warm_first = statistics.median(b.first_command_s for b in warm_runs)
    cold_first = statistics.median(b.first_command_s for b in cold_runs)
    figures = [
        Figure("clone to SSH ready, warm", warm_s, "s", cold_s, f"<= {TARGET_WARM_READY_S:g} s",
               warm_s <= TARGET_WARM_READY_S,
               f"median of {len(warm_runs)}; cold median {cold_s:.1f} s = {cold_s / warm_s:.1f}x"),
        Figure("first command after ready, warm", warm_first, "s", cold_first,
               note="the emulated CPU translates sshd/PAM code afresh in a new QEMU"),
        Figure("snapshot build or reuse (first warm clone's clone phase)", prime_s, "s",
               note="a build is one cold boot, once per image, QEMU version and VM shape"),
    ]
    return figures, {"boots": [asdict(b) for b in boots], "prime": asdict(prime), "prime_s": prime_s}


def _phase_sum(results: Path, phase: str) -> float:
    return sum(float(r["duration_s"]) for r in read_journal(results)
               if r.get("kind") == "phase" and r.get("phase") == phase)


def bench_verdict(tarball: Path, paths: HostPaths, workdir: Path) -> tuple[list[Figure], dict[str, object]]:
    results, trace = workdir / "verdict-results", workdir / "trace"
    command = [sys.executable, "-m", "pytest", "--pyargs", "harness.portability", "-q", "-p", "no:cacheprovider",
               "--release", str(tarball), "--results-dir", str(results), "--warm"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False, timeout=3600,
                          env={**os.environ, TRACE_ENV: str(trace)})
    total = time.perf_counter() - started
    (workdir / "verdict.log").write_text(done.stdout + done.stderr)
    waited = _phase_sum(results, "vm_slot_wait")  # other runs' VMs held the host's slots
    boots = _phase_sum(results, "vm_boot")
    traces = load_traces(trace)
    busy = guest_busy_s(traces)
    replay = replay_run(trace, paths, workdir / "replay")
    own = total - waited
    commands = sum(1 for ops in traces for op in ops if op["op"] == "run")
    # Host time not spent waiting on a guest, plus what the harness's transport costs per command
    # over plain ssh (measured interleaved on one VM, so the host's load cancels out).
    transport = commands * (replay.round_trip_harness_s - replay.round_trip_ssh_s)
    overhead = (own - busy - boots + transport) / own
    replayed = (own - replay.seconds / replay.load_drift) / own
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else f"exit {done.returncode}"
    figures = [
        Figure("tarball to verdict, full suite (warm)", total, "s", None, f"<= {TARGET_VERDICT_S:g} s",
               total <= TARGET_VERDICT_S, f"pytest exit {done.returncode}: {tail}; {waited:.1f} s waiting for slots"),
        Figure("guest work in the run (boots + commands, copies, HTTP)", boots + busy, "s",
               note=f"{boots:.1f} s warm boots, {busy:.1f} s traced operations ({commands} commands)"),
        Figure("harness overhead", overhead * 100, "%", None, f"<= {TARGET_OVERHEAD * 100:g} %",
               overhead <= TARGET_OVERHEAD,
               f"(total - slot waits - guest work + {commands} x per-command cost over ssh "
               f"[{replay.round_trip_harness_s * 1000:.0f} vs {replay.round_trip_ssh_s * 1000:.0f} ms]) / total"),
        Figure("same guest work through plain ssh/scp (replayed later)", replay.seconds, "s",
               note=f"{replay.commands} commands {replay.commands_s:.1f} s, {replay.copies} copies "
                    f"{replay.copies_s:.1f} s, HTTP {replay.forwards_s:.1f} s (as traced), {replay.vms} warm "
                    f"boots {replay.boots_s:.1f} s; load drift x{replay.load_drift:.2f}"),
        Figure("harness overhead by replay, drift-corrected", replayed * 100, "%", None,
               f"<= {TARGET_OVERHEAD * 100:g} %", replayed <= TARGET_OVERHEAD,
               "(total - slot waits - replay / drift) / total; noisy on a shared host"),
    ]
    return figures, {"verdict_exit": done.returncode, "verdict_s": total, "slot_waits_s": waited,
                     "boots_s": boots, "guest_busy_s": busy, "replay": asdict(replay)}


def _table(figures: list[Figure]) -> str:
    rows = [("measure", "value", "baseline", "target", "note")]
    for f in figures:
        base = f"{f.baseline:.2f} {f.unit}" if f.baseline is not None else "-"
        target = f"{f.target} {'met' if f.met else 'MISSED'}" if f.target else "-"
        rows.append((f.name, f"{f.value:.2f} {f.unit}", base, target, f.note))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(widths[i]) if i < 4 else c for i, c in enumerate(r)) for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default="linux-debian12")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--release", type=Path, default=REFERENCE_TARBALL)
    parser.add_argument("--skip-verdict", action="store_true", help="only the clone-to-ready figures")
    parser.add_argument("--skip-boots", action="store_true", help="only the tarball-to-verdict figures")
    args = parser.parse_args(argv)

    paths = HostPaths.from_env()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = OUT_DIR / f"warm-{stamp}"
    workdir.mkdir(parents=True, exist_ok=True)
    figures: list[Figure] = []
    raw: dict[str, object] = {}
    load_before = os.getloadavg()
    try:
        if not args.skip_boots:
            found, raw["boots"] = bench_boots(args.image, args.repeats, paths, workdir / "vms")
            figures += found
        if not args.skip_verdict:
            if not args.release.is_file():
                print(f"bench_warm: no release at {args.release}; build it with "
                      "examples/reference_release/build.py", file=sys.stderr)
                return 1
            found, raw["verdict"] = bench_verdict(args.release, paths, workdir)
            figures += found
    except HarnessError as exc:
        print(f"bench_warm: {exc}", file=sys.stderr)
        return 1
    result = {
        "bench": "warm", "when": stamp, "image": args.image,
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                 "load_avg_before": load_before, "load_avg_after": os.getloadavg()},
        "figures": [asdict(f) for f in figures], "raw": raw,
    }
    out = OUT_DIR / f"bench_warm-{stamp}.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    print(_table(figures))
    print(f"\nload average before/after: {load_before[0]:.1f} / {os.getloadavg()[0]:.1f}; written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
