"""Pictures of the reports for CI artifacts, and their rendered text for the tests that read them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.report.browser import HeadlessChromium
from harness.report.layout import ResultsLayout
from harness.report.serve import serving

# allure's single-page app draws each view from JSON it fetches, so it needs more virtual time.
ALLURE_WAIT_MS = 15000
ALLURE_VIEWS: dict[str, str] = {"overview": "", "categories": "#categories", "suites": "#suites"}


@dataclass(frozen=True)
class Rendered:
    screenshots: dict[str, Path] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)  # view name -> rendered DOM


def render_signoff(layout: ResultsLayout, chromium: HeadlessChromium, name: str = "signoff") -> Rendered:
    url = layout.signoff_html.absolute().as_uri()
    png = chromium.screenshot(url, layout.screenshots / f"{name}.png", width=1280, height=1700)
    return Rendered({name: png}, {name: chromium.dom(url, wait_ms=500)})


def render_allure(layout: ResultsLayout, chromium: HeadlessChromium, prefix: str = "allure") -> Rendered:
    shots: dict[str, Path] = {}
    text: dict[str, str] = {}
    with serving(layout.allure_report) as base:
        for view, fragment in ALLURE_VIEWS.items():
            url = f"{base}index.html{fragment}"
            name = f"{prefix}-{view}"
            shots[name] = chromium.screenshot(url, layout.screenshots / f"{name}.png", width=1440, height=1000,
                                              wait_ms=ALLURE_WAIT_MS)
            text[name] = chromium.dom(url, wait_ms=ALLURE_WAIT_MS)
    return Rendered(shots, text)
