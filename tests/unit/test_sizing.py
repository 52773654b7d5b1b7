"""Guests sized from the host's cores and memory and the number of VMs running at once."""

from __future__ import annotations

from harness.host.sizing import guest_size


def test_a_vm_alone_keeps_two_vcpus_and_two_that_share_two_cores_get_one_each() -> None:
    alone, shared = guest_size(1, host_cores=2, host_memory_mb=24_000), guest_size(2, host_cores=2, host_memory_mb=24_000)
    assert (alone.cpus, alone.memory_mb) == (2, 2048)
    assert (shared.cpus, shared.memory_mb) == (1, 2048)
    assert shared.describe() == "1 vCPU, 2048 MB: 2 VMs at once on 2 host cores"


def test_a_host_with_cores_to_spare_gives_each_guest_the_default() -> None:
    assert guest_size(2, host_cores=8, host_memory_mb=32_000).cpus == 2
    assert guest_size(8, host_cores=8, host_memory_mb=32_000).cpus == 1


def test_memory_is_split_when_the_host_is_short_but_not_below_a_floor() -> None:
    assert guest_size(2, host_cores=4, host_memory_mb=4096).memory_mb == 1536
    assert guest_size(4, host_cores=4, host_memory_mb=2048).memory_mb == 1024
