"""What the installed harness plugin costs an unrelated project's pytest session: start-up and
one trivial test, with the plugin and without it (``-p no:portability_harness``), in turn, in the
same run.

    .venv/bin/python bench/bench_plugin_startup.py [--runs N]

Each figure is a whole ``python -m pytest`` process in a temporary project that has nothing to do
with the harness. The two arms alternate (with, without, with, ...) so that a machine whose speed
drifts slows both alike; the figures to quote are the medians of the pairs' differences. The
target: under 0.1 s. It is judged on cpu time (user + system of the pytest process), which a
neighbour's load on a shared machine disturbs far less than the wall time printed beside it. Writes
``bench/out/bench_plugin_startup-<utc>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

OUT_DIR = Path(__file__).parent / "out"
TARGET_DIFFERENCE_S = 0.1
PLUGIN = "portability_harness"
WITH, WITHOUT = "with plugin", "without plugin"
ARMS: dict[str, tuple[str, ...]] = {WITH: (), WITHOUT: ("-p", f"no:{PLUGIN}")}
UNRELATED_TEST = "def test_unrelated():\n    assert sum(range(4)) == 6\n"


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float  # user + system of the pytest process: what the plugin costs, less the neighbours' load


def pytest_once(project: Path, *args: str) -> Timing:
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=project, capture_output=True, text=True, check=False, timeout=300)
    took = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the children this process has waited for
    if done.returncode != 0:
        raise SystemExit(f"pytest failed in {project} ({' '.join(args)}):\n{done.stdout}{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(took, cpu)


def row(name: str, values: list[float]) -> str:
    return f"{name:<28}{min(values):>10.3f}{statistics.median(values):>10.3f}{max(values):>10.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="runs of each arm, after one warm-up each (default 9)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="unrelated-project-") as tmp:
        project = Path(tmp)
        (project / "pytest.ini").write_text("[pytest]\n")
        (project / "test_unrelated.py").write_text(UNRELATED_TEST)
        for extra in ARMS.values():
            pytest_once(project, *extra)  # warm-up: byte-code caches, the page cache
        pairs = [{name: pytest_once(project, *extra) for name, extra in ARMS.items()} for _ in range(args.runs)]
    wall = {name: [pair[name].wall_s for pair in pairs] for name in ARMS}
    cpu = {name: [pair[name].cpu_s for pair in pairs] for name in ARMS}
    extra_wall = [pair[WITH].wall_s - pair[WITHOUT].wall_s for pair in pairs]
    extra_cpu = [pair[WITH].cpu_s - pair[WITHOUT].cpu_s for pair in pairs]
    print(f"pytest start-up + one test in an unrelated project, {args.runs} runs of each arm, alternating")
    print(f"{'seconds':<28}{'min':>10}{'median':>10}{'max':>10}")
    for name in ARMS:
        print(row(f"{name}: wall", wall[name]))
        print(row(f"{name}: cpu", cpu[name]))
    print(row("with - without: wall", extra_wall))
    print(row("with - without: cpu", extra_cpu))
    cost = statistics.median(extra_cpu)
    ratio = statistics.median(cpu[WITH]) / statistics.median(cpu[WITHOUT])
    verdict = "within" if cost < TARGET_DIFFERENCE_S else "OVER"
    print(f"the plugin's cost: {cost:+.3f} s of cpu per session, median of the pairs ({verdict} "
          f"{TARGET_DIFFERENCE_S} s); cpu ratio of the medians {ratio:.3f}")
    OUT_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = OUT_DIR / f"bench_plugin_startup-{stamp}.json"
    out.write_text(json.dumps({"host": platform.node(), "python": platform.python_version(), "runs": args.runs,
                               "wall_s": wall, "cpu_s": cpu, "extra_wall_s": extra_wall, "extra_cpu_s": extra_cpu,
                               "target_difference_s": TARGET_DIFFERENCE_S}, indent=2))
    print(f"written: {out}")
    return 0 if cost < TARGET_DIFFERENCE_S else 1


if __name__ == "__main__":
    sys.exit(main())
