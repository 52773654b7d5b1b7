"""How far along the fixture chain a check takes its target, recorded with the check's outcome.

    release -> installed -> server -> client

A check's stage is the deepest link of the chain among its fixtures. ``harness repro`` reads it
back to replay a failed check's target up to the same point: a check on ``installed`` needs the
installer to have run, one on ``client`` a server that answers.
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.journal import STAGE_MARK

__all__ = ["STAGES", "STAGE_MARK", "reaches", "stage_of"]
# Deepest first; deployment and the twin fixtures hold an install, so they count as "installed".
_CHAIN: tuple[tuple[str, str], ...] = (
    ("client", "client"), ("server", "server"), ("installed", "installed"),
    ("deployment", "installed"), ("install_twin", "installed"), ("twin_installed", "installed"),
    ("second_vm", "installed"),
    ("target", "release"),
)
STAGES: tuple[str, ...] = ("release", "installed", "server", "client")


def stage_of(fixturenames: Iterable[str]) -> str:
    """The deepest stage among ``fixturenames``; "" for a test outside the chain."""
    names = set(fixturenames)
    return next((stage for fixture, stage in _CHAIN if fixture in names), "")


def reaches(stage: str, step: str) -> bool:
    """Whether replaying up to ``stage`` includes ``step`` (an unknown stage replays everything)."""
    order = {name: i for i, name in enumerate(STAGES)}
    return order.get(stage, len(STAGES)) >= order[step]
