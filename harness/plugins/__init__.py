"""The harness's pytest plugins, one flat module per job, registered together: VMs, the
portability suite (its inputs, the target matrix, the fixture chain, the second VM), static
inspection, reports.

The entry-point plugin (:mod:`harness.plugin`) registers this package in portability runs only.
Another session gets the harness's fixtures (``vm``, ``vm_factory``, ``report``, ...) and hooks
by asking for them, like pytest's ``pytester``: ``-p harness.plugins`` on the command line or
``pytest_plugins = ["harness.plugins"]`` in its root conftest. The options they read are declared
by the entry-point plugin, from :class:`harness.run_options.RunOptions`.

This package is the top of the harness's layers below the commands: a plugin may import any other
layer, and nothing but the commands (and the suite's own check modules) imports a plugin.
"""

from __future__ import annotations

PLUGINS: tuple[str, ...] = (
    "harness.plugins.pipeline",
    "harness.plugins.vm",
    "harness.plugins.failures",
    "harness.plugins.inputs",
    "harness.plugins.matrix",
    "harness.plugins.chain",
    "harness.plugins.twin",
    "harness.plugins.summary",
    "harness.plugins.inspect",
    "harness.plugins.report",
)
# pytest registers the modules named here when it registers this one, in this order.
pytest_plugins = list(PLUGINS)
