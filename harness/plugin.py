"""The pytest plugin registered through the ``pytest11`` entry point: loaded by every pytest
session in a venv that has the harness installed, so it costs next to nothing where it is not
asked for.

It declares the run options (one help group, from :mod:`harness.run_options`) and the hooks the
harness adds, and registers the harness's fixtures and hooks (:mod:`harness.plugins`) only in a
session that asks for the harness: one that names the suite or gives ``--release`` or
``--results-dir``. Any other session (a product's unit tests) imports nothing more of the harness,
and its fixture names (``client``, ``server``, ...) stay those of its own plugins.
"""

from __future__ import annotations

import pytest

from harness import hookspecs
from harness.run_options import add_to_pytest, asks_for_the_harness, is_portability_run

PLUGINS_PACKAGE = "harness.plugins"
# The harness's fixtures a check of a release builds on (all of them depend on ``target``): a
# session that is not a portability run and uses one that nothing else defines is told what to pass.
RELEASE_FIXTURES: frozenset[str] = frozenset({
    "target", "deployment", "installed", "server", "client", "second_vm", "install_twin",
    "twin_installed", "upgrade_run",
})


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    # Always: a user's conftest may implement them in any session.
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_to_pytest(parser)


@pytest.hookimpl(tryfirst=True)  # the plugins' configure hooks run as they register: before allure's
def pytest_configure(config: pytest.Config) -> None:
    # Registered here, not in a pyproject: a user's --strict-markers must accept them.
    config.addinivalue_line("markers", "vm: needs a real VM (QEMU); slow under software emulation")
    config.addinivalue_line("markers", "portability: a check of the portability suite")
    if asks_for_the_harness(config):
        # pytest_configure and pytest_addhooks are historic: plugins registered now still get them
        # (and pytest's fixture manager, made after configure, reads their fixtures). xdist
        # workers parse the same command line and decide the same way.
        config.pluginmanager.import_plugin(PLUGINS_PACKAGE)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if is_portability_run(config) or config.pluginmanager.has_plugin(PLUGINS_PACKAGE):
        return  # the matrix plugin says what is missing itself
    for item in items:
        missing = sorted(RELEASE_FIXTURES & _undefined_fixtures(item))
        if missing:
            raise pytest.UsageError(
                f"harness: {item.nodeid} checks a release (it uses the harness's fixture {missing[0]!r}), "
                "but this session names none: pass --release PATH/TO/product.tar.gz (and --profile NAME|FILE)")


def _undefined_fixtures(item: pytest.Item) -> set[str]:
    """Fixture names the item asks for that no plugin or conftest defines."""
    info = getattr(item, "_fixtureinfo", None)  # pytest keeps the resolved closure there
    if info is None:
        return set()
    return set(info.names_closure) - set(info.name2fixturedefs) - {"request"}
