"""At the developer's desk: a clean VM with the release on it and a shell inside, a failed check
replayed into a kept VM, and commands and copies against kept VMs."""
