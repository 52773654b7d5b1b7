"""Everything native in the release loads on the clean machine, not only what start-up imports."""

from __future__ import annotations

import posixpath
import shlex

import pytest

from harness.checks import native
from harness.checks.shared import expect_none
from harness.errors import InfrastructureError
from harness.install.first import Installed
from harness.suite.deployment import Deployment

pytestmark = [pytest.mark.vm, pytest.mark.portability]


def test_native_loads(deployment: Deployment, installed: Installed, report) -> None:
    """The guest's dynamic loader resolves every ELF file of the installed tree."""
    if installed.facts.os != "linux":
        pytest.skip("ELF loading is judged on Linux guests (Mach-O load paths are a static check)")
    output = deployment.machine.run(native.loader_command(installed.roots), timeout=native.SCAN_TIMEOUT_S).stdout
    files, missing, has_loader = native.parse_loader_output(output)
    if not has_loader:
        raise InfrastructureError(f"the guest has none of the dynamic loaders {', '.join(native.LOADERS)}",
                                  hint="a glibc guest always has one; check the base image")
    report.attach_text(output, "dynamic loader resolution per ELF file")
    assert files, f"no ELF file found under {', '.join(installed.roots)}: nothing native was installed?"
    expect_none([m.describe() for m in missing], f"libraries missing for the {len(files)} ELF files installed")


def test_stdlib_extensions(deployment: Deployment, installed: Installed, report) -> None:
    """The shipped runtime's standard-library extensions (ssl, sqlite3, ctypes, lzma, bz2, zlib,
    hashlib's algorithms, uuid, ...) import and work."""
    profile = deployment.target.profile
    lib = installed.context.get("lib") or installed.roots[-1]
    runtime = posixpath.join(lib, profile.layout.layers_dir, profile.layout.runtime_layer)
    if not profile.layout.runtime_layer:
        pytest.skip("the profile names no runtime_layer: no shipped Python to probe")
    where = shlex.quote(runtime)
    python = deployment.machine.run(f"for p in {where}/bin/python3 {where}/bin/python; do [ -x \"$p\" ] && "
                                    "{ echo \"$p\"; break; }; done; true", timeout=30).stdout.strip()
    assert python, f"the runtime layer {runtime} has no bin/python3"
    result = deployment.machine.run(native.stdlib_command(python), timeout=120)
    report.attach_text(result.stdout + result.stderr, "standard-library extension probes")
    expect_none(native.stdlib_problems(python, result.stdout + result.stderr, result.exit_code),
                "standard-library extensions of the shipped runtime do not work")
