"""THE TART STAND-IN: a Linux program that speaks tart's command line, backed by QEMU guests.

tart runs only on Apple Silicon Macs, so on Linux hosts (this project's CI) the tart provider is
exercised against this stand-in instead. It is NOT tart and boots NO macOS: each "tart VM" is a
Linux guest from :mod:`harness.vm.qemu.provider`. What it reproduces is tart's documented *behaviour* as
recorded in ``tart-contract.md`` (shared docs), including the awkward parts a wrapper must handle:

- ``clone`` silently overwrites an existing VM, keeps the source's MAC address;
- ``ip`` answers from a lease table keyed by MAC, so an un-randomised clone gets a stale address;
- ``run`` stays in the foreground until SIGINT; Apple's 2-VM limit fails it with Apple's text;
- Softnet's ``--net-softnet-block=0.0.0.0/0`` cuts the host off unless the gateway is allowed
  back (``@host`` only from Softnet 0.19);
- ``stop`` of a stopped VM exits 2, ``delete`` of a running VM exits 1;
- ``list``/``get --format json`` with tart's field names; ``$TART_HOME/vms/<name>/`` layout.

Where it must differ from tart, it says so in the module concerned: each VM
gets its own loopback address (127.77.x.y) and its SSH answers on ``TART_STANDIN_SSH_PORT``
(default 2222) instead of port 22, because port 22 on loopback belongs to the host.

Entry points: ``python -m harness.testing.tart_standin ...`` and the ``tart`` shim written by
:func:`harness.testing.tart_standin.shim.write_shim` (``python -m harness.testing.tart_standin shim DIR``).
"""

STANDIN_BANNER = "tart stand-in (Linux, QEMU-backed; not tart)"
