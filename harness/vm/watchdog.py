"""The run watchdog: VMs die with the process that owns them, however that process dies.

A VM's owner (a pytest process, an xdist worker, a bench script) starts one watchdog: a small
Python process in its own session, joined to the owner by nothing but a pipe, like testcontainers'
Ryuk holds its session's connection. The owner writes one line per event (``watch`` before a VM is
cloned, ``release`` once it removed the VM itself or keeps it on purpose); the watchdog only reads.
When the pipe reaches end-of-file, every writer is gone: the owner closed it after its last VM, or
the kernel closed it because the owner died (SIGKILL included, which no handler in the owner can
catch). The watchdog then hands the VMs it still watches to the reaper (:mod:`harness.host.reaper`,
the one that ``harness gc`` and the session start use), which removes each with its own provider
and drops its lease, and exits. It never outlives its owner by more than that teardown.

Why a watchdog rather than the kernel's parent-death signal: ``PR_SET_PDEATHSIG`` fires when the
parent *thread* ends (not the process), only reaches a direct child (QEMU, never the tart VM
behind ``tart run`` nor an Orchard VM on another host), deletes nothing on disk, and cannot be
lifted later, so a VM kept with ``--keep-vm on-failure`` would die with its run anyway. The
watchdog knows which VMs are kept, works for every provider, and removes the disk too.

Providers are rebuilt from the registry in the environment the owner had when it started the
watchdog (secrets such as an Orchard token stay in that environment: nothing is written down).
The reaper at the next session start or ``harness gc`` covers the one case a watchdog cannot: the
watchdog itself killed together with its owner.

    python -m harness.vm.watchdog --state DIR --cache DIR --log FILE --owner PID
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import IO, Self

from harness.config import HostPaths
from harness.errors import HarnessError, InfrastructureError
from harness.host.reaper import ReapPolicy, Say, reap
from harness.vm.provider import Provider
from harness.vm.registry import get_provider

READY_LINE = "ready"
SPAWN_TIMEOUT_S = 30.0  # Python start-up on a loaded 2-core host
CLOSE_WAIT_S = 60.0  # a normal close has nothing left to remove; a failed one may need a delete

ProviderFactory = Callable[[str, HostPaths], Provider]


# -- the watchdog process ----------------------------------------------------------------------


class Teardown:
    """What the watchdog process knows: the watched VMs, each with its provider's name."""

    def __init__(self, paths: HostPaths, say: Say,
                 providers: ProviderFactory = get_provider) -> None:
        self.paths = paths
        self.say = say
        self._factory = providers
        self._providers: dict[str, Provider] = {}
        self.watched: dict[str, str] = {}  # VM name -> provider name

    def provider(self, name: str) -> Provider:
        if name not in self._providers:
            self._providers[name] = self._factory(name, self.paths)
        return self._providers[name]

    def handle(self, line: str) -> None:
        try:
            message = json.loads(line)
            op, vm = str(message["op"]), str(message["vm"])
        except (ValueError, KeyError, TypeError):
            self.say(f"ignored a line that is not a watchdog message: {line[:200]!r}")
            return
        if op == "watch":
            provider = str(message.get("provider", ""))
            self.watched[vm] = provider
            try:
                self.provider(provider)  # built now, so that a teardown pays no imports
            except HarnessError as exc:
                self.say(f"cannot rebuild provider {provider!r} for {vm}: {exc.message}")
            self.say(f"watching {vm} ({provider})")
        elif op == "release":
            if self.watched.pop(vm, None) is not None:
                self.say(f"released {vm}: its owner removed or kept it")
        else:
            self.say(f"ignored unknown operation {op!r} for {vm}")

    def remove_all(self, why: str) -> int:
        """Have the reaper remove every VM still watched; the number that could not be removed."""
        if not self.watched:
            return 0
        providers: dict[str, Provider] = {}
        for name in set(self.watched.values()):
            try:
                providers[name] = self.provider(name)
            except HarnessError:
                pass  # said when it was watched; a VM directory of its still goes
        policy = ReapPolicy(names=frozenset(self.watched), why=why)
        outcomes = reap(providers.values(), self.paths, policy, say=self.say)
        removed = {o.leftover.name for o in outcomes if o.removed}
        unreachable = [vm for vm, provider in self.watched.items()
                       if provider not in providers and vm not in removed]
        for vm in unreachable:
            self.say(f"could not remove {vm}: no provider to reach it; `harness gc` will")
        return len([o for o in outcomes if o.error]) + len(unreachable)


