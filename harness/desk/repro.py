"""Recreate a failed check's target from a finished run's journal and replay it up to that check.

    journal -> the check (failed, or named) and its target's inputs
            -> the same inputs proven: tarball and companions by sha256, profile file by sha256,
               image by digest (any change is refused, naming what changed)
            -> a kept VM: boot, route as in the run, copy in, [install], [start the server]
               -> stop there, print how to get in

The replay reuses the suite's own steps (``harness.install``, ``harness.server``), so the VM ends
up where the run's VM was when the check ran: a failed install stays half-finished, a server that
did not start leaves its logs, one that answered wrongly is still running.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.config import HostPaths
from harness.desk.guest_shell import OFFLINE, GuestShell
from harness.desk.session import DeskVMSpec, Say, install_now, make_machine, say_to_stderr, write_rc
from harness.egress import make_attempts_visible
from harness.errors import HarnessError, UsageError
from harness.hashing import sha256_file
from harness.install.facts import probe_guest
from harness.install.upload import UPLOAD_DIR, upload
from harness.journal import read_journal
from harness.profile import load_profile
from harness.server import Server, ServerFailed
from harness.suite.stages import reaches
from harness.target import Target, TargetInputs, TargetSpec, resolve
from harness.vm.machine import Machine
from harness.vm.registry import get_provider

FAILED = ("failed", "broken")
# The replayed installer's output and status, in the guest beside the shell's rc file.
INSTALLER_LOG = "/var/tmp/harness-repro-installer.log"
# Before a journal recorded stages: the report's area says roughly how far a check went.
STAGE_BY_AREA = {"static": "release", "install": "installed", "server": "server", "egress": "server",
                 "determinism": "client", "goldens": "client"}


@dataclass(frozen=True)
class CheckOutcome:
    check: str
    target: str
    outcome: str
    message: str
    stage: str


@dataclass(frozen=True)
class ReproPlan:
    results_dir: Path
    check: CheckOutcome
    inputs: TargetInputs
    release: Path  # a tarball whose sha256 is the run's

    @property
    def stage(self) -> str:
        return self.check.stage


def _checks(records: list[dict[str, Any]]) -> list[CheckOutcome]:
    found = []
    for r in records:
        if r.get("kind") == "check":
            stage = str(r.get("stage") or STAGE_BY_AREA.get(str(r.get("area", "")), ""))
            found.append(CheckOutcome(str(r["check"]), str(r["target"]), str(r["outcome"]),
                                      str(r.get("message", "")), stage))
    return found


def choose_check(checks: list[CheckOutcome], name: str | None, target: str | None) -> CheckOutcome:
    """The named check (on ``target`` when given), else the run's first failed one."""
    pool = [c for c in checks if target is None or c.target == target]
    if name is not None:
        named = [c for c in pool if c.check == name]
        if not named:
            known = sorted({c.check for c in pool})
            raise UsageError(f"the run has no check {name!r}" + (f" on target {target}" if target else ""),
                             hint=f"checks of this run: {', '.join(known) or 'none'}")
        failing = [c for c in named if c.outcome in FAILED]
        if len({c.target for c in named}) > 1 and target is None:
            raise UsageError(f"check {name} ran on several targets: {', '.join(sorted({c.target for c in named}))}",
                             hint="pick one with --target")
        return (failing or named)[0]
    failing = [c for c in pool if c.outcome in FAILED]
    if not failing:
        raise UsageError("no check failed in this run, so there is nothing to reproduce",
                         hint="name a check with --check NAME to replay a target up to it anyway")
    return failing[0]


def plan_repro(results_dir: Path, check: str | None = None, target: str | None = None) -> ReproPlan:
    """Read the run back and prove its inputs are still the same; UsageError naming what is not."""
    records = list(read_journal(results_dir))
    if not records:
        raise UsageError(f"{results_dir} holds no run journal (journal/*.jsonl)",
                         hint="pass the results directory of a finished `harness run` (default ./results)")
    chosen = choose_check(_checks(records), check, target)
    inputs_by_target = {str(r["target"]): r["data"] for r in records if r.get("kind") == "target"}
    if chosen.target not in inputs_by_target:
        raise UsageError(f"the journal has no inputs recorded for target {chosen.target}",
                         hint="the run predates `harness repro`, or its target never resolved; run the suite again")
    inputs = TargetInputs.from_record(inputs_by_target[chosen.target])
    release = verify_release(inputs)
    verify_profile(inputs)
    return ReproPlan(results_dir, chosen, inputs, release)


