"""How big each VM of a target is: the host's share for the VMs this process runs at once (and
every xdist worker as many), unless --vm-cpus says; recorded among the run's facts."""

from __future__ import annotations

import os

import pytest

from harness.host.sizing import GuestSize, guest_size
from harness.journal import GenericRecord
from harness.plugins.vm import VMEnvironment
from harness.run_options import run_options
from harness.target import Target


def sized_for(request: pytest.FixtureRequest, target: Target, vms_here: int) -> GuestSize:
    """Each VM's size when this process runs ``vms_here`` at once."""
    environment: VMEnvironment = request.getfixturevalue("vm_environment")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    size = guest_size(min(environment.max_vms, workers * vms_here))
    forced = run_options(request.config).vm_cpus
    if forced:
        size = GuestSize(forced, size.memory_mb, f"--vm-cpus {forced}")
    environment.journal.write(GenericRecord(kind="meta", target=target.image,
                                            data={"extra": {f"vm size ({target.name})": size.describe()}}))
    return size
