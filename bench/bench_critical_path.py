"""Critical-path benchmark: tarball to verdict of the reference release with the full suite,
arranged as today (one VM at a time, the second VM first) against the overlapped arrangement (the
second VM beside the first), the time to the first static finding with ``--fail-fast``, and a
two-release matrix with ``-n 2`` against the same two releases one after the other; one run.

    .venv/bin/python bench/bench_critical_path.py [--skip-matrix] [--vm-cpus N]

Every figure is a real ``harness run`` process (warm VMs). The wall time is the process's; the
critical path is the run's own (``harness.report.critical_path``, from its journal). Writes
``bench/out/bench_critical_path-<utc>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from harness.journal import read_journal
from harness.report.critical_path import critical_paths

OUT_DIR = Path(__file__).parent / "out"
ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "examples/reference_release/dist"
GOOD = DIST / "refapp-v0.1.0-x86_64-linux.tar.gz"
# A defect only the static checks see (an unsafe member would now be refused before pytest starts).
STATIC_DEFECT = DIST / "variants/duplicate_app_layer/refapp-v0.1.0-x86_64-linux.tar.gz"
SECOND_RELEASE = DIST / "variants/stream_mismatch/refapp-v0.1.0-x86_64-linux.tar.gz"
HARNESS = str(Path(sys.executable).with_name("harness"))
RUN_TIMEOUT_S = 3600
TARGET_RATIO = 1.15
TARGET_FIRST_FINDING_S = 10.0


@dataclass(frozen=True)
class Run:
    label: str
    wall_s: float
    exit_code: int
    critical_s: float
    chain: str
    journal_wall_s: float
    first_finding_s: float | None
    results: str


def harness_run(label: str, work: Path, *args: str) -> Run:
    results = work / label / "results"
    started = time.time()
    done = subprocess.run([HARNESS, "run", "--results-dir", str(results), *args], cwd=work, capture_output=True,
                          text=True, timeout=RUN_TIMEOUT_S, check=False)
    wall = time.time() - started
    (work / f"{label}.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    records = list(read_journal(results))
    paths = critical_paths(records)
    longest = max(paths, key=lambda p: p.path_s, default=None)
    failures = [r for r in records if r.get("kind") == "check" and r.get("outcome") in ("failed", "broken")]
    first = min(float(r["finished_at"]) for r in failures) if failures else None
    return Run(label, round(wall, 2), done.returncode, round(longest.path_s if longest else 0.0, 2),
               longest.chain if longest else "", round(longest.wall_s if longest else 0.0, 2),
               round(first - started, 2) if first else None, str(results))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-matrix", action="store_true", help="leave out the two-release matrix figures")
    parser.add_argument("--vm-cpus", type=int, default=0, help="force each VM's vCPUs (default: sized by the harness)")
    args = parser.parse_args()
    for path in (GOOD, STATIC_DEFECT, SECOND_RELEASE):
        if not path.is_file():
            print(f"missing {path}: python3 examples/reference_release/build.py --all-variants", file=sys.stderr)
            return 2
    extra = ["--", f"--vm-cpus={args.vm_cpus}"] if args.vm_cpus else []
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-critical-") as tmp:
        work = Path(tmp)
        # Warm-up: the image, the warm snapshots of both sizes and the page cache, so that neither
        # arrangement pays a first-time cost the other does not.
        harness_run("warm-up", work, "--release", str(GOOD), "-k", "install_manifest_reproducible", *extra)
        runs.append(harness_run("sequential", work, "--release", str(GOOD), "--", "--max-vms=1", *extra[1:]))
        runs.append(harness_run("overlapped", work, "--release", str(GOOD), *extra))
        runs.append(harness_run("fail-fast-static", work, "--release", str(STATIC_DEFECT), "--fail-fast", *extra))
        if not args.skip_matrix:
            matrix = ["-k", "install_offline or server_starts or stream_matches_nonstream or determinism_temperature0"]
            runs.append(harness_run("matrix-one-after-other-a", work, "--release", str(GOOD), *matrix, *extra))
            runs.append(harness_run("matrix-one-after-other-b", work, "--release", str(SECOND_RELEASE), *matrix, *extra))
            runs.append(harness_run("matrix-n2", work, "--release", str(GOOD), "--release", str(SECOND_RELEASE),
                                    "-n", "2", *matrix, *extra))
        by = {r.label: r for r in runs}
    figures: dict[str, float | None] = {
        "sequential_wall_s": by["sequential"].wall_s,
        "sequential_ratio": _ratio(by["sequential"].journal_wall_s, by["sequential"].critical_s),
        "overlapped_wall_s": by["overlapped"].wall_s,
        "overlapped_ratio": _ratio(by["overlapped"].journal_wall_s, by["overlapped"].critical_s),
        "overlapped_over_sequential": _ratio(by["overlapped"].wall_s, by["sequential"].wall_s),
        "first_static_finding_s": by["fail-fast-static"].first_finding_s,
        "fail_fast_wall_s": by["fail-fast-static"].wall_s,
    }
    if not args.skip_matrix:
        one_after_other = by["matrix-one-after-other-a"].wall_s + by["matrix-one-after-other-b"].wall_s
        figures |= {"matrix_one_after_other_s": round(one_after_other, 2), "matrix_n2_s": by["matrix-n2"].wall_s,
                    "matrix_n2_over_one_after_other": _ratio(by["matrix-n2"].wall_s, one_after_other)}
    out = {"when": datetime.now(UTC).isoformat(), "host": {"machine": platform.machine(), "cores": os.cpu_count(),
           "load_at_end": os.getloadavg()}, "vm_cpus": args.vm_cpus or "auto", "figures": figures,
           "targets": {"overlapped_ratio_max": TARGET_RATIO, "first_static_finding_s_max": TARGET_FIRST_FINDING_S},
           "runs": [asdict(r) for r in runs]}
    OUT_DIR.mkdir(exist_ok=True)
    path = OUT_DIR / f"bench_critical_path-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(f"{'run':<28}{'exit':>6}{'wall s':>10}{'journal wall s':>16}{'critical s':>12}  chain")
    for r in runs:
        print(f"{r.label:<28}{r.exit_code:>6}{r.wall_s:>10.1f}{r.journal_wall_s:>16.1f}{r.critical_s:>12.1f}  {r.chain}")
    for name, value in figures.items():
        print(f"{name:<34}{value}")
    print(path)
    return 0


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


if __name__ == "__main__":
    sys.exit(main())