def serve(stream: IO[str], teardown: Teardown, owner: int) -> int:
    """Follow the owner's messages until end-of-file, then remove what is left; the exit code."""
    stopping: list[str] = []

    def stop_now(signum: int, frame: FrameType | None) -> None:
        stopping.append(signal.Signals(signum).name)
        raise KeyboardInterrupt

    # Its own session keeps the terminal's Ctrl-C away; a SIGTERM aimed at it means "clean up now".
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, stop_now)
    try:
        for line in stream:
            if line.strip():
                teardown.handle(line)
        why = f"owner {owner} is gone"
    except KeyboardInterrupt:
        why = f"watchdog got {stopping[0] if stopping else 'an interrupt'}"
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the teardown itself runs to its end
    if teardown.watched:
        teardown.say(f"{why}: removing {len(teardown.watched)} VM(s)")
    return 1 if teardown.remove_all(why) else 0


def _log_sink(path: Path | None) -> Say:
    handle: IO[str] | None = None
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = path.open("a", encoding="utf-8")
        except OSError:
            handle = None  # a full or read-only results directory must not stop the teardown

    def say(text: str) -> None:
        if handle is None:
            return
        try:
            handle.write(f"{time.strftime('%H:%M:%S')} [watchdog {os.getpid()}] {text}\n")
            handle.flush()
        except OSError:
            pass

    return say


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.vm.watchdog", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--log", type=Path, default=None)
    parser.add_argument("--owner", type=int, required=True)
    args = parser.parse_args(argv)
    say = _log_sink(args.log)
    teardown = Teardown(HostPaths(cache=args.cache, state=args.state), say)
    say(f"started for owner {args.owner}")
    sys.stdout.write(READY_LINE + "\n")
    sys.stdout.flush()
    code = serve(sys.stdin, teardown, args.owner)
    say(f"exits ({'everything removed' if code == 0 else 'some VMs left for harness gc'})")
    return code


# -- the owner's side -----------------------------------------------------------------------------


class Watchdog:
    """The owner's handle on its watchdog process: ``watch`` a VM before it exists, ``release`` it
    once removed or kept. ``close`` (or the owner's death) lets the watchdog finish."""

    def __init__(self, process: subprocess.Popen[str], log_path: Path | None) -> None:
        self._process = process
        self.log_path = log_path
        self.pid = process.pid
        self._broken = ""
        self._lock = threading.Lock()  # VMs started in two threads send their lines one at a time

    @classmethod
    def spawn(cls, paths: HostPaths, log_path: Path | None = None) -> Watchdog:
        argv = [sys.executable, "-m", "harness.vm.watchdog", "--state", str(paths.state),
                "--cache", str(paths.cache), "--owner", str(os.getpid())]
        if log_path is not None:
            argv += ["--log", str(log_path)]
        # Own session: a Ctrl-C or a kill of the owner's process group must not take it along.
        # close_fds (the default) keeps the pipe's write end out of every other child, so only the
        # owner's death or close() ends the pipe.
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        watchdog = cls(process, log_path)
        watchdog._await_ready()
        return watchdog

    def _await_ready(self) -> None:
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], SPAWN_TIMEOUT_S)
        line = self._process.stdout.readline().strip() if ready else ""
        if line != READY_LINE:
            self._process.kill()
            self._process.wait(timeout=10)
            raise InfrastructureError(
                f"the VM watchdog did not start within {SPAWN_TIMEOUT_S:g} s (said {line!r})",
                hint="run `python -m harness.vm.watchdog --help` to see why it cannot start",
            )

    @property
    def alive(self) -> bool:
        return self._process.poll() is None and not self._broken

    def _send(self, op: str, vm: str, **extra: str) -> None:
        stdin = self._process.stdin
        if stdin is None or stdin.closed:
            raise InfrastructureError(f"the VM watchdog of pid {os.getpid()} is closed; cannot {op} {vm}")
        # One line, far below PIPE_BUF: written whole even if the owner dies right after.
        line = json.dumps({"op": op, "vm": vm, **extra}) + "\n"
        try:
            with self._lock:
                stdin.write(line)
                stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            self._broken = str(exc)
            raise InfrastructureError(
                f"the VM watchdog (pid {self.pid}) died; {vm} would not be removed if this run died",
                hint=f"see {self.log_path}; `harness gc` removes leftovers of dead runs",
            ) from exc

    def watch(self, provider: str, vm: str) -> None:
        self._send("watch", vm, provider=provider)

    def release(self, vm: str) -> None:
        self._send("release", vm)

    def close(self, wait_s: float = CLOSE_WAIT_S) -> None:
        """End the pipe; the watchdog removes whatever is still watched, then exits."""
        stdin = self._process.stdin
        if stdin is not None and not stdin.closed:
            try:
                stdin.close()
            except OSError:
                pass
        try:
            self._process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            pass  # still removing a VM; it finishes on its own, in its own session
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    sys.exit(main())
