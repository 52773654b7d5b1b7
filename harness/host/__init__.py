"""Host bookkeeping: what this machine's runs share and what outlives none of them (VM slots,
leases, the reaper of leftovers, the run watchdog, signal handling, the host tools a step needs)."""
