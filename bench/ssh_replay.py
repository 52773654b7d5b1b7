"""Redo a traced run's guest work with plain OpenSSH: the baseline for the harness's overhead.

Each trace file (``HARNESS_SSH_TRACE``, one per SSH connection of the run) becomes one fresh warm
VM on which its operations are repeated in order, as a person with a shell script would: every
command through ``ssh`` (one multiplexed connection, like the harness's one transport), every copy
through ``scp``. HTTP exchanges through port forwards are not replayed: their busy time (request
to last answer byte, as the harness saw it) is counted as guest work. The VM boots are counted
too: a plain-ssh user needs VMs as well.
"""

from __future__ import annotations

import base64
import json
import shlex
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import HostPaths
from harness.host.slots import SlotPool
from harness.ssh import openssh_options
from harness.vm.machine import Machine, MachineSettings
from harness.vm.provider import VMOptions
from harness.vm.registry import provider_for_image

IMAGE = "linux-debian12"
TEMPLATE_MARK = "harness-warm-agent"  # a snapshot build's own connection: not part of the run


@dataclass
class ReplayResult:
    seconds: float = 0.0
    boots_s: float = 0.0
    commands_s: float = 0.0
    copies_s: float = 0.0
    forwards_s: float = 0.0
    commands: int = 0
    copies: int = 0
    vms: int = 0
    skipped: list[str] = field(default_factory=list)
    # (traced seconds in the harness run, seconds through plain ssh/scp) per replayed operation:
    # their ratio shows how far the host's load drifted between the run and the replay.
    pairs: list[tuple[float, float]] = field(default_factory=list)
    # One command's round trip on an idle guest, harness vs ssh (median, interleaved, same VM).
    round_trip_harness_s: float = 0.0
    round_trip_ssh_s: float = 0.0

    @property
    def load_drift(self) -> float:
        """Median replay/run time ratio of the commands that took over a second (1.0: same load)."""
        ratios = [replayed / traced for traced, replayed in self.pairs if traced > 1.0]
        return statistics.median(ratios) if ratios else 1.0


def guest_busy_s(traces: list[list[dict[str, Any]]]) -> float:
    """Wall seconds during which the run waited on a guest: the union of every traced operation."""
    spans = sorted((float(op["t"]), float(op["t"]) + float(op["s"])) for ops in traces for op in ops)
    busy, end = 0.0, float("-inf")
    for start, stop in spans:
        if stop <= end:
            continue
        busy += stop - max(start, end)
        end = stop
    return busy


def load_traces(directory: Path) -> list[list[dict[str, Any]]]:
    """The operations of each connection, connections in the order they were opened."""
    traces = []
    for path in sorted(directory.glob("*.jsonl"), key=lambda p: int(p.name.split("-", 1)[0])):
        ops = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if ops and not any(TEMPLATE_MARK in str(op.get("cmd", "")) for op in ops):
            traces.append(ops)
    return traces


def remote_line(op: dict[str, Any]) -> str:
    """The shell line ``ssh`` runs for a traced command (as the harness ran it, minus its pid tag)."""
    steps = []
    if op.get("cwd"):
        steps.append(f"cd -- {shlex.quote(op['cwd'])}")
    if op.get("env"):
        steps.append("export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in op["env"].items()))
    steps.append(f"exec /bin/sh -c {shlex.quote(op['cmd'])}")
    return " && ".join(steps)


class OpenSSH:
    """``ssh``/``scp`` against one VM over one ControlMaster connection."""

    def __init__(self, vm: Machine, control_dir: Path) -> None:
        self.target = f"{vm.endpoint.user}@{vm.endpoint.host}"
        self.port = str(vm.endpoint.port)
        self.options = [*openssh_options(vm.endpoint, vm.artifacts / "known_hosts"), "-o", "BatchMode=yes",
                        "-o", f"ControlPath={control_dir}/%C", "-o", "ControlMaster=auto", "-o", "ControlPersist=120"]

    def ssh(self, line: str, stdin: bytes = b"", timeout: float = 3600) -> None:
        subprocess.run(["ssh", "-p", self.port, *self.options, self.target, line], input=stdin,
                       capture_output=True, timeout=timeout, check=False)

    def scp(self, source: str, destination: str, timeout: float = 3600) -> None:
        subprocess.run(["scp", "-q", "-P", self.port, *self.options, source, destination],
                       capture_output=True, timeout=timeout, check=False)

    def open(self) -> None:
        """The master connection, made before the clock starts (the harness's is in its boot)."""
        self.ssh("true", timeout=120)

    def close(self) -> None:
        subprocess.run(["ssh", "-p", self.port, *self.options, "-O", "exit", self.target],
                       capture_output=True, timeout=30, check=False)


def _replay_ops(ops: list[dict[str, Any]], shell: OpenSSH, scratch: Path, result: ReplayResult) -> None:
    for op in ops:
        started = time.perf_counter()
        if op["op"] == "run":
            shell.ssh(remote_line(op), base64.b64decode(op.get("stdin") or ""))
            took = time.perf_counter() - started
            result.commands_s += took
            result.commands += 1
            result.pairs.append((float(op["s"]), took))
        elif op["op"] == "put":
            if not Path(op["local"]).is_file():
                result.skipped.append(f"put {op['local']}: the host file is gone")
                continue
            shell.scp(op["local"], f"{shell.target}:{op['remote']}")
            if op.get("mode") is not None:
                shell.ssh(f"chmod {op['mode']:o} {shlex.quote(op['remote'])}")
            result.copies_s += time.perf_counter() - started
            result.copies += 1
        elif op["op"] == "get":
            shell.scp(f"{shell.target}:{op['remote']}", str(scratch / "fetched"))
            result.copies_s += time.perf_counter() - started
            result.copies += 1
        elif op["op"] == "forward":
            result.forwards_s += float(op["s"])


def _round_trips(vm: Machine, shell: OpenSSH, result: ReplayResult, count: int = 15) -> None:
    harness, plain = [], []
    for _ in range(count):  # interleaved: both see the same load
        started = time.perf_counter()
        vm.run("true", timeout=60)
        harness.append(time.perf_counter() - started)
        started = time.perf_counter()
        shell.ssh("true", timeout=60)
        plain.append(time.perf_counter() - started)
    result.round_trip_harness_s = statistics.median(harness)
    result.round_trip_ssh_s = statistics.median(plain)


def replay_run(trace_dir: Path, paths: HostPaths, workdir: Path, image: str = IMAGE) -> ReplayResult:
    result = ReplayResult()
    provider = provider_for_image(image, paths)
    slots = SlotPool(paths.slots, 2)
    for ops in load_traces(trace_dir):
        settings = MachineSettings(image=image, run_id="benchreplay", artifacts_root=workdir,
                                   options=VMOptions(warm=True))
        with Machine(provider, settings, slots=slots, say=lambda _text: None) as vm, \
                tempfile.TemporaryDirectory(prefix="hns-replay-") as scratch:
            result.boots_s += vm.timings["boot"]  # clone to connected, without waiting for a slot
            shell = OpenSSH(vm, Path(scratch))
            shell.open()
            if not result.round_trip_ssh_s:
                _round_trips(vm, shell, result)
            try:
                _replay_ops(ops, shell, Path(scratch), result)
            finally:
                shell.close()
        result.vms += 1
    result.seconds = result.boots_s + result.commands_s + result.copies_s + result.forwards_s
    return result
