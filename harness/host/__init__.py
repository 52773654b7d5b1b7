"""Host bookkeeping shared by every run on this machine: VM slots, leases, the reaper of leftovers,
signal handling, and the host tools a step needs."""
