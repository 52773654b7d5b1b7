"""The harness's area plugins as one pytest plugin: VMs, the portability suite, static inspection,
reports.

The entry-point plugin (:mod:`harness.plugin`) registers this module in portability runs only.
Another session gets the harness's fixtures (``vm``, ``vm_factory``, ``report``, ...) and hooks
by asking for them, like pytest's ``pytester``: ``-p harness.areas`` on the command line or
``pytest_plugins = ["harness.areas"]`` in its root conftest. The options they read are declared by
the entry-point plugin, from :class:`harness.run_options.RunOptions`.
"""

from __future__ import annotations

AREA_PLUGINS: tuple[str, ...] = (
    "harness.suite.pipeline",
    "harness.vm.fixtures",
    "harness.suite.fixtures",
    "harness.suite.summary",
    "harness.inspect.fixtures",
    "harness.report.plugin",
)
# pytest registers the modules named here when it registers this one, in this order.
pytest_plugins = list(AREA_PLUGINS)
