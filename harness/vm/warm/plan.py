"""How a VM is to start (``warm.json`` in its directory: template, clone or fallback) and how it
did start, for the QEMU and tart providers alike, the journal and the report."""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.errors import InfrastructureError
from harness.host.run_label import VMName
from harness.vm.provider import Provider, StartMode

PLAN_FILE = "warm.json"

Role = Literal["template", "clone", "fallback"]


class WarmStartWarning(UserWarning):
    """A warm start was asked for but the VM booted cold (the warning says why)."""


class WarmRestoreFailed(InfrastructureError):
    """Restoring a clone from its snapshot failed; the caller boots the clone cold instead."""


@dataclass(frozen=True)
class WarmPlan:
    """``warm.json`` in a VM's directory: how this VM starts and how its start went."""

    role: Role
    snapshot: str = ""  # directory of the snapshot a clone restores
    key: str = ""
    reason: str = ""  # why a warm start became a cold one
    host_key: str = ""  # the clone's own SSH host public key, made by the host
    machine_id: str = ""  # the clone's /etc/machine-id
    resumed: bool = False  # the clone really started from the saved machine
    base_disk: str = ""  # the clean image a clone falls back to
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, vm_dir: Path) -> WarmPlan | None:
        try:
            return cls(**json.loads((vm_dir / PLAN_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, vm_dir: Path) -> None:
        partial = vm_dir / f"{PLAN_FILE}.tmp"
        partial.write_text(json.dumps(asdict(self), indent=2) + "\n")
        partial.replace(vm_dir / PLAN_FILE)


def record_fallback(vm_dir: Path, reason: str, warn: bool = True) -> None:
    """A warm start asked for, a cold boot made: say why in the VM's plan (and as a warning)."""
    WarmPlan(role="fallback", reason=reason).save(vm_dir)
    if warn:
        warnings.warn(WarmStartWarning(f"{vm_dir.name}: booting cold: {reason}"), stacklevel=3)


def planned_start_mode(vm_dir: Path, requested: bool) -> StartMode:
    """How the VM in ``vm_dir`` started, from its plan (no plan: a cold boot as asked)."""
    plan = WarmPlan.load(vm_dir)
    if plan is not None and plan.role == "clone" and plan.resumed:
        return StartMode("warm", requested=True, detail=f"saved machine {plan.key}")
    if plan is not None and plan.role == "fallback":
        return StartMode("cold", requested=True, detail=plan.reason)
    return StartMode("cold", requested=requested)


def start_mode(provider: Provider, name: VMName | str) -> StartMode:
    """How ``name`` started; providers without warm starts always boot cold."""
    if not provider.capabilities.warm_start:
        return StartMode("cold", requested=False)
    return provider.start_mode(name)


def start_mode_record_data(mode: StartMode, vm_name: str, image: str) -> dict[str, Any]:
    """``meta`` journal data: the report lists ``extra`` items among the run's facts."""
    extra: dict[str, str] = {f"vm start ({image})": mode.used}
    if mode.requested and mode.used == "cold":
        extra[f"warm start fell back to cold ({vm_name})"] = mode.detail
    return {"vm_start": {"vm": vm_name, **asdict(mode)}, "extra": extra}
