"""The harness proves its worth: every deliberately broken variant of the reference release is
caught by the check named for it, and the good release raises no false alarm.

Each case runs the portability suite in a child pytest (``--junitxml``-free: outcomes are read
from the run journal's check records, the contract the reports use too). The good release gets
the whole suite; a variant gets the checks its ``caught_by`` names (a VM is booted only when one
of them needs it), which keeps the table affordable under software emulation.

The variant table itself belongs to the release (``examples/reference_release/variants.toml``);
this file adds what the harness promises on top of it: the actual check behind each name, and a
pattern the failure message must contain, so that "caught" also means "pointing at the cause".
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.journal import read_journal
from harness.suite.reference import build_reference, default_release, release_dir, variant_release

pytestmark = [pytest.mark.vm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SUITE = ["--pyargs", "harness.portability"]  # the suite as installed
VARIANTS_FILE = release_dir(REPO) / "variants.toml"
RUN_TIMEOUT_S = 3600
PARALLEL_START_S = 60.0

# The release's names for checks -> the check names the harness reports, and how to select them.
CHECKS: dict[str, tuple[str, str]] = {
    "install_offline": ("install_offline", "install_offline"),
    "egress_none": ("egress_none", "egress_none"),
    "server_starts": ("server_starts", "server_starts"),
    "determinism_temperature0": ("determinism_temperature0", "determinism_temperature0"),
    "determinism_seed": ("determinism_seed", "determinism_seed"),
    "stream_matches_nonstream": ("stream_matches_nonstream", "stream_matches_nonstream"),
    "no_system_python": ("no_system_python", "no_system_python"),
    "footprint_confined": ("footprint_confined", "footprint_confined"),
    "release_checksum": ("release_checksum", "release_checksum"),
    "static_elf_needed": ("static_area[elf]", "(static_area and elf)"),
    "static_layers_unique": ("static_area[layout]", "(static_area and layout)"),
    "static_archive_safety": ("static_area[archive]", "(static_area and archive)"),
    "reinstall_idempotent": ("reinstall_idempotent", "reinstall_idempotent"),
    "upgrade_clean": ("upgrade_clean", "upgrade_clean"),
    "listening_loopback": ("listening_loopback", "listening_loopback"),
    "tree_hygiene": ("tree_hygiene", "tree_hygiene"),
    "installer_temp_clean": ("installer_temp_clean", "installer_temp_clean"),
    "no_build_host_paths": ("no_build_host_paths", "no_build_host_paths"),
    "native_loads": ("native_loads", "native_loads"),
    "stdlib_extensions": ("stdlib_extensions", "stdlib_extensions"),
    "sampling_concurrent": ("sampling_concurrent", "sampling_concurrent"),
    "install_conditions": ("install_conditions", "install_conditions"),
}
# Checks whose job is to see their defect directly: on their variants, the install and the
# server must still work (install_offline and server_starts pass), or the catch is an accident.
DIRECT = frozenset({"reinstall_idempotent", "upgrade_clean", "listening_loopback", "tree_hygiene",
                    "installer_temp_clean", "no_build_host_paths", "native_loads", "stdlib_extensions",
                    "sampling_concurrent", "install_conditions"})
# The VM row CI runs: a defect the install itself shows (it fails fast, so the row is cheap); the
# rows that need no VM (host-side checks only) run in CI too, every other row on demand (each
# installs the release and starts its server: minutes under emulation).
IN_CI = frozenset({"installer_download"})
HOST_SIDE = frozenset({"static_elf_needed", "static_layers_unique", "static_archive_safety", "release_checksum"})

# What each catching check's message must mention: the cause, not just "something failed".
CAUSES: dict[str, dict[str, str]] = {
    "installer_download": {"install_offline": r"updates\.refapp\.invalid|download|fetch",
                           "egress_none": r"updates\.refapp\.invalid"},
    "foreign_library": {"static_elf_needed": r"libyaml", "server_starts": r"libyaml"},
    "ignores_temperature": {"determinism_temperature0": r"changed between identical requests",
                            "determinism_seed": r"same seed"},
    "duplicate_app_layer": {"static_layers_unique": r"app-server"},
    "system_python_shebang": {"no_system_python": r"python3", "install_offline": r"python3"},
    "unsafe_member": {"static_archive_safety": r"\.\./|\.refapp-escape"},
    "stray_writes": {"footprint_confined": r"\.refapp_history"},
    "stream_mismatch": {"stream_matches_nonstream": r"streamed vs non-streamed"},
    "stale_checksum": {"release_checksum": r"sha256", "install_offline": r"sha256"},
    "reinstall_nests": {"reinstall_idempotent": r"only in the tree after reinstalling: .*/lib/"},
    "upgrade_overlays": {"upgrade_clean": r"server/legacy_prompts\.py"},
    "listens_everywhere": {"listening_loopback": r"0\.0\.0\.0:6969.*pid \d+"},
    "world_writable": {"tree_hygiene": r"modelfiles.*world-writable"},
    "leaves_temp": {"installer_temp_clean": r"/tmp/refapp-unpack\."},
    "build_path_leak": {"no_build_host_paths": r"refapp_dev\.pth names /root/src/refapp"},
    "unloaded_library": {"native_loads": r"_native\.cpython-311-x86_64-linux-gnu\.so needs libyaml-0\.so\.2",
                         "static_elf_needed": r"libyaml"},
    "runtime_without_lzma": {"stdlib_extensions": r"lzma does not work"},
    "shared_rng": {"sampling_concurrent": r"concurrent vs one by one"},
    "unquoted_paths": {"install_conditions": r"space_in_home_utf8.*installer exited"},
}
# Only these checks need the previous release (their runs get --upgrade-from) or the profile's
# install conditions (--condition all): both are opt-in dimensions of a run.
NEEDS_PREVIOUS = frozenset({"upgrade_clean"})
NEEDS_CONDITIONS = frozenset({"install_conditions"})


@dataclass(frozen=True)
class Variant:
    name: str
    defect: str
    caught_by: tuple[str, ...]


def load_variants() -> list[Variant]:
    data = tomllib.loads(VARIANTS_FILE.read_text(encoding="utf-8"))
    return [Variant(v["name"], v["defect"], tuple(v["caught_by"])) for v in data["variant"]]


def previous_release() -> Path:
    found = sorted((release_dir(REPO) / "dist" / "previous").glob("refapp-v*.tar.gz"))
    assert found, "the previous release (dist/previous) was not built: build.py builds it with any variant"
    return found[-1]


def run_suite(release: Path, results: Path, select: str | None = None,
              profile: Path | str | None = None, env: dict[str, str] | None = None,
              upgrade_from: Path | None = None, conditions: bool = False,
              extra: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """Run the suite on ``release``; the check records of its journal, by check name."""
    argv = [sys.executable, "-m", "pytest", *SUITE, "-p", "no:cacheprovider", "-q",
            "--release", str(release), "--results-dir", str(results), *extra]
    if profile is not None:
        argv += ["--profile", str(profile)]
    if upgrade_from is not None:
        argv.append(f"--upgrade-from={upgrade_from}")
    if conditions:
        argv.append("--condition=all")
    if select:
        argv += ["-k", select]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                          check=False, env={**os.environ, **(env or {})})
    (results.parent / f"{results.name}.log").write_text(done.stdout + done.stderr)
    checks = {r["check"]: r for r in read_journal(results) if r.get("kind") == "check"}
    assert checks, f"the suite run recorded no checks (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
    return checks


@pytest.fixture(scope="session")
def built_release() -> Path:
    """The good reference release and every variant, built (or found current) once."""
    build_reference(all_variants=True, root=REPO)
    found = default_release(REPO)
    assert found is not None, "the reference release build left no tarball"
    return found


def test_variant_table_is_covered() -> None:
    """Every variant the release defines has a known catching check and a cause pattern."""
    for variant in load_variants():
        assert variant.name in CAUSES, f"variant {variant.name} is new: add its cause patterns to CAUSES"
        for check in variant.caught_by:
            assert check in CHECKS, f"{variant.name}: caught_by names {check!r}, which is no harness check"
            assert check in CAUSES[variant.name], f"{variant.name}: no cause pattern for {check}"


# Secrets a run's environment may hold; none may reach a report, a log or an attachment. (No
# HARNESS_ORCHARD_URL: that would send the run's bookkeeping to a controller that does not exist.)
PLANTED_SECRETS = ("HARNESS_ORCHARD_TOKEN", "HARNESS_ORCHARD_PASSWORD", "HARNESS_TART_PASSWORD",
                   "TART_REGISTRY_USERNAME", "TART_REGISTRY_PASSWORD")


def secrets_found(results: Path, planted: dict[str, str]) -> list[str]:
    """``file: VARIABLE`` for every planted value found anywhere under ``results`` (bytes, any file)."""
    found = []
    for path in sorted(p for p in results.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{path.relative_to(results)}: {key}" for key, value in planted.items() if value.encode() in data]
    return found


def test_good_release_passes_everything(built_release: Path, tmp_path: Path) -> None:
    """Zero false alarms: on the good release no check fails and none is broken. The run's
    environment carries planted secrets, and no file of its results holds any of them."""
    planted = {key: f"planted-{key.lower()}-{secrets.token_hex(8)}" for key in PLANTED_SECRETS}
    checks = run_suite(built_release, tmp_path / "good", env=planted)
    assert (tmp_path / "good" / "allure-results").is_dir() and (tmp_path / "good" / "signoff.json").is_file()
    run_output = (tmp_path / "good.log").read_text(errors="replace")
    leaked = secrets_found(tmp_path / "good", planted) + [f"the run's output: {key}" for key, value in planted.items()
                                                          if value in run_output]
    assert not leaked, "planted secrets in the run's results:\n" + "\n".join(leaked)
    control = tmp_path / "control"
    control.mkdir()
    (control / "attachment.bin").write_bytes(b"\0token=" + planted["HARNESS_ORCHARD_TOKEN"].encode() + b"\0")
    assert secrets_found(control, planted) == ["attachment.bin: HARNESS_ORCHARD_TOKEN"], "the grep itself is blind"
    bad = {name: f"{r['outcome']}: {r['message'][:400]}" for name, r in checks.items()
           if r["outcome"] in ("failed", "broken")}
    assert not bad, "false alarms on the good release:\n" + "\n".join(f"  {k}: {v}" for k, v in bad.items())
    ran = {name for name, r in checks.items() if r["outcome"] == "passed"}
    for check, _ in CHECKS.values():
        if not check.startswith("static_area") and check not in NEEDS_PREVIOUS | NEEDS_CONDITIONS:
            assert check in ran, f"{check} did not pass on the good release (outcome {checks.get(check, {}).get('outcome')})"
    assert_second_vm_ran_beside_the_first(tmp_path / "good", run_output)


def assert_second_vm_ran_beside_the_first(results: Path, run_output: str) -> None:
    """With two VM slots free, the second VM boots before the first VM's install is over, and the
    run prints its critical path."""
    phases = [r for r in read_journal(results) if r.get("kind") == "phase"]
    starts = {r["phase"]: r["started_at"] for r in phases}
    install_end = max((r["started_at"] + r["duration_s"] for r in phases if r["phase"] == "install"), default=0.0)
    assert "twin_boot" in starts and "install" in starts, f"phases: {sorted(starts)}"
    assert starts["twin_boot"] < install_end, (
        f"the second VM booted {starts['twin_boot'] - install_end:.1f} s after the first VM's install ended")
    assert re.search(r"critical path [0-9][0-9a-z .]* s \(first VM.*\) of the run's ", run_output), \
        "the run printed no critical path"


@pytest.mark.ondemand
def test_good_release_upgrades_and_installs_under_every_condition(built_release: Path, tmp_path: Path) -> None:
    """Zero false alarms for the opt-in dimensions too: the good release over the previous one,
    and under each install condition the reference profile declares."""
    checks = run_suite(built_release, tmp_path / "upgrade", "upgrade_clean or install_conditions",
                       upgrade_from=previous_release(), conditions=True)
    for name in ("upgrade_clean", "install_conditions"):
        record = checks[name]
        assert record["outcome"] == "passed", f"{name} on the good release: {record['outcome']}: {record['message'][:800]}"


def _variant_param(variant: Variant) -> Any:
    on_demand = variant.name not in IN_CI and not set(variant.caught_by) <= HOST_SIDE
    return pytest.param(variant, id=variant.name, marks=[pytest.mark.ondemand] if on_demand else [])


@pytest.mark.parametrize("variant", [_variant_param(v) for v in load_variants()])
def test_variant_is_caught(variant: Variant, built_release: Path, tmp_path: Path) -> None:
    """Each check the table names fails on the variant, with a message naming the cause; a check
    that sees its defect directly does so while the install and the server work."""
    release = variant_release(variant.name, REPO)
    assert release is not None, f"variant {variant.name} was not built"
    unknown = [c for c in variant.caught_by if c not in CHECKS or c not in CAUSES.get(variant.name, {})]
    assert not unknown, f"{variant.name}: caught_by names {unknown}, which CHECKS/CAUSES here do not know"
    direct = [c for c in variant.caught_by if c in DIRECT]
    witnesses = [c for c in ("install_offline", "server_starts") if direct and c not in variant.caught_by]
    select = " or ".join(CHECKS[c][1] for c in [*variant.caught_by, *witnesses])
    previous = previous_release() if NEEDS_PREVIOUS & set(variant.caught_by) else None
    checks = run_suite(release, tmp_path / variant.name, select, upgrade_from=previous,
                       conditions=bool(NEEDS_CONDITIONS & set(variant.caught_by)))
    for name in witnesses:
        outcome = checks.get(name, {}).get("outcome")
        assert outcome == "passed", (f"{variant.name}: {name} was {outcome}, so {', '.join(direct)} would catch "
                                     f"it only by accident: {checks.get(name, {}).get('message', '')[:600]}")
    for name in variant.caught_by:
        check = CHECKS[name][0]
        record = checks.get(check)
        assert record is not None, f"{variant.name}: check {check} did not run; ran: {sorted(checks)}"
        assert record["outcome"] == "failed", (
            f"{variant.name} ({variant.defect}): {check} should fail but was {record['outcome']}: {record['message'][:600]}")
        assert re.search(CAUSES[variant.name][name], record["message"], re.IGNORECASE), (
            f"{variant.name}: {check} failed without naming the cause /{CAUSES[variant.name][name]}/:\n{record['message'][:1500]}")


# The reference release has no uninstaller, so the uninstall check is proven with profiles that
# declare one: a complete removal passes, one that forgets the config dir must be caught.
UNINSTALLS = {
    "complete": ("rm -rf {lib} {bin}/refapp {config}", None),
    "forgets_config": ("rm -rf {lib} {bin}/refapp", r"\.config/refapp"),
}


@pytest.mark.ondemand  # a second VM installs, serves and uninstalls: minutes per case
@pytest.mark.parametrize("case", sorted(UNINSTALLS))
def test_uninstall_check(case: str, built_release: Path, tmp_path: Path) -> None:
    """uninstall_clean passes on a full removal (server run included) and names what is left."""
    command, leftover = UNINSTALLS[case]
    reference = REPO / "harness" / "profiles" / "reference.toml"
    profile = tmp_path / f"reference-{case}.toml"
    profile.write_text(reference.read_text(encoding="utf-8") + f'\n[uninstall]\ncommand = "{command}"\n',
                       encoding="utf-8")
    record = run_suite(built_release, tmp_path / case, "uninstall_clean", profile)["uninstall_clean"]
    if leftover is None:
        assert record["outcome"] == "passed", f"{case}: {record['outcome']}: {record['message'][:800]}"
    else:
        assert record["outcome"] == "failed", f"{case}: expected a failure, got {record['outcome']}"
        assert re.search(leftover, record["message"]), record["message"][:800]


@pytest.mark.ondemand  # bench/bench_critical_path.py runs the same matrix against the releases one by one
def test_matrix_runs_two_targets_at_once(built_release: Path, tmp_path: Path) -> None:
    """`-n 2` over two releases: each target in its own worker, both started together, each with
    its own verdict (the good one passes, the broken one fails). Whether the two VMs are then up
    at the same moment is the host's VM cap's decision (other runs' VMs take slots too)."""
    broken = variant_release("stream_mismatch", REPO)
    assert broken is not None
    results = tmp_path / "matrix"
    argv = [sys.executable, "-m", "pytest", *SUITE, "-p", "no:cacheprovider", "-q", "-n", "2",
            "--release", str(built_release), "--release", str(broken), "--results-dir", str(results),
            "-k", "stream_matches_nonstream or install_offline"]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                          check=False)
    records = list(read_journal(results))
    checks = {(r["target"], r["check"]): r["outcome"] for r in records if r.get("kind") == "check"}
    targets = sorted({t for t, _ in checks})  # "...-linux" sorts before "...-linux@stream_mismatch"
    assert len(targets) == 2, (f"the matrix run should report two targets, it reported {targets or 'none'} "
                               f"(exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    good, bad = targets
    assert checks == {(good, "install_offline"): "passed", (good, "stream_matches_nonstream"): "passed",
                      (bad, "install_offline"): "passed", (bad, "stream_matches_nonstream"): "failed"}, done.stdout[-3000:]
    writers: dict[str, set[str]] = {}
    boots: dict[str, float] = {}
    for path in sorted((results / "journal").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record.get("kind") == "phase" and record.get("target") in (good, bad):
                writers.setdefault(record["target"], set()).add(path.name)
                if record["phase"] == "boot":
                    boots[record["target"]] = record["started_at"]
    assert len(writers.get(good, ())) == 1 and len(writers.get(bad, ())) == 1 and writers[good] != writers[bad], (
        f"each target must run whole in one worker of its own: {writers}")
    assert good in boots and bad in boots, f"a target's boot phase is missing from the journal: {boots}"
    assert abs(boots[good] - boots[bad]) < PARALLEL_START_S, f"the two targets did not start together: {boots}"
