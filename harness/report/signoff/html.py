"""The sign-off page: one self-contained HTML file (inline CSS, no scripts, no external assets),
rendered from ``templates/signoff.html.j2`` with autoescaping on: the template writes every tag,
and every value from the run reaches the page as text.

Reading order follows the reader's questions: may it ship? what failed and where is the evidence?
how does each image fare? then timings, footprint, digests, network attempts and the environment.
"""

from __future__ import annotations

from functools import cache
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined, Template

from harness.report.allure.extras import environment_entries
from harness.report.formatting import (
    NOT_RUN,
    SYMBOLS,
    first_lines,
    human_bytes,
    seconds,
    short_sha,
    timestamp,
)
from harness.report.signoff.model import TOTAL_PHASE, CheckResult, SignoffModel

TEMPLATE = "signoff.html.j2"


def anchor(check: CheckResult) -> str:
    """The id the matrix links a failed, broken or skipped cell to."""
    prefix = "skip-" if check.outcome == "skipped" else "fail-"
    return prefix + "".join(ch if ch.isalnum() else "-" for ch in f"{check.target}-{check.check}")


def href(path: str) -> str:
    """A results-relative path as a URL (autoescaping then makes it an attribute)."""
    return quote(path, safe="/#")


def release_line(model: SignoffModel) -> str:
    release = model.facts.release
    parts = [release.tarball or "no release under test"]
    if release.version_label:
        parts.append(f"version {release.version_label}")
    if release.profile:
        parts.append(f"profile {release.profile}")
    if release.sha256:
        parts.append(f"sha256 {short_sha(release.sha256, 16)}")
    return " · ".join(parts)


def chips(model: SignoffModel) -> list[str]:
    counts = model.counts()
    found = [f"{SYMBOLS[k]} {n} {k}" for k, n in counts.items() if n or k in ("passed", "failed")]
    found.append(f"{len(model.targets)} image{'s' if len(model.targets) != 1 else ''}")
    if model.total_s is not None:
        found.append(f"total time {seconds(model.total_s)}")
    # How the VMs started (--warm/--cold), journaled by harness.plugins.vm.
    found += [f"{k}: {v}" for k, v in sorted(model.facts.extra.items()) if k.startswith("vm start")]
    return found


def percent(part: float, whole: float) -> str:
    """A timing bar's width: never thinner than 2% so that a short phase still shows one."""
    return f"{max(2.0, 100.0 * part / whole):.0f}"


@cache
def _template() -> Template:
    environment = Environment(
        loader=PackageLoader("harness.report.signoff", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(first_lines=first_lines, human_bytes=human_bytes, seconds=seconds,
                               short_sha=short_sha, timestamp=timestamp, href=href)
    environment.globals.update(SYMBOLS=SYMBOLS, NOT_RUN=NOT_RUN, anchor=anchor, chips=chips,
                               release_line=release_line, percent=percent,
                               environment_entries=environment_entries)
    return environment.get_template(TEMPLATE)


def render_html(model: SignoffModel) -> str:
    images = [model.image(target) for target in model.targets]
    longest = max((p.total_s for p in model.phases if p.phase != TOTAL_PHASE), default=0.0) or 1.0
    return _template().render(
        model=model,
        images=images,
        named_targets=any(image.name != image.target for image in images),
        longest=longest,
    )