def verify_release(inputs: TargetInputs) -> Path:
    """The run's pinned tarball, or the original, whichever still has the run's sha256 (the
    installer and checksums beside it must be the run's too)."""
    seen: list[str] = []
    for candidate in dict.fromkeys([Path(inputs.release_path), Path(inputs.release_origin)]):
        if not candidate.is_file():
            seen.append(f"{candidate}: missing")
            continue
        digest = sha256_file(candidate)
        if digest != inputs.release_sha256:
            seen.append(f"{candidate}: sha256 {digest}")
            continue
        changed = [name for name, sha in inputs.companions.items()
                   if not (candidate.parent / name).is_file() or sha256_file(candidate.parent / name) != sha]
        if changed:
            seen.append(f"{candidate}: same tarball, but {', '.join(changed)} beside it changed")
            continue
        return candidate
    raise UsageError(
        f"the release this run tested (sha256 {inputs.release_sha256}) is no longer there; refusing to "
        "reproduce with different bytes:\n  " + "\n  ".join(seen),
        hint="put the tested tarball back (rebuilds replace it), or run the suite on the new one first",
    )


def verify_profile(inputs: TargetInputs) -> None:
    source = Path(inputs.profile_source)
    if not inputs.profile_sha256:
        return
    now = sha256_file(source) if source.is_file() else "missing"
    if now != inputs.profile_sha256:
        raise UsageError(f"the profile {source} changed since the run (sha256 {inputs.profile_sha256}, now {now})",
                         hint="restore the profile the run used, or run the suite again with the new one")


def verify_image(inputs: TargetInputs, paths: HostPaths, say: Say) -> None:
    provider = get_provider(inputs.provider, paths)
    now = provider.image_digest(inputs.image) if inputs.image_digest else None
    if now is None:
        say(f"harness repro: provider {inputs.provider} gives no image digest; {inputs.image} is used as it is now")
        return
    if now != inputs.image_digest:
        raise UsageError(
            f"image {inputs.image} is not the one the run used: the run booted digest {inputs.image_digest}, "
            f"a clone now boots {now}",
            hint="the image was rebuilt since (its recipe changed); check out the harness revision of the run, "
            "or run the suite again on the new image",
        )


def target_of(plan: ReproPlan) -> Target:
    profile = load_profile(plan.inputs.profile_source)
    spec = TargetSpec(plan.release, plan.inputs.image, plan.inputs.target)
    found = resolve(spec, profile)
    return replace(found, release=replace(found.release, origin=Path(plan.inputs.release_origin)))


@dataclass(frozen=True)
class ReproResult:
    vm: str
    reached: str  # what state the VM was left in, for the user


def replay(plan: ReproPlan, paths: HostPaths, say: Say = say_to_stderr) -> ReproResult:
    """Make the kept VM and walk the target's steps up to the check's stage."""
    verify_image(plan.inputs, paths, say)
    target = target_of(plan)
    provider = get_provider(plan.inputs.provider, paths)
    spec = DeskVMSpec(image=plan.inputs.image, run_id="repro", keep=True, warm=plan.inputs.warm,
                      cpus=plan.inputs.cpus, memory_mb=plan.inputs.memory_mb)
    machine = make_machine(spec, provider, paths, say)
    with machine:
        reached = _walk(machine, target, plan.stage, say)
        write_rc(machine, GuestShell(network=OFFLINE, release_path=f"{UPLOAD_DIR}/{target.release.filename}",
                                     vm_name=str(machine.name)))
    return ReproResult(str(machine.name), reached)


def _walk(machine: Machine, target: Target, stage: str, say: Say) -> str:
    say(f"harness repro: {make_attempts_visible(machine)} (as in the run)")
    facts = probe_guest(machine)
    upload(machine, target.release, target.profile)
    say(f"harness repro: {target.release.filename} copied in, sha256 {target.release.sha256} verified")
    if not reaches(stage, "installed"):
        return f"the release is in {UPLOAD_DIR}, not installed (the check ran before the install)"
    installer = install_now(machine, target, facts, say)
    machine.write_text(INSTALLER_LOG, f"$ {installer.command}\n{installer.output}\n"
                       f"[{'timed out' if installer.timed_out else f'exit {installer.exit_code}'} after "
                       f"{installer.duration_s:.1f} s]\n")
    if not installer.ok:
        state = "timed out" if installer.timed_out else f"exited with {installer.exit_code}"
        return (f"stopped right after the installer {state}; the file system is as it left it, its output "
                f"is in {INSTALLER_LOG}, and the release and installer are in {UPLOAD_DIR} to run again")
    if not reaches(stage, "server"):
        return "installed; the server was not started"
    # Left running for the developer: not closed, so its logs stay in the guest.
    server = Server(machine, facts.bind(target.profile, target.release), machine.artifacts / "server-logs")
    try:
        ready = server.start()
    except ServerFailed as exc:
        return f"installed; the server did not start ({exc.message}); its logs are in the guest"
    except HarnessError as exc:
        return f"installed; starting the server failed ({exc.message})"
    return f"installed and the server is running (ready in {ready:.1f} s), as when the check talked to it"
