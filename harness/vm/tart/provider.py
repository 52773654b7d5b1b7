"""macOS guests through the ``tart`` command line (Apple Silicon hosts only).

Follows ``tart-contract.md`` (shared docs) point by point; every awkward behaviour of tart has its
counter-measure here, named in a comment:
- ``clone`` overwrites silently -> ``list`` first, refuse an existing name;
- clones keep the image's MAC and ``ip`` can return another VM's stale lease -> ``set --random-mac``
  after every clone, and the address counts only once an SSH key exchange has completed;
- ``run`` stays in the foreground -> started in its own session, output to a log, watched for an
  early exit (Apple's 2-VM limit text becomes a clear error);
- offline through Softnet: block everything, allow the host gateway back (SSH needs it);
- ``stop`` exits 2 for a VM that is not running, ``delete`` refuses a running VM: both handled;
- leftovers are found by :mod:`harness.host.reaper` through ``list`` (our name prefix, dead owner)
  and removed with ``stop`` + ``delete``; ``tart prune`` is never used, since it deletes every
  stopped VM on the host, golden images included.

Nothing here has run on real Apple hardware yet: it is exercised on Linux through the stand-in in
``harness.testing.tart_standin``, which reproduces the contract with QEMU guests.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import paramiko

from harness.config import HostPaths
from harness.errors import BootTimeout, InfrastructureError
from harness.host.run_label import VMName
from harness.ssh.endpoint import SSHEndpoint
from harness.vm.provider import Capabilities, StartMode, VMInfo, VMOptions, VMState
from harness.vm.tart.cli import TartCLI, TartSettings
from harness.vm.tart.macos_login import RunKey, ensure_key_login, probe_ssh
from harness.vm.tart.warm import TartWarmStarts, is_template
from harness.waiting import attempts

VM_LIMIT_TEXT = "number of VMs exceeds the system limit"
EXIT_NOT_FOUND_OR_STATE = 2  # tart: "does not exist" / "not running" / "already running"
_KNOWN_STATES: frozenset[str] = frozenset({"running", "stopped", "suspended"})


# A file in the VM's host directory: this VM runs without Softnet's block (harness shell
# --online-for-debugging).
ONLINE_MARKER = "online"


class TartProvider:
    """The :class:`harness.vm.provider.Provider` for tart."""

    name = "tart"
    capabilities = Capabilities(warm_start=True, foreign_vms=True)

    def __init__(self, settings: TartSettings, paths: HostPaths) -> None:
        self.settings = settings
        self.paths = paths
        self.cli = TartCLI(settings.binary, paths.state / "tart-commands.log")
        self._runs: dict[str, subprocess.Popen[bytes]] = {}
        self.warm = TartWarmStarts(paths.state / "tart-warm", settings.max_running)

    @classmethod
    def from_env(cls, paths: HostPaths | None = None) -> TartProvider:
        return cls(TartSettings.from_env(), paths or HostPaths.from_env())

    # -- where a VM's host-side files live ---------------------------------------------------

    def vm_dir(self, name: VMName | str) -> Path:
        """Host-side files of one VM (run log, key); the reaper removes it with the VM's leftovers."""
        return self.paths.vms / str(name)

    def run_log(self, name: VMName | str) -> Path:
        return self.vm_dir(name) / "tart-run.log"

    def key_for(self, name: VMName | str) -> RunKey:
        return RunKey.create(self.vm_dir(name) / "id_ed25519", comment=f"portability-harness {name}")

    # -- listing -----------------------------------------------------------------------------

    def _list_raw(self) -> list[dict[str, object]]:
        result = self.cli("list", "--format", "json", timeout_s=self.settings.command_timeout_s)
        if result.returncode != 0:
            raise InfrastructureError("`tart list` failed", hint="run `tart list` on the host", detail=result.message)
        try:
            entries = json.loads(result.stdout or "[]")
        except json.JSONDecodeError as exc:
            raise InfrastructureError(
                "`tart list --format json` printed something that is not JSON",
                hint="this tart version may be too old; upgrade tart",
                detail=result.stdout[:500],
            ) from exc
        return [e for e in entries if isinstance(e, dict)]

    def list(self) -> list[VMInfo]:
        infos: list[VMInfo] = []
        for entry in self._list_raw():
            name = str(entry.get("Name", ""))
            state_text = str(entry.get("State", "running" if entry.get("Running") else "stopped")).lower()
            state: VMState = state_text if state_text in _KNOWN_STATES else "unknown"  # type: ignore[assignment]
            parsed = VMName.parse(name)
            infos.append(VMInfo(name=name, provider=self.name, state=state, owner_pid=parsed.owner_pid if parsed else None))
        return infos

    # builtins.list: the method list() above shadows the builtin in the rest of the class body
    def images(self) -> builtins.list[str]:
        """Local VMs that are not ours: the golden images a run may clone."""
        return sorted(
            str(e.get("Name")) for e in self._list_raw()
            if e.get("Source", "local") == "local" and VMName.parse(str(e.get("Name", ""))) is None
            and not is_template(str(e.get("Name", "")))
        )

    def foreign_running_count(self) -> int:
        """Running VMs the harness did not start: they use up Apple's 2-VM limit too.

        Harness VMs (ours, from any run) already hold a slot each, so only the others are counted.
        """
        return sum(1 for vm in self.list() if vm.state == "running" and vm.owner_pid is None)

    def _exists(self, name: str) -> bool:
        return any(vm.name == name for vm in self.list())

    # -- lifecycle ---------------------------------------------------------------------------

    def clone(self, image: str, name: VMName, options: VMOptions | None = None) -> None:
        """Clone, then ``set --random-mac`` and the hardware.

        The settings' cpu/memory are a floor (macOS refuses less than its image's minimum, and
        the generic defaults in ``VMOptions`` are sized for small Linux guests).
        ``options.capture_traffic`` has no tart equivalent: Softnet blocks instead of recording.
        """
        if self._exists(str(name)):
            # tart would overwrite it without a word, destroying another run's VM.
            raise InfrastructureError(
                f"a tart VM named {name} already exists; refusing to clone over it",
                hint="run `harness gc` to remove leftovers of dead runs",
            )
        self.vm_dir(name).mkdir(parents=True, exist_ok=True)
        if options is not None and options.online:
            # Read back by run_command, which runs in start() without the options.
            (self.vm_dir(name) / ONLINE_MARKER).touch()
        cpu, memory = self.settings.cpu, self.settings.memory_mb
        if options is not None:
            cpu, memory = max(cpu, options.cpus), max(memory, options.memory_mb)
        # Warm: clone a suspended template (harness.vm.tart.warm) and resume it.
        template = self.warm.source_for_clone(self, image, name, cpu, memory) if options and options.warm else None
        result = self.cli("clone", template or image, str(name), timeout_s=self.settings.clone_timeout_s)
        if result.returncode != 0:
            raise InfrastructureError(
                f"`tart clone {image} {name}` failed (exit {result.returncode})",
                hint=f"check that the image exists (`tart list`, or `tart pull {image}`) and that the disk has room; "
                "build a clean image with vm_images/macos/README.md",
                detail=result.message,
            )
        if template is not None:
            return  # `tart set` would change what the saved machine was made with: it keeps its own
        set_args = ["set", str(name), "--random-mac", "--cpu", str(cpu), "--memory", str(memory)]
        result = self.cli(*set_args, timeout_s=self.settings.command_timeout_s)
        if result.returncode != 0:
            self.delete(name)
            raise InfrastructureError(
                f"`tart {' '.join(set_args)}` failed (exit {result.returncode}); the clone was removed",
                hint="lower HARNESS_TART_CPU / HARNESS_TART_MEMORY_MB to what the host offers",
                detail=result.message,
            )

    def run_command(self, name: VMName | str) -> builtins.list[str]:
        return [
            self.cli.resolve_binary(), "run", str(name),
            "--no-graphics", "--no-audio", "--no-clipboard",
            *([] if (self.vm_dir(name) / ONLINE_MARKER).exists() else self.settings.softnet.run_flags()),
            *self.settings.extra_run_args,
            *(["--suspendable"] if self.warm.suspendable(self.vm_dir(name)) else []),
        ]

    def start(self, name: VMName) -> None:
        foreign = self.foreign_running_count()
        ours = sum(1 for vm in self.list() if vm.state == "running" and vm.owner_pid is not None)
        if foreign + ours >= self.settings.max_running:
            raise InfrastructureError(
                f"{foreign + ours} VMs already run on this tart host ({foreign} not started by the harness); "
                f"macOS allows {self.settings.max_running}",
                hint="stop other VMs (`tart list`, `tart stop NAME`) or lower --max-vms",
            )
        log_path = self.run_log(name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            # Own session: Ctrl-C in the terminal must not reach tart before we stop it in order.
            command = self.run_command(name)
            proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=self.cli.env(),
            )
        self._runs[str(name)] = proc
        self.cli.note_detached(command, proc.pid)
        (self.vm_dir(name) / "tart-run.pid").write_text(str(proc.pid))
        for _ in attempts(self.settings.start_grace_s, 0.2):
            if proc.poll() is not None:
                self._raise_early_exit(name, proc.returncode)

    def _raise_early_exit(self, name: VMName | str, code: int | None) -> None:
        tail = self.console_tail(name)
        self._runs.pop(str(name), None)
        if VM_LIMIT_TEXT in tail:
            raise InfrastructureError(
                f"tart could not start {name}: macOS allows at most {self.settings.max_running} VMs per host "
                "and that many already run",
                hint="stop VMs that are not needed (`tart list`, `tart stop NAME`); a slot leaked by a crashed "
                "VM is freed only by rebooting the host",
                detail=tail,
            )
        raise InfrastructureError(
            f"`tart run {name}` exited early (exit {code})",
            hint=f"read {self.run_log(name)}; on CI hosts check that softnet is installed setuid",
            detail=tail,
        )

    def _check_running(self, name: VMName) -> None:
        proc = self._runs.get(str(name))
        if proc is not None and proc.poll() is not None:
            self._raise_early_exit(name, proc.returncode)

    def ip(self, name: VMName, wait_s: int) -> str | None:
        """The first address a resolver reports, unproven; None when none answers in ``wait_s``."""
        for resolver in self.settings.resolvers:
            result = self.cli(
                "ip", str(name), "--wait", str(wait_s), "--resolver", resolver,
                timeout_s=wait_s + self.settings.command_timeout_s,
            )
            address = result.stdout.strip().splitlines()[-1].strip() if result.stdout.strip() else ""
            if result.returncode == 0 and address:
                return address
        return None

    def wait_ready(self, name: VMName, timeout_s: float) -> SSHEndpoint:
        key = self.key_for(name)
        last_problem = "no IP address yet"
        for attempt in attempts(timeout_s, 0.0):  # `tart ip --wait` is the pause after a miss
            self._check_running(name)
            address = self.ip(name, wait_s=max(1, min(self.settings.ip_poll_s, int(attempt.remaining_s()))))
            if address is None:
                last_problem = f"`tart ip` found no address with resolvers {', '.join(self.settings.resolvers)}"
                continue
            step_timeout = max(1.0, min(15.0, attempt.remaining_s()))
            try:
                probe_ssh(address, self.settings.ssh_port, step_timeout)
            except (OSError, paramiko.SSHException, EOFError) as exc:
                # A lease can be stale or sshd not up yet: the address stays unproven.
                last_problem = f"{address}:{self.settings.ssh_port} does not speak SSH yet ({exc.__class__.__name__}: {exc})"
                attempt.pause(2.0)
                continue
            ensure_key_login(address, self.settings.ssh_port, self.settings.user, self.settings.password, key, step_timeout)
            return self.warm.after_ready(self, name, SSHEndpoint(
                host=address, port=self.settings.ssh_port, user=self.settings.user,
                key_path=key.private_path, password=self.settings.password,
            ))
        raise BootTimeout(
            f"tart VM {name} did not answer SSH within {timeout_s:.0f} s: {last_problem}",
            hint="raise the boot timeout, check that the image enables Remote Login (vm_images/macos/README.md) "
            "and that macOS's Local Network privacy setting lets the host reach the VM",
            detail=self.console_tail(name),
        )

    def start_mode(self, name: VMName | str) -> StartMode:
        """Whether ``name`` resumed from a suspended template or booted (and why)."""
        return self.warm.mode(self.vm_dir(name), requested=False)

    def stop(self, name: VMName, timeout_s: float = 30.0) -> None:
        result = self.cli("stop", str(name), "--timeout", str(int(timeout_s)), timeout_s=timeout_s + self.settings.command_timeout_s)
        if result.returncode not in (0, EXIT_NOT_FOUND_OR_STATE):
            raise InfrastructureError(
                f"`tart stop {name}` failed (exit {result.returncode})", hint="stop it by hand: tart stop NAME", detail=result.message
            )
        self._reap_run_process(name, timeout_s)

    def _reap_run_process(self, name: VMName | str, timeout_s: float) -> None:
        proc = self._runs.pop(str(name), None)
        if proc is None:
            return
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def delete(self, name: VMName) -> None:
        result = self.cli("delete", str(name), timeout_s=self.settings.command_timeout_s)
        if result.returncode == 1:
            # Refused: still running. Stop first, then try once more.
            self.stop(name)
            result = self.cli("delete", str(name), timeout_s=self.settings.command_timeout_s)
        if result.returncode not in (0, EXIT_NOT_FOUND_OR_STATE):
            raise InfrastructureError(
                f"`tart delete {name}` failed (exit {result.returncode})", hint="delete it by hand: tart stop NAME; tart delete NAME",
                detail=result.message,
            )
        shutil.rmtree(self.vm_dir(name), ignore_errors=True)

    def image_digest(self, image: str) -> None:
        """tart names images, not builds: no digest to compare."""
        return

    def traffic_pcap(self, name: VMName | str) -> None:
        """tart cannot record a guest's traffic (Softnet blocks it instead): never a capture."""
        return

    def console_tail(self, name: VMName | str, lines: int = 60) -> str:
        """macOS guests have no serial console here: the tail of ``tart run``'s own output."""
        try:
            text = self.run_log(name).read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
