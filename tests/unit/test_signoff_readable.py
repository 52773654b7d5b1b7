"""A stranger's first hour with the sign-off: skip reasons in the text, one total time, and each
image under one name and one digest in the sign-off, ``harness images list`` and ``harness inspect``."""

# ruff: noqa: F811  (pytest fixtures imported from qemu_fakes are parameters here)
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from qemu_fakes import FakeImages, fake_build, fake_images, write_recipe  # noqa: F401  (fixtures)

from harness import cli
from harness.images.recipe import recipe_hash
from harness.inspect.render import target_lines
from harness.inspect.targets import load_target
from harness.journal import CheckRecord, GenericRecord, PhaseRecord
from harness.report.results_dir.layout import ResultsLayout
from harness.report.signoff.assemble import build_model
from harness.report.signoff.html import render_html
from harness.report.signoff.markdown import render_markdown
from harness.report.signoff.model import SignoffModel
from harness.report.signoff.write import write_signoff
from harness.vm.qemu.provider import QemuProvider
from tests.unit.test_report_model import passing_run, records

IMAGE = "linux-debian12"
SKIP_REASON = "no macOS host on this runner: run on a tart host"


class _Text(HTMLParser):
    """The words a reader sees: text nodes only, no attribute (a title= tooltip is not seen)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._hidden += tag in ("style", "title", "script")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("style", "title", "script")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def skipping_model() -> SignoffModel:
    items = passing_run((IMAGE,)) + [
        CheckRecord(IMAGE, "rosetta_absent", "skipped", SKIP_REASON, area="install", nodeid="t::r"),
        CheckRecord(IMAGE, "signature_valid", "skipped", SKIP_REASON, area="install", nodeid="t::s"),
    ]
    return build_model(records(*items))


def test_skip_reasons_are_text_on_the_page_and_in_the_markdown() -> None:
    model = skipping_model()
    page = visible_text(render_html(model))
    assert SKIP_REASON in page, "a skip reason only in a tooltip is one nobody reads"
    assert "rosetta_absent" in page.split(SKIP_REASON)[0]
    assert page.count(SKIP_REASON) == 1, "two checks skipped for one reason: said once"
    markdown = render_markdown(model)
    assert SKIP_REASON in markdown and "rosetta_absent" in markdown and "signature_valid" in markdown


def timed_model() -> SignoffModel:
    """A run of 414.4 s whose deployment clock says 411 s and whose phases span 409 s."""
    items = [
        r for r in passing_run((IMAGE,)) if getattr(r, "kind", "") != "run_end"
    ] + [
        PhaseRecord(IMAGE, "boot", 30.0, started_at=101.0),
        PhaseRecord(IMAGE, "install", 379.0, started_at=131.0),
        PhaseRecord(IMAGE, "total", 411.0, started_at=100.0),
        GenericRecord("run_end", {"finished_at": 514.4, "exitstatus": 0}),
    ]
    return build_model(records(*items))


# Every place a duration is stated as the run's whole: "total time X", "the run's X", "took X".
TOTAL_STATED = re.compile(r"(?:[Tt]otal(?: time)?|run's|took) \**(\d+ min \d+ s|\d+(?:\.\d+)? s)")


def test_one_total_time_shown_the_same_way_everywhere(tmp_path: Path) -> None:
    model = timed_model()
    assert model.total_s == pytest.approx(414.4)
    layout = ResultsLayout(tmp_path)
    write_signoff(layout, model, environ={})
    page = visible_text(layout.signoff_html.read_text(encoding="utf-8"))
    markdown = layout.signoff_md.read_text(encoding="utf-8")
    saved = json.loads(layout.signoff_json.read_text(encoding="utf-8"))
    for text in (page, markdown):
        assert "6 min 54 s" in text
        # The deployment's 411 s and the phases' span must not appear as totals of their own.
        assert "6 min 51 s" not in text and "411" not in text and "wall time" not in text
        assert set(TOTAL_STATED.findall(text)) == {"6 min 54 s"}, TOTAL_STATED.findall(text)
    assert saved["total_s"] == pytest.approx(414.4)
    assert all(p["phase"] != "total" for p in saved["phases"])


@pytest.fixture
def debian_store(fake_images: FakeImages, monkeypatch: pytest.MonkeyPatch) -> tuple[FakeImages, str]:
    """A store that has a current build of linux-debian12, and the command pointed at it."""
    directory = write_recipe(fake_images.recipes_root, "debian12")
    digest = recipe_hash(directory)
    fake_build(fake_images.store, IMAGE, digest)
    monkeypatch.setenv("HARNESS_CACHE", str(fake_images.paths.cache))
    monkeypatch.setenv("HARNESS_STATE", str(fake_images.paths.state))
    monkeypatch.setenv("HARNESS_VM_IMAGES", str(fake_images.recipes_root))
    return fake_images, digest


def test_one_name_and_one_digest_per_image_in_signoff_images_list_and_inspect(
    debian_store: tuple[FakeImages, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, digest = debian_store
    # What the suite writes: the target's inputs with the provider's digest, then a meta record
    # that names the image without one (harness.plugins.chain).
    booted = QemuProvider(images.paths, images.store).image_digest(IMAGE)
    items = passing_run((IMAGE,)) + [
        GenericRecord("target", {"target": IMAGE, "image": IMAGE, "image_digest": booted}, IMAGE),
        GenericRecord("meta", {"image": {"target": IMAGE, "id": IMAGE, "digest": ""}}, IMAGE),
        GenericRecord("footprint", {"source": "static", "layers": {"app": 5}}, "debian-12"),
    ]
    layout = ResultsLayout(tmp_path / "results")
    write_signoff(layout, build_model(records(*items)), environ={})
    saved = json.loads(layout.signoff_json.read_text(encoding="utf-8"))
    assert [(i["image_id"], i["digest"]) for i in saved["facts"]["images"]] == [(IMAGE, digest)]
    page = visible_text(layout.signoff_html.read_text(encoding="utf-8"))
    markdown = layout.signoff_md.read_text(encoding="utf-8")
    assert f"{IMAGE} {digest}" in page and f"| {IMAGE} | `{digest}` |" in markdown
    for text in (page, markdown):
        assert "debian-12" not in text, "the image goes by its --image name only"

    assert cli.main(["images", "list"]) == 0
    (row,) = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert row[:2] == [IMAGE, digest]

    target = load_target("debian-12")
    shown = "\n".join(target_lines("debian-12", target.source))
    assert f"Image:   {IMAGE}, digest {digest}" in shown
    assert target.image_build not in shown, "the build the list was read from is no image digest"
    hashes = set(re.findall(r"\b[0-9a-f]{16}\b", shown))
    assert hashes == {digest}
