"""What the installed harness plugin costs an unrelated project's pytest session: start-up and
one trivial test, with the plugin and without it (``-p no:portability_harness``), in turn, in the
same run.

    .venv/bin/python bench/bench_plugin_startup.py [--runs N]

Each figure is a whole ``python -m pytest`` process in a temporary project that has nothing to do
with the harness. The two arms alternate (with, without, with, ...) so that a machine whose speed
drifts slows both alike; the figures to quote are the medians, their difference and their ratio.
The target: the difference of the medians under 0.1 s. Writes
``bench/out/bench_plugin_startup-<utc>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

OUT_DIR = Path(__file__).parent / "out"
TARGET_DIFFERENCE_S = 0.1
PLUGIN = "portability_harness"
UNRELATED_TEST = "def test_unrelated():\n    assert sum(range(4)) == 6\n"


def pytest_once(project: Path, *args: str) -> float:
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=project, capture_output=True, text=True, check=False, timeout=300)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"pytest failed in {project} ({' '.join(args)}):\n{done.stdout}{done.stderr}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="runs of each arm, after one warm-up each (default 9)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="unrelated-project-") as tmp:
        project = Path(tmp)
        (project / "pytest.ini").write_text("[pytest]\n")
        (project / "test_unrelated.py").write_text(UNRELATED_TEST)
        arms = {"with plugin": (), "without plugin": ("-p", f"no:{PLUGIN}")}
        for extra in arms.values():
            pytest_once(project, *extra)  # warm-up: byte-code caches, the page cache
        times: dict[str, list[float]] = {name: [] for name in arms}
        for _ in range(args.runs):
            for name, extra in arms.items():
                times[name].append(pytest_once(project, *extra))
    medians = {name: statistics.median(values) for name, values in times.items()}
    difference = medians["with plugin"] - medians["without plugin"]
    ratio = medians["with plugin"] / medians["without plugin"]
    print(f"pytest start-up + one test in an unrelated project, {args.runs} runs each, alternating")
    print(f"{'arm':<16}{'min s':>10}{'median s':>10}{'max s':>10}")
    for name, values in times.items():
        print(f"{name:<16}{min(values):>10.3f}{medians[name]:>10.3f}{max(values):>10.3f}")
    verdict = "within" if difference < TARGET_DIFFERENCE_S else "OVER"
    print(f"difference of medians {difference:+.3f} s ({verdict} {TARGET_DIFFERENCE_S} s); ratio {ratio:.3f}")
    OUT_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = OUT_DIR / f"bench_plugin_startup-{stamp}.json"
    out.write_text(json.dumps({"host": platform.node(), "python": platform.python_version(), "runs": args.runs,
                               "seconds": times, "medians": medians, "difference_s": difference,
                               "ratio": ratio, "target_difference_s": TARGET_DIFFERENCE_S}, indent=2))
    print(f"written: {out}")
    return 0 if difference < TARGET_DIFFERENCE_S else 1


if __name__ == "__main__":
    sys.exit(main())
