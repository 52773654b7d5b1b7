"""Installing on a clean machine with the network cut: it works, it stays where it says, it is
reproducible, and it brings its own Python."""

from __future__ import annotations

import shlex

import pytest

from harness.bounded import last_lines
from harness.errors import InfrastructureError
from harness.guest_tree import manifest_differences, outside
from harness.install import Installed
from harness.install_failure import without_trace
from harness.suite.checks import expect_none
from harness.suite.deployment import Deployment
from harness.suite.interpreters import (
    check_paths_exist,
    foreign_interpreters,
    interpreter_headline,
    not_found_lines,
    runnable,
    scan_shebangs,
)

pytestmark = [pytest.mark.vm, pytest.mark.portability]


def test_install_offline(deployment: Deployment, report) -> None:
    """The installer succeeds offline within its timeout and leaves the product's CLI in place."""
    run = deployment.installed.installer
    report.attach_text(f"$ {run.command}\n{run.output}\n[exit {run.exit_code}, {run.duration_s:.1f} s]",
                       "installer output", target=deployment.name)
    if not run.ok:
        failure = run.failure()
        waited = " (waiting for the network?)" if run.timed_out and not failure.cause else ""
        hint = f"\nhint: {failure.hint}" if failure.hint else ""
        pytest.fail(f"{failure.headline()}{waited}{hint}\nlast output:\n{without_trace_tail(run.output)}",
                    pytrace=False)
    missing = [path for path in deployment.installed.allowed
               if not deployment.machine.run(f"test -e {shlex.quote(path)}", timeout=30).ok]
    assert not missing, f"the installer reported success but left nothing at {', '.join(missing)}"


def without_trace_tail(output: str, lines: int = 12) -> str:
    return last_lines(without_trace(output), lines)


def test_install_writes_confined(installed: Installed, report) -> None:
    """Everything the installer created or changed is under the profile's install.writes."""
    found = installed.changes
    report.attach_text("\n".join(c.describe() for c in found) or "(no changes)", "install file-system changes")
    stray = outside(found, installed.allowed)
    expect_none([c.describe() for c in stray],
                f"the installer wrote outside {', '.join(installed.allowed)}")


def test_install_manifest_reproducible(installed: Installed, twin_installed: Installed, report) -> None:
    """Two clean VMs given the same tarball end up with byte-identical installed trees."""
    twin = twin_installed
    report.attach_text(installed.manifest.text(), "installed manifest (first VM)")
    report.attach_text(twin.manifest.text(), "installed manifest (second VM)")
    assert twin.installer.ok, f"the install failed in the second VM: exit {twin.installer.exit_code}\n{twin.installer.tail()}"
    assert installed.manifest.entries, f"the installed tree {', '.join(installed.roots)} is empty"
    expect_none(manifest_differences(installed.manifest, twin.manifest),
                "the installed trees of two fresh VMs differ (paths, modes or sha256)")


def test_no_system_python(deployment: Deployment, report) -> None:
    """Nothing in the release calls a Python the clean machine does not have."""
    installed = deployment.installed
    if installed.facts.pythons:
        raise InfrastructureError(
            f"the base image is not clean: it has {', '.join(installed.facts.pythons)}",
            hint="rebuild the image (`harness images build`); a clean image has no Python at all",
        )
    problems = not_found_lines(installed.installer.output, "installer output")
    scripts, inert = runnable(scan_shebangs(deployment.machine, installed.roots))
    exists = check_paths_exist(deployment.machine, [s.interpreter for s in scripts])
    problems += foreign_interpreters(scripts, installed.roots, exists)
    report.attach_text("\n".join(f"{s.path}: {s.line}" for s in scripts) or "(no scripts)", "script interpreters")
    if inert:
        report.attach_text("\n".join(f"{s.path}: {s.line}" for s in inert),
                           "shebangs inside Python libraries (not run directly, not judged)")
    expect_none(problems, interpreter_headline(problems))
