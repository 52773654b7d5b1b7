"""Pictures of the reports for CI artifacts, and their rendered text for the tests that read them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import InfrastructureError
from harness.report.allure.cli import embedded_files
from harness.report.browser import HeadlessChromium
from harness.report.results_dir.layout import ResultsLayout

# allure's single-page app draws each view from the data it embeds, so it needs more virtual time.
ALLURE_WAIT_MS = 15000
ALLURE_VIEWS: dict[str, str] = {"overview": "", "categories": "#categories", "suites": "#suites"}
SIGNOFF_WIDTH = 1280  # the window a release manager reads the page in: it must fit, no sideways scroll
# The sign-off has no script of its own; a measuring copy gets this one, which writes the page's
# scroll width where --dump-dom can read it.
_MEASURE = (
    "<script>addEventListener('load', () => document.documentElement.setAttribute("
    "'data-scroll-width', String(document.scrollingElement.scrollWidth)))</script>"
)
_MEASURED = re.compile(r'data-scroll-width="(\d+)"')


@dataclass(frozen=True)
class Rendered:
    screenshots: dict[str, Path] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)  # view name -> rendered DOM


def render_signoff(
    layout: ResultsLayout, chromium: HeadlessChromium, name: str = "signoff"
) -> Rendered:
    url = layout.signoff_html.absolute().as_uri()
    png = chromium.screenshot(
        url, layout.screenshots / f"{name}.png", width=SIGNOFF_WIDTH, height=1700, scrollbars=True
    )
    return Rendered({name: png}, {name: chromium.dom(url, wait_ms=500)})


def scroll_width(page: Path, chromium: HeadlessChromium, width: int = SIGNOFF_WIDTH, height: int = 900) -> int:
    """``document.scrollingElement.scrollWidth`` of ``page`` in a window ``width`` wide: more than
    ``width`` means the reader scrolls sideways."""
    copy = page.with_name(f".{page.stem}.measure.html")
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    try:
        found = _MEASURED.search(chromium.dom(copy.absolute().as_uri(), wait_ms=500, width=width, height=height))
    finally:
        copy.unlink(missing_ok=True)
    if found is None:
        raise InfrastructureError(f"Chromium did not lay out {page} (no width measured)")
    return int(found.group(1))


def _leaves(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for child in node.get("children", []):
        if "children" in child:
            yield from _leaves(child)
        else:
            yield child


def failure_route(allure_report: Path) -> str | None:
    """The route of the first failed (else broken) test in allure's categories tree."""
    index = allure_report / "index.html"
    if not index.is_file():
        return None
    data = embedded_files(index).get("data/categories.json")
    if data is None:
        return None
    leaves = list(_leaves(json.loads(data.decode("utf-8"))))
    for status in ("failed", "broken"):
        for leaf in leaves:
            if leaf.get("status") == status:
                return f"#categories/{leaf['parentUid']}/{leaf['uid']}"
    return None


def render_allure(
    layout: ResultsLayout, chromium: HeadlessChromium, prefix: str = "allure"
) -> Rendered:
    shots: dict[str, Path] = {}
    text: dict[str, str] = {}
    views = dict(ALLURE_VIEWS)
    route = failure_route(layout.allure_report)
    if route is not None:
        views["failure"] = route
    # Opened from disk, as a person double-clicking it does: the single-file report needs no server.
    index = (layout.allure_report / "index.html").absolute().as_uri()
    for view, fragment in views.items():
        url = f"{index}{fragment}"
        name = f"{prefix}-{view}"
        png = layout.screenshots / f"{name}.png"
        shots[name] = chromium.screenshot(url, png, width=1440, height=1000, wait_ms=ALLURE_WAIT_MS)
        text[name] = chromium.dom(url, wait_ms=ALLURE_WAIT_MS)
    return Rendered(shots, text)
