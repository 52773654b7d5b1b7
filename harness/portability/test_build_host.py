"""No build machine inside the release: interpreters, path files and installed text name only
the deployment, never the build host's home."""

from __future__ import annotations

import posixpath

import pytest

from harness.checks import buildhost
from harness.checks.shared import expect_none
from harness.install.first import Installed
from harness.suite.deployment import Deployment

pytestmark = [pytest.mark.vm, pytest.mark.portability]


def test_no_build_host_paths(deployment: Deployment, installed: Installed, report) -> None:
    """sys.path of every layer's python, every .pth/sitecustomize.py/pyvenv.cfg and every installed
    text file stay inside the deployment."""
    machine, profile = deployment.machine, deployment.target.profile
    lib = installed.context.get("lib") or installed.roots[-1]
    layers_dir = posixpath.join(lib, profile.layout.layers_dir)
    paths = buildhost.sys_paths(machine, buildhost.interpreters(machine, layers_dir), cwd=lib)
    path_files = buildhost.parse_path_files(machine.run(buildhost.path_files_command(installed.roots),
                                                        timeout=buildhost.SCAN_TIMEOUT_S).stdout)
    named = [p for path, text in path_files.items() for p in buildhost.named_paths(path.rsplit("/", 1)[-1], text)]
    exists = buildhost.check_exist(machine, named)
    mentions = machine.run(buildhost.home_mentions_command(installed.roots), timeout=buildhost.SCAN_TIMEOUT_S).stdout
    report.attach_json({"sys.path": paths, "path files": path_files,
                        "home paths named": mentions.splitlines()[:500]}, "build-host leak evidence")
    problems = (buildhost.path_file_problems(path_files, exists)
                + buildhost.sys_path_problems(paths, installed.roots)
                + buildhost.home_problems(mentions, installed.roots,
                                          list(installed.bound.install.build_residue)))
    expect_none(problems, "the release names paths of the build machine, not of the deployment")
