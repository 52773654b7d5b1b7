"""Installing under the conditions users hit, declared by the profile as dimensions of the matrix:
a home with a space in it, root instead of a normal user, a ``C`` or a UTF-8 locale.

Each condition installs the release once more in the same guest, into a home of its own (so it
neither disturbs the main install nor inherits it), then runs the condition's check command (the
installed launcher) with the condition's paths. Paths are shell-quoted where they are filled into
commands: a space in them is the point. :mod:`harness.checks.conditions` judges the runs.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from harness.guest import Guest
from harness.install.facts import GuestFacts
from harness.install.run import InstallerRun, run_step
from harness.profile import ConditionSpec, Profile
from harness.profile.bound import render
from harness.release import Release

STEP_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class ConditionRun:
    spec: ConditionSpec
    home: str
    user: str
    installer: InstallerRun
    check: InstallerRun | None  # None when the install failed or the condition names no check


def as_user(command: str, env: Mapping[str, str], root: bool) -> tuple[str, dict[str, str]]:
    """The command (and environment) as the condition's user runs it."""
    if not root:
        return command, dict(env)
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    return f"sudo -n env {assignments} /bin/sh -c {shlex.quote(command)}", {}


def install_under(guest: Guest, profile: Profile, release: Release, facts: GuestFacts,
                  spec: ConditionSpec) -> ConditionRun:
    base = {"home": facts.home, "user": facts.user}
    home = render(spec.home, base, f"conditions.{spec.name}.home", profile.source)
    user = "root" if spec.as_root else facts.user
    bound = GuestFacts(facts.os, facts.arch, user, home, facts.pythons).bind(profile, release)
    quoted = {k: shlex.quote(v) for k, v in bound.context.items()}
    env = dict(bound.install.env)
    env |= {"HOME": home, **{k: bound.text(v, f"conditions.{spec.name}.env.{k}") for k, v in spec.env.items()}}
    prepare, _ = as_user(f"rm -rf {shlex.quote(home)} && mkdir -p {shlex.quote(home)}", {}, spec.as_root)
    guest.run(prepare, timeout=60, check=True)
    try:
        command, run_env = as_user(render(profile.install.command, quoted, "install.command", profile.source), env,
                                   spec.as_root)
        installer = run_step(guest, command, run_env, profile.install.timeout_s, home)
        check = None
        if installer.ok and spec.check:
            check_command, check_env = as_user(
                render(spec.check, quoted, f"conditions.{spec.name}.check", profile.source), env, spec.as_root)
            check = run_step(guest, check_command, check_env, STEP_TIMEOUT_S, home)
        return ConditionRun(spec, home, user, installer, check)
    finally:
        cleanup, _ = as_user(f"rm -rf {shlex.quote(home)}", {}, spec.as_root)
        guest.run(cleanup, timeout=120)
