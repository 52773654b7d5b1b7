"""The second VM's work beside the first one's: the twin boots and installs while the primary VM
installs, serves and answers; only the checks that compare the two wait for it.

The twin runs in a thread of its own with a VM slot reserved before it starts (never waited for,
so parallel runs cannot deadlock on the host's cap; without a free slot the caller runs the twin
first, as a sequential run does). Off the main thread nothing touches pytest or allure: its steps
are timed into the journal only. Its outcome, value or error, is handed to the main thread, which
raises the error where a check asks for the result. Cancelling closes every VM the twin made, which
ends whatever remote step the thread was in; the thread is then joined.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from harness.errors import InfrastructureError
from harness.host.slots import Slot
from harness.install import Installed
from harness.journal import Journal, PhaseRecord
from harness.suite.deployment import MachineMaker, PhaseTimer, TwinResult
from harness.vm.machine import Machine
from harness.vm.provider import VMOptions

JOIN_AFTER_CANCEL_S = 120.0  # closing a VM ends its SSH session; the thread then unwinds


@dataclass
class JournalPhases:
    """Times phases into the journal and nothing else: safe off the main thread."""

    journal: Journal

    @contextmanager
    def phase(self, name: str, target: str | None = None) -> Iterator[None]:
        started, clock = time.time(), time.perf_counter()
        ok = False
        try:
            yield
            ok = True
        finally:
            self.journal.write(PhaseRecord(target=target or "", phase=name, ok=ok, started_at=started,
                                           duration_s=round(time.perf_counter() - clock, 3)))


ReservingMaker = Callable[[str, VMOptions, Slot | None], Machine]
"""Makes a VM that, given a slot, runs in it instead of waiting for one."""
TwinWork = Callable[[MachineMaker, PhaseTimer, Callable[[Installed], None]], TwinResult]


@dataclass(frozen=True)
class FinishedTwin:
    """A twin that ran to its end before the first VM booted (no VM slot was free beside it)."""

    twin: TwinResult

    def installed(self) -> Installed:
        return self.twin.installed

    def result(self) -> TwinResult:
        return self.twin


@dataclass
class BackgroundTwin:
    """A twin running in its own thread; ``installed()`` and ``result()`` wait for it."""

    target_name: str
    _thread: threading.Thread | None = None
    _machines: list[Machine] = field(default_factory=list)
    _installed: Installed | None = None
    _install_done: threading.Event = field(default_factory=threading.Event)
    _result: TwinResult | None = None
    _error: BaseException | None = None
    _cancelled: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, target_name: str, slot: Slot, make_machine: ReservingMaker, journal: Journal,
              work: TwinWork) -> BackgroundTwin:
        """Start ``work`` in a thread; its first VM gets ``slot`` (the twin makes one VM)."""
        twin = cls(target_name)
        reserved: list[Slot] = [slot]

        def make(image: str, options: VMOptions) -> Machine:
            with twin._lock:
                if twin._cancelled:
                    raise InfrastructureError("the second VM was cancelled before it started")
                machine = make_machine(image, options, reserved.pop() if reserved else None)
                twin._machines.append(machine)
                return machine

        def run() -> None:
            try:
                twin._result = work(make, JournalPhases(journal), twin._heard_installed)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread, raised where asked for
                twin._error = exc
            finally:
                for unused in reserved:
                    unused.release()
                twin._install_done.set()

        twin._thread = threading.Thread(target=run, name=f"second VM of {target_name}", daemon=True)
        twin._thread.start()
        return twin

    def _heard_installed(self, installed: Installed) -> None:
        self._installed = installed
        self._install_done.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def installed(self) -> Installed:
        """The twin's first install, as soon as it is done (or its error)."""
        self._install_done.wait()
        if self._installed is not None:
            return self._installed
        return self.result().installed

    def result(self) -> TwinResult:
        """Wait for the whole twin; its error is raised here, in the caller's thread."""
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def cancel(self) -> None:
        """Remove the twin's VMs if it still runs (a stopped run must not leave one behind)."""
        with self._lock:
            self._cancelled = True
            machines = list(self._machines)
        if not self.running:
            return
        for machine in machines:
            machine.close(interrupted=True)
        if self._thread is not None:
            self._thread.join(JOIN_AFTER_CANCEL_S)
