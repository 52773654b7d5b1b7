"""Warm starts for tart (macOS guests): clones of a suspended template resume instead of booting.

NOT RUN ON APPLE HARDWARE: this host has no Mac. It follows tart's sources (``Run.swift``,
``Suspend.swift``, ``VMDirectory.swift``, ``Clone.swift``) and is exercised through the tart
stand-in (``harness.testing.tart_standin``), which mirrors those rules:
- ``tart run --suspendable`` leaves out the devices that cannot be saved (audio, entropy);
  only macOS VMs can be suspended, and not with ``--dir`` shares;
- ``tart suspend NAME`` signals the ``tart run`` process (SIGUSR1) and returns at once; that
  process pauses the VM, saves it to ``state.vzvmsave`` and exits. ``tart list`` says suspended;
- ``tart clone`` copies ``state.vzvmsave`` and keeps the MAC address of a suspended source;
- ``tart run`` of a VM with a saved state restores it (printing "restoring VM state from a
  snapshot..."), deletes the state file and resumes; it forces ``--suspendable`` itself;
- ``tart run`` with another running VM on the same MAC gives the VM a new MAC *and deletes its
  saved state*: that clone then boots cold.
Hence: a warm clone is never ``tart set`` (a new MAC, CPU count or memory size would not match
the saved machine), and there is a small pool of templates, each with its own MAC, so that the two
VMs macOS allows per host can both resume.

Templates are named ``hnswarm-<image>-<key>-<n>``: not a harness VM name, so the reaper leaves
them alone, and ``TartProvider.images()`` hides them. The key covers the image, tart's version,
CPU, memory and ``tart run`` flags; a changed key builds new templates and deletes the old ones.

After a resume the clone is personalised over SSH (tart's vanilla images have no guest agent):
the host's clock, and a fresh ed25519 host key made on the host and pinned for the connection.
macOS keeps its hardware UUID from the template's machine identifier (``tart set --random-serial``
would void the saved state): that id is shared by all clones of one template.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol, cast

import paramiko
from filelock import FileLock, Timeout

from harness.config import HostPaths
from harness.errors import HarnessError, InfrastructureError
from harness.host.run_label import VMName
from harness.ssh.endpoint import SSHEndpoint
from harness.vm.provider import StartMode, VMInfo
from harness.vm.tart.cli import TartCLI, TartSettings
from harness.vm.tart.macos_login import RunKey
from harness.vm.warm.personalization import Personalization
from harness.vm.warm.plan import WarmPlan, planned_start_mode, record_fallback
from harness.waiting import attempts


class TemplateMachines(Protocol):
    """What warm starts need from the tart provider: its command line and settings, and a VM's
    life cycle (a template is an ordinary tart VM). A protocol, so this module need not import it."""

    settings: TartSettings
    paths: HostPaths
    cli: TartCLI

    def vm_dir(self, name: VMName | str) -> Path: ...

    def key_for(self, name: VMName | str) -> RunKey: ...

    def list(self) -> list[VMInfo]: ...

    def start(self, name: VMName) -> None: ...

    def wait_ready(self, name: VMName, timeout_s: float) -> SSHEndpoint: ...

    def stop(self, name: VMName, timeout_s: float = 30.0) -> None: ...

    def delete(self, name: VMName) -> None: ...

    def console_tail(self, name: VMName | str, lines: int = 60) -> str: ...


TEMPLATE_PREFIX = "hnswarm-"
RESTORED_TEXT = "restoring VM state from a snapshot"
TART_LAYOUT = "1"
SUSPEND_TIMEOUT_S = 300.0
TEMPLATE_BOOT_TIMEOUT_S = 1200.0
PERSONALIZE_TIMEOUT_S = 60.0
LOCK_TIMEOUT_S = 60 * 60.0
EXIT_NOT_FOUND_OR_STATE = 2

# Runs in the resumed guest as root. Only on macOS: the stand-in's Linux guests get their identity
# from the QEMU warm start behind them, and its loopback backend runs commands on the host itself.
# Arguments: epoch, host private key (OpenSSH PEM), host public key line[, key directory].
PERSONALIZE = r"""set -eu
[ "$(uname -s)" = Darwin ] || { echo "not macOS: nothing to do"; exit 0; }
keydir="${4:-/etc/ssh}"
date -u -f %s "$1" > /dev/null
rm -f "$keydir"/ssh_host_*key "$keydir"/ssh_host_*key.pub
umask 077
printf '%s\n' "$2" > "$keydir/ssh_host_ed25519_key"
umask 022
printf '%s\n' "$3" > "$keydir/ssh_host_ed25519_key.pub"
echo personalised
"""


def is_template(name: str) -> bool:
    return name.startswith(TEMPLATE_PREFIX)


@dataclass(frozen=True)
class TemplateKey:
    image: str
    tart_version: str
    cpu: int
    memory_mb: int
    run_flags: tuple[str, ...]
    layout: str = TART_LAYOUT

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    @property
    def slug(self) -> str:
        return re.sub(r"[^0-9a-z]+", "-", self.image.lower()).strip("-")[:40]

    def template(self, index: int) -> str:
        return f"{TEMPLATE_PREFIX}{self.slug}-{self.digest}-{index}"

    def outdated(self, name: str) -> bool:
        """A template of this image made with another key (another tart, CPU count, ...)."""
        match = re.fullmatch(rf"{re.escape(TEMPLATE_PREFIX + self.slug)}-([0-9a-f]{{12}})-\d+", name)
        return match is not None and match.group(1) != self.digest


class TartWarmStarts:
    """The tart provider's warm-start hooks (see the module docstring)."""

    def __init__(self, lock_dir: Path, pool_size: int) -> None:
        self.lock_dir = lock_dir
        self.pool_size = max(1, pool_size)

    # -- clone --------------------------------------------------------------------------------

    def key(self, provider: TemplateMachines, image: str, cpu: int, memory_mb: int) -> TemplateKey:
        result = provider.cli("--version", timeout_s=provider.settings.command_timeout_s)
        version = result.stdout.strip() or "unknown"
        flags = (*provider.settings.softnet.run_flags(), *provider.settings.extra_run_args)
        return TemplateKey(image=image, tart_version=version, cpu=cpu, memory_mb=memory_mb, run_flags=flags)

    def source_for_clone(self, provider: TemplateMachines, image: str, name: VMName, cpu: int,
                         memory_mb: int) -> str | None:
        """The suspended template ``name`` should be cloned from, built if missing; None (after a
        warning) when there is none to be had, and the clone boots cold."""
        vm_dir = provider.vm_dir(name)
        if (os_name := _guest_os(provider, image)) not in ("darwin", None):
            # Not a failure: warm starts are not available here. Recorded, not warned about.
            record_fallback(vm_dir, f"tart suspends only macOS VMs ({image} is {os_name})", warn=False)
            return None
        try:
            key = self.key(provider, image, cpu, memory_mb)
            template = self._free_template(provider, key)
            self._ensure_template(provider, image, key, template)
        except HarnessError as exc:
            record_fallback(vm_dir, f"no suspended template: {exc.message}")
            return None
        WarmPlan(role="clone", snapshot=template, key=key.digest).save(vm_dir)
        return template

    def _free_template(self, provider: TemplateMachines, key: TemplateKey) -> str:
        """A template no other live clone came from: two running VMs on one MAC would make tart
        throw the second one's saved state away."""
        live = {vm.name for vm in provider.list()}
        taken = set()
        for vm_dir in provider.paths.vms.iterdir() if provider.paths.vms.is_dir() else ():
            plan = WarmPlan.load(vm_dir)
            if plan is not None and plan.role == "clone" and vm_dir.name in live:
                taken.add(plan.snapshot)
        for index in range(self.pool_size):
            if key.template(index) not in taken:
                return key.template(index)
        return key.template(0)  # all busy: this clone will boot cold (tart's MAC rule), say so later

    def _ensure_template(self, provider: TemplateMachines, image: str, key: TemplateKey, template: str) -> None:
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.lock_dir / f"{template}.lock"), timeout=LOCK_TIMEOUT_S)
        try:
            with lock:
                states = {vm.name: vm.state for vm in provider.list()}
                if states.get(template) == "suspended":
                    return
                if template in states:  # half-built or resumed by hand: start over
                    provider.delete(cast(VMName, template))
                self._remove_outdated(provider, key, states)
                self._build(provider, image, key, template)
        except Timeout as exc:
            raise InfrastructureError(f"waited {LOCK_TIMEOUT_S:.0f}s for another build of {template}",
                                      hint=f"look for a hung builder holding {lock.lock_file}") from exc

    @staticmethod
    def _remove_outdated(provider: TemplateMachines, key: TemplateKey, states: Mapping[str, str]) -> None:
        for name, state in states.items():
            if key.outdated(name) and state != "running":
                provider.delete(cast(VMName, name))

    def _build(self, provider: TemplateMachines, image: str, key: TemplateKey, template: str) -> None:
        """Clone, give it its own MAC and hardware, boot it suspendable, log in once, suspend."""
        name = cast(VMName, template)
        vm_dir = provider.vm_dir(template)
        vm_dir.mkdir(parents=True, exist_ok=True)
        WarmPlan(role="template").save(vm_dir)
        try:
            for args in (("clone", image, template),
                         ("set", template, "--random-mac", "--cpu", str(key.cpu), "--memory", str(key.memory_mb))):
                result = provider.cli(*args, timeout_s=provider.settings.clone_timeout_s)
                if result.returncode != 0:
                    raise InfrastructureError(f"`tart {' '.join(args)}` failed (exit {result.returncode})",
                                              detail=result.message)
            provider.start(name)
            provider.wait_ready(name, TEMPLATE_BOOT_TIMEOUT_S)
            self._suspend(provider, template)
        except BaseException:
            provider.delete(name)
            raise

    @staticmethod
    def _suspend(provider: TemplateMachines, template: str) -> None:
        result = provider.cli("suspend", template, timeout_s=provider.settings.command_timeout_s)
        if result.returncode != 0:
            raise InfrastructureError(f"`tart suspend {template}` failed (exit {result.returncode})",
                                      hint="suspending needs macOS 14 or newer on the host", detail=result.message)
        for _ in attempts(SUSPEND_TIMEOUT_S, 0.5):
            state = next((vm.state for vm in provider.list() if vm.name == template), "unknown")
            if state == "suspended":
                provider.stop(cast(VMName, template), timeout_s=30)  # reaps the exited `tart run`
                return
            if state == "stopped":
                raise InfrastructureError(f"{template} stopped instead of suspending",
                                          detail=provider.console_tail(template))
        raise InfrastructureError(f"{template} was not suspended within {SUSPEND_TIMEOUT_S:.0f}s",
                                  detail=provider.console_tail(template))

    # -- start --------------------------------------------------------------------------------

    @staticmethod
    def suspendable(vm_dir: Path) -> bool:
        plan = WarmPlan.load(vm_dir)
        return plan is not None and plan.role in ("template", "clone")

    def after_ready(self, provider: TemplateMachines, name: VMName, endpoint: SSHEndpoint) -> SSHEndpoint:
        """For a warm clone: did tart really resume it? If so, personalise it; if not, say so."""
        vm_dir = provider.vm_dir(name)
        plan = WarmPlan.load(vm_dir)
        if plan is None or plan.role != "clone":
            return endpoint
        if RESTORED_TEXT not in provider.console_tail(name, lines=10_000):
            record_fallback(vm_dir, "tart booted the clone instead of resuming it (its saved state was "
                                    "discarded, e.g. for a MAC address already in use)")
            return endpoint
        personal = Personalization.new()
        try:
            output = _run_as_root(endpoint, personal, provider.key_for(name).paramiko_key())
        except (OSError, paramiko.SSHException, EOFError, HarnessError) as exc:
            raise InfrastructureError(f"personalising the resumed clone {name} failed: {exc}",
                                      hint="use --cold to boot tart VMs from scratch") from exc
        host_key = personal.host_key_public if "personalised" in output else ""
        WarmPlan(role="clone", snapshot=plan.snapshot, key=plan.key, host_key=host_key, resumed=True).save(vm_dir)
        return replace(endpoint, host_key=host_key or None)

    @staticmethod
    def mode(vm_dir: Path, requested: bool) -> StartMode:
        return planned_start_mode(vm_dir, requested)


