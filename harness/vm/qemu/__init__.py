"""Linux guests under QEMU: the provider, its command line (launch, network and capture), the
accelerator probe, QMP, and warm starts from saved machines (warm, warm_agent, snapshots)."""
