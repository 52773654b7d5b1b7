"""The critical path of a run: the longest VM chain, beside the wall time, from journal records."""

from __future__ import annotations

from typing import Any

from harness.report.critical_path import critical_paths

T = "linux-debian12"


def phase(name: str, start: float, took: float, target: str = T) -> dict[str, Any]:
    return {"kind": "phase", "phase": name, "started_at": 1000.0 + start, "duration_s": took, "target": target}


def check(stage: str, start: float, took: float) -> dict[str, Any]:
    return {"kind": "check", "check": "c", "stage": stage, "started_at": 1000.0 + start, "duration_s": took, "target": T}


def test_sequential_twin_then_first_vm_is_twice_the_longest_chain() -> None:
    records = [
        phase("twin_boot", 0, 10), phase("twin_copy", 10, 5), phase("twin_install", 15, 60), phase("twin_teardown", 75, 1),
        phase("vm_clone", 76, 1),  # a VM's own sub-step: inside boot, counted once
        phase("boot", 76, 10), phase("copy", 86, 5), phase("install", 91, 60), phase("serve", 151, 8),
        phase("complete", 159, 1), check("client", 160, 4), check("release", 1, 99), phase("teardown", 164, 1),
        phase("total", 76, 89),
    ]
    (path,) = critical_paths(records)
    assert path.chains == {"second VM": 75.0, "first VM": 88.0}, "host checks and teardown are no guest work"
    assert path.chain == "first VM" and path.path_s == 88.0
    assert path.wall_s == 165.0
    assert path.line() == "critical path 88.0 s (first VM; second VM 75.0 s) of the run's 2 min 45 s, 1.88x"


def test_the_wall_time_is_the_runs_one_total_when_the_journal_has_it() -> None:
    records = [{"kind": "run", "data": {"started_at": 990.0}}, phase("boot", 0, 10), phase("install", 10, 50),
               {"kind": "run_end", "data": {"finished_at": 1414.4}}]
    (path,) = critical_paths(records)
    assert round(path.wall_s, 3) == 424.4 and "of the run's 7 min 4 s" in path.line()


def test_overlapped_chains_bring_the_wall_time_to_the_longest_one() -> None:
    records = [
        phase("twin_boot", 0, 10), phase("boot", 0.5, 10), phase("twin_install", 10, 70), phase("install", 10.5, 60),
        phase("serve", 70.5, 8), phase("twin_reinstall", 80, 30), phase("twin_teardown", 110, 1), phase("teardown", 112, 1),
    ]
    (path,) = critical_paths(records)
    assert path.chain == "second VM" and path.path_s == 110.0
    assert round(path.ratio, 3) == round(113.0 / 110.0, 3)


def test_a_server_restarted_inside_a_checks_call_is_counted_once() -> None:
    records = [phase("boot", 0, 10), phase("install", 10, 50), check("client", 60, 30), phase("serve", 70, 10)]
    (path,) = critical_paths(records)
    assert path.chains == {"first VM": 90.0} and path.wall_s == 90.0


def test_targets_are_judged_apart_and_a_target_without_vm_work_has_none() -> None:
    records = [phase("boot", 0, 5, "a"), phase("install", 5, 20, "a"), phase("boot", 0, 7, "b"),
               {"kind": "check", "stage": "release", "duration_s": 3.0, "target": "tarball"}]
    assert [(p.target, p.path_s) for p in critical_paths(records)] == [("a", 25.0), ("b", 7.0)]