def _guest_os(provider: TemplateMachines, image: str) -> str | None:
    """``tart get``'s OS of a local image; None when tart cannot say (e.g. not pulled yet)."""
    result = provider.cli("get", image, "--format", "json", timeout_s=provider.settings.command_timeout_s)
    try:
        return str(json.loads(result.stdout)["OS"]).lower() if result.returncode == 0 else None
    except (ValueError, KeyError, TypeError):
        return None


def personalize_command(endpoint: SSHEndpoint, personal: Personalization, epoch: int) -> str:
    """``PERSONALIZE`` as root: through ``sudo -S`` with the image's password when it has one."""
    sudo = "sudo -S -p ''" if endpoint.password else "sudo -n"
    arguments = " ".join(shlex.quote(a) for a in (str(epoch), personal.host_key_private.strip(),
                                                  personal.host_key_public))
    # Checked before sudo too: the loopback stand-in runs this on the host, which may lack sudo.
    return (f'if [ "$(uname -s)" != Darwin ]; then echo "not macOS: nothing to do"; '
            f"else {sudo} sh -c {shlex.quote(PERSONALIZE)} harness {arguments}; fi")


def _run_as_root(endpoint: SSHEndpoint, personal: Personalization, key: paramiko.PKey) -> str:
    client = paramiko.SSHClient()
    # The template's key: about to be replaced; the new one is pinned for every later connection.
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(endpoint.host, port=endpoint.port, username=endpoint.user, pkey=key,
                   timeout=PERSONALIZE_TIMEOUT_S, banner_timeout=PERSONALIZE_TIMEOUT_S,
                   auth_timeout=PERSONALIZE_TIMEOUT_S, look_for_keys=False, allow_agent=False)
    try:
        command = personalize_command(endpoint, personal, int(time.time()))
        stdin, stdout, stderr = client.exec_command(command, timeout=PERSONALIZE_TIMEOUT_S)
        if endpoint.password:
            stdin.write(endpoint.password + "\n")
            stdin.flush()
        stdin.channel.shutdown_write()
        output = stdout.read().decode(errors="replace")
        status = stdout.channel.recv_exit_status()
        if status != 0:
            raise InfrastructureError(f"exit {status}: {stderr.read().decode(errors='replace')[-500:]}")
        return output
    finally:
        client.close()
