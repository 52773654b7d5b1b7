"""What failed so far in this process, in one place: the checks by node id and the targets they
check. A VM torn down after a failure is kept when --keep-vm asks for it; a target with a failed
check keeps its evidence."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

import pytest

from harness.plugins.matrix import spec_of


@dataclass
class Failures:
    """This process's failures so far (filled as reports are made, read at teardown)."""

    nodeids: set[str] = field(default_factory=set)
    targets: set[str] = field(default_factory=set)

    def item_failed(self, item: pytest.Item) -> bool:
        return item.nodeid in self.nodeids

    def target_failed(self, name: str) -> bool:
        return name in self.targets


_FAILURES = pytest.StashKey[Failures]()


def failures(config: pytest.Config) -> Failures:
    return config.stash.setdefault(_FAILURES, Failures())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        found = failures(item.config)
        found.nodeids.add(item.nodeid)
        spec = spec_of(item)
        if spec is not None:
            found.targets.add(spec.name)
    return report
