"""A portability test harness: clean VMs, offline installs, deterministic completions."""

__version__ = "0.1.0"
