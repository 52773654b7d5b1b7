"""The thin API the suite uses to leave evidence: timed phases, attachments and facts.

Reached through the session fixture ``report``::

    with report.phase("install", target=image):
        result = install(...)
    report.attach_text(result.output, "installer output", target=image)
    report.describe_release(tarball=path.name, version=v, sha256=digest, profile="reference")
    report.volatile(image, vm=str(vm.name), ip=ip, port=port)

Every call lands in three places at once: the allure result of the running test (a step or an
attachment), the run journal (what the sign-off and trends read) and, for phases, the
``pytest_harness_phase_finished`` hook. Files are copied under ``<results>/evidence/<target>/`` so that
the sign-off can link them with relative paths.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import allure_commons
import pytest
from allure_commons.types import AttachmentType

from harness.bounded import both_ends
from harness.journal import DigestRecord, GenericRecord, Journal, PhaseRecord
from harness.report.identity import bound_target_key, resolve_target
from harness.report.outcome import classify_exception
from harness.report.results_dir.layout import ResultsLayout

_ATTACHMENT_TYPES: dict[str, AttachmentType] = {
    ".txt": AttachmentType.TEXT,
    ".log": AttachmentType.TEXT,
    ".diff": AttachmentType.TEXT,
    ".json": AttachmentType.JSON,
    ".html": AttachmentType.HTML,
    ".png": AttachmentType.PNG,
    ".csv": AttachmentType.CSV,
    ".xml": AttachmentType.XML,
}
# Per end of a text attachment: more is unreadable in a report, and an installer that floods its
# output must not flood the results (the JSON attachments stay whole: a cut one would not parse).
ATTACHMENT_KEEP_BYTES = 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    return _UNSAFE.sub("-", text).strip("-.") or "unnamed"


@dataclass
class ProcessState:
    """What one pytest process knows between hooks: the running test and per-target facts."""

    current_item: pytest.Item | None = None
    current_when: str = (
        ""  # setup | call | teardown: setup evidence is shared by the target's tests
    )
    volatile: dict[str, dict[str, str]] = field(default_factory=dict)
    evidence: dict[str, list[str]] = field(default_factory=dict)  # nodeid -> evidence paths
    labels: dict[str, str] = field(default_factory=dict)  # release version, profile


class Reporter:
    """What the ``report`` fixture yields: annotate a test's or fixture's ``report`` with it."""

    def __init__(
        self, layout: ResultsLayout, journal: Journal, hook: Any, state: ProcessState
    ) -> None:
        self.layout = layout
        self._journal = journal
        self._hook = hook
        self._state = state

    # -- which target ------------------------------------------------------------------------

    def current_target(self) -> str:
        item = self._state.current_item
        return resolve_target(item) if item is not None else "local"

    def bind_target(self, where: pytest.FixtureRequest | pytest.Item | None, target: str) -> None:
        """Say which image/platform the test runs on when no ``image``/``target`` parameter says it."""
        item = getattr(where, "node", where)
        if not isinstance(item, pytest.Item):
            item = self._state.current_item
        if item is not None:
            item.stash[bound_target_key] = target

    # -- phases -------------------------------------------------------------------------------

    @contextmanager
    def phase(self, name: str, target: str | None = None) -> Iterator[None]:
        """Time a phase; it shows as an allure step, a journal record and two hook calls."""
        where = target or self.current_target()
        self._hook.pytest_harness_phase_started(name=name, target=where)
        step = uuid.uuid4().hex
        allure_commons.plugin_manager.hook.start_step(
            uuid=step, title=f"{name} [{where}]", params={}
        )
        started, clock = time.time(), time.perf_counter()
        try:
            yield
        except BaseException as exc:
            self._finish_phase(step, name, where, started, clock, exc)
            raise
        self._finish_phase(step, name, where, started, clock, None)

    def _finish_phase(
        self,
        step: str,
        name: str,
        target: str,
        started: float,
        clock: float,
        exc: BaseException | None,
    ) -> None:
        record = PhaseRecord(
            target=target,
            phase=name,
            duration_s=round(time.perf_counter() - clock, 3),
            ok=exc is None,
            started_at=started,
        )
        self._journal.write(record)
        shown: BaseException | None = exc
        if (
            exc is not None
            and classify_exception(exc) == "failed"
            and not isinstance(exc, AssertionError)
        ):
            # allure calls any non-assertion broken; a product defect must show as a failed step.
            shown = AssertionError(str(exc))
        allure_commons.plugin_manager.hook.stop_step(
            uuid=step,
            exc_type=type(shown) if shown else None,
            exc_val=shown,
            exc_tb=exc.__traceback__ if exc else None,
        )
        self._hook.pytest_harness_phase_finished(phase=record)

    # -- attachments --------------------------------------------------------------------------

    def attach_file(
        self, path: Path | str, name: str | None = None, target: str | None = None
    ) -> str:
        """Copy ``path`` into the evidence folder, attach it to the running test; returns its link."""
        source = Path(path).absolute()
        where = target or self.current_target()
        title = name or source.name
        if source.is_relative_to(self.layout.root.absolute()):
            return self._register(
                source, title, where
            )  # already among the results: link, do not copy
        dest = self._evidence_path(
            where, safe_name(source.stem if name is None else title), source.suffix or ".txt"
        )
        shutil.copyfile(source, dest)
        return self._register(dest, title, where)

    def attach_text(
        self, text: str, name: str, target: str | None = None, suffix: str = ".txt"
    ) -> str:
        where = target or self.current_target()
        dest = self._evidence_path(where, safe_name(name), suffix)
        dest.write_text(text if suffix == ".json" else both_ends(text, ATTACHMENT_KEEP_BYTES), encoding="utf-8")
        return self._register(dest, name, where)

    def attach_json(self, data: Any, name: str, target: str | None = None) -> str:
        text = json.dumps(data, indent=2, sort_keys=True, default=str)
        return self.attach_text(text, name, target=target, suffix=".json")

    def _evidence_path(self, target: str, stem: str, suffix: str) -> Path:
        folder = self.layout.evidence / safe_name(target)
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / f"{stem}{suffix}"
        counter = 2
        while dest.exists():
            dest = folder / f"{stem}-{counter}{suffix}"
            counter += 1
        return dest

    def _register(self, dest: Path, title: str, target: str) -> str:
        relative = self.layout.relative(dest)
        kind = _ATTACHMENT_TYPES.get(dest.suffix.lower())
        allure_commons.plugin_manager.hook.attach_file(
            source=str(dest),
            name=title,
            attachment_type=kind,
            extension=None if kind else dest.suffix.lstrip("."),
        )
        item = self._state.current_item
        nodeid = item.nodeid if item is not None else ""
        if nodeid:
            self._state.evidence.setdefault(nodeid, []).append(relative)
        self._journal.write(
            GenericRecord(
                kind="evidence",
                target=target,
                data={
                    "name": title,
                    "path": relative,
                    "nodeid": nodeid,
                    "when": self._state.current_when,
                },
            )
        )
        return relative

    # -- facts --------------------------------------------------------------------------------

    def describe_release(
        self, tarball: str, version: str = "", sha256: str = "", profile: str = "", run_id: str = ""
    ) -> None:
        self._state.labels.update(
            {k: v for k, v in (("release", version), ("profile", profile)) if v}
        )
        self._journal.write(
            GenericRecord(
                kind="meta",
                data={
                    "release": {"tarball": tarball, "version": version, "sha256": sha256},
                    "profile": profile,
                    "run_id": run_id,
                },
            )
        )

    def describe_image(self, target: str, image_id: str = "", digest: str = "") -> None:
        self._journal.write(
            GenericRecord(
                kind="meta",
                target=target,
                data={
                    "image": {"target": target, "id": image_id or target, "digest": digest},
                },
            )
        )

    def volatile(self, target: str, **values: object) -> None:
        """VM name, IP, port...: shown on every test of ``target`` but kept out of allure's history id."""
        self._state.volatile.setdefault(target, {}).update({k: str(v) for k, v in values.items()})

    def digest(
        self, target: str, prompt_id: str, text: str | None = None, sha256: str | None = None
    ) -> str:
        """Record the hash of a golden completion; give the text or its sha256."""
        if sha256 is None:
            if text is None:
                raise ValueError("digest() needs the completion text or its sha256")
            sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
        self._journal.write(DigestRecord(target=target, prompt_id=prompt_id, sha256=sha256))
        return sha256

    def footprint(self, target: str, layers: Mapping[str, int], source: str = "installed") -> None:
        """Bytes per layer (or per top-level directory) of the release on ``target``."""
        self._journal.write(
            GenericRecord(
                kind="footprint",
                target=target,
                data={"source": source, "layers": {k: int(v) for k, v in layers.items()}},
            )
        )

    def egress(self, target: str, attempts: Sequence[Mapping[str, Any]]) -> None:
        """Network attempts seen from the guest: dicts with e.g. ``host``, ``address``, ``port``, ``proto``."""
        self._journal.write(
            GenericRecord(
                kind="egress", target=target, data={"attempts": [dict(a) for a in attempts]}
            )
        )
