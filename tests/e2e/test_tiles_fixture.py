"""The tiles profile against the Tiles-shaped fixture release (examples/tiles_release, a stand-in
for a real Tiles tarball): its good forms pass every check for both server API generations, and
its broken forms are caught by the check named for them, with the cause in the first line.

CI runs the venvstacks-wrapper post-install defect (one VM, install only); the good forms and
the missing-vendor form run on demand (HARNESS_ONDEMAND=1), each a full suite under emulation.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_variants import run_suite

pytestmark = [pytest.mark.vm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "examples" / "tiles_release"
GOLDENS = FIXTURE / "goldens"
TARBALLS = {
    "current": "current/tiles-v0.4.20-canary.1-x86_64-linux.tar.gz",
    "sse-era": "sse-era/tiles-v0.4.3-x86_64-linux.tar.gz",
    "wrapper_postinstall": "variants/wrapper_postinstall/tiles-v0.4.20-canary.1-x86_64-linux.tar.gz",
    "missing_vendor": "variants/missing_vendor/tiles-v0.4.20-canary.1-x86_64-linux.tar.gz",
}
# Skips that are facts about the product or the guest, not gaps in the profile.
PRODUCT_SKIPS = {
    "determinism_seed": r"takes no seed",  # Tiles has no seed parameter
    "sampling_concurrent": r"takes no seed",
    "stream_matches_nonstream": r"offers only streaming",  # the 0.4.x-era server streams only
}
# Checks a run option turns on. The current form runs them (an upgrade from the 0.4.x-era form,
# every install condition of the profile); the 0.4.x-era form has nothing older to upgrade from.
OPT_IN = {"upgrade_clean": r"no --upgrade-from", "install_conditions": r"no --condition given"}
MACOS_ONLY = re.compile(r"macOS-only check")


@pytest.fixture(scope="session")
def fixture_dist() -> Path:
    # build.py returns at once when its stamp says the outputs are current, and rebuilds stale ones.
    dist = FIXTURE / "dist"
    subprocess.run([sys.executable, str(FIXTURE / "build.py"), "--out", str(dist)], check=True, timeout=1800)
    return dist


def test_wrapper_postinstall_defect_names_the_command_and_the_cause(fixture_dist: Path, tmp_path: Path) -> None:
    """Tiles' post-install order (a layer's own bin/python before its pyvenv.cfg exists) fails in
    a clean VM, and install_offline's first line says which command and why."""
    checks = run_suite(fixture_dist / TARBALLS["wrapper_postinstall"], tmp_path / "wrapper",
                       "install_offline", "tiles")
    record = checks["install_offline"]
    assert record["outcome"] == "failed", f"{record['outcome']}: {record['message'][:800]}"
    first = record["message"].splitlines()[0]
    assert re.search(r"the installer exited with 1 in `app-server/bin/python app-server/postinstall\.py", first), first
    assert "No module named 'encodings'" in record["message"] or "init_fs_encoding" in first, record["message"][:1500]
    assert "could not find its standard library" in first, first
    assert "runtime's python" in record["message"], record["message"][:1500]


@pytest.mark.ondemand
@pytest.mark.parametrize("generation", ["current", "sse-era"])
def test_good_form_passes_every_check(generation: str, fixture_dist: Path, tmp_path: Path) -> None:
    """Every check runs and passes; a skip is allowed only for a product fact (no seed, stream-only
    API) or a macOS-only check on a Linux guest, never for something the profile lacks."""
    current = generation == "current"
    checks = run_suite(fixture_dist / TARBALLS[generation], tmp_path / generation, None, "tiles",
                       upgrade_from=fixture_dist / TARBALLS["sse-era"] if current else None, conditions=current,
                       extra=("--goldens-dir", str(GOLDENS)))
    bad = {n: f"{r['outcome']}: {r['message'][:400]}" for n, r in checks.items() if r["outcome"] in ("failed", "broken")}
    assert not bad, f"{generation}: false alarms:\n" + "\n".join(f"  {k}: {v}" for k, v in bad.items())
    for name, record in checks.items():
        if record["outcome"] == "skipped":
            reason = record["message"]
            allowed = MACOS_ONLY.search(reason) or (name in PRODUCT_SKIPS and re.search(PRODUCT_SKIPS[name], reason)) \
                or (generation != "current" and name in OPT_IN and re.search(OPT_IN[name], reason))
            assert allowed, f"{generation}: {name} was skipped: {reason}"
    for name in ("install_offline", "uninstall_clean", "goldens_match", "determinism_temperature0", "egress_none"):
        assert checks.get(name, {}).get("outcome") == "passed", f"{generation}: {name}: {checks.get(name)}"
    if generation == "current":
        for name in ("stream_matches_nonstream", "upgrade_clean", "install_conditions"):
            assert checks[name]["outcome"] == "passed", f"{name}: {checks[name]}"


@pytest.mark.ondemand
def test_missing_vendor_is_caught_before_and_during_install(fixture_dist: Path, tmp_path: Path) -> None:
    checks = run_suite(fixture_dist / TARBALLS["missing_vendor"], tmp_path / "vendor",
                       "install_offline or (static_area and layout)", "tiles")
    install, layout = checks["install_offline"], checks["static_area[layout]"]
    assert install["outcome"] == "failed" and "vendor/ is missing or empty" in install["message"].splitlines()[0]
    assert layout["outcome"] == "failed" and "vendor/*" in layout["message"], layout["message"][:800]
