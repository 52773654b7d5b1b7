"""The sign-off page: one self-contained HTML file (inline CSS, no scripts, no external assets).

Reading order follows the reader's questions: may it ship? what failed and where is the evidence?
how does each image fare? then timings, footprint, digests, network attempts and the environment.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

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

CSS = """
:root { --ok:#1a7f37; --bad:#cf222e; --warn:#9a6700; --muted:#6e7781; --line:#d0d7de; --bg:#f6f8fa; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
       color:#1f2328; background:#fff; }
main { max-width:1100px; margin:0 auto; padding:0 20px 40px; }
/* Long names (tarballs, node ids, evidence files) break anywhere rather than widen the page. */
main, .verdict { overflow-wrap:break-word; }
.wide { overflow-x:auto; }
a { color:#0969da; }
.verdict { padding:22px 20px 18px; color:#fff; }
.verdict.ship { background:var(--ok); } .verdict.noship { background:var(--bad); }
.verdict .inner { max-width:1100px; margin:0 auto; padding:0 20px; }
.verdict h1 { margin:0; font-size:44px; letter-spacing:.02em; line-height:1.1; }
.verdict .release { font-size:17px; margin-top:6px; opacity:.95; word-break:break-all; }
.verdict ul { margin:10px 0 0; padding-left:20px; font-size:16px; }
.counts { display:flex; flex-wrap:wrap; gap:8px; margin-top:12px; }
.counts span { background:rgba(255,255,255,.18); border-radius:12px; padding:2px 10px; font-size:14px; }
h2 { font-size:19px; margin:28px 0 10px; padding-bottom:4px; border-bottom:1px solid var(--line); }
table { border-collapse:collapse; width:100%; font-size:14px; }
th, td { border:1px solid var(--line); padding:5px 8px; text-align:left; vertical-align:top; }
th { background:var(--bg); font-weight:600; }
td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
tr.area th { background:#eaeef2; text-transform:uppercase; font-size:12px; letter-spacing:.05em; color:#57606a; }
.cell { font-weight:600; white-space:nowrap; text-align:center; }
.passed { color:var(--ok); } .failed { color:var(--bad); } .broken { color:var(--warn); }
.skipped, .notrun { color:var(--muted); }
td.failed { background:#ffebe9; } td.broken { background:#fff8c5; } td.passed { background:#f0fff4; }
.card { border:1px solid var(--line); border-left:6px solid var(--bad); border-radius:6px; padding:10px 14px;
        margin:10px 0; background:#fff; }
.card.card-broken { border-left-color:var(--warn); }
.card h3 { margin:0 0 4px; font-size:16px; }
.badge { display:inline-block; font-size:12px; font-weight:600; padding:1px 8px; border-radius:10px;
         background:#ffebe9; color:var(--bad); margin-right:6px; vertical-align:middle; }
.card.card-broken .badge { background:#fff8c5; color:var(--warn); }
pre { background:var(--bg); border:1px solid var(--line); border-radius:6px; padding:8px 10px; margin:6px 0;
      white-space:pre-wrap; word-break:break-word; font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; }
code, .mono { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:13px; }
ul.links { list-style:none; margin:4px 0 0; padding:0; display:flex; flex-wrap:wrap; gap:2px 14px; }
.skip { border-left:6px solid var(--line); padding:6px 12px; margin:6px 0; background:var(--bg); border-radius:4px; }
.skip .reason { white-space:pre-wrap; }
.muted { color:var(--muted); }
.bar { height:6px; background:#8c959f; border-radius:3px; margin-top:3px; }
.bar.bad { background:var(--bad); }
.regression { border-left:6px solid var(--warn); padding:6px 12px; background:#fff8c5; margin:6px 0; border-radius:4px; }
footer { margin-top:32px; font-size:13px; color:var(--muted); }
"""


def _href(path: str) -> str:
    return escape(quote(path, safe="/#"), quote=True)


def _link(path: str, label: str | None = None) -> str:
    return f'<a href="{_href(path)}">{escape(label or path.rsplit("/", 1)[-1])}</a>'


def _table(head: list[str], rows: list[str]) -> str:
    """A table in a box of its own width: a matrix of many images scrolls inside it, the page not."""
    header = "".join(f"<th>{h}</th>" for h in head)
    return (
        f'<div class="wide"><table><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _anchor(check: CheckResult) -> str:
    prefix = "skip-" if check.outcome == "skipped" else "fail-"
    return prefix + "".join(ch if ch.isalnum() else "-" for ch in f"{check.target}-{check.check}")


def _verdict(model: SignoffModel) -> str:
    release = model.facts.release
    parts = [release.tarball or "no release under test"]
    if release.version_label:
        parts.append(f"version {release.version_label}")
    if release.profile:
        parts.append(f"profile {release.profile}")
    if release.sha256:
        parts.append(f"sha256 {short_sha(release.sha256, 16)}")
    counts = model.counts()
    chips = [f"{SYMBOLS[k]} {n} {k}" for k, n in counts.items() if n or k in ("passed", "failed")]
    chips.append(f"{len(model.targets)} image{'s' if len(model.targets) != 1 else ''}")
    if model.total_s is not None:
        chips.append(f"total time {seconds(model.total_s)}")
    # How the VMs started (--warm/--cold), journaled by harness.vm.fixtures.
    chips += [f"{k}: {v}" for k, v in sorted(model.facts.extra.items()) if k.startswith("vm start")]
    reasons = "".join(f"<li>{escape(r)}</li>" for r in model.verdict.reasons)
    css = "ship" if model.verdict.ship else "noship"
    return (
        f'<header class="verdict {css}" id="verdict"><div class="inner">'
        f"<h1>{model.verdict.headline}</h1>"
        f'<div class="release">{escape(" · ".join(parts))}</div>'
        f"<ul>{reasons}</ul>"
        f'<div class="counts">{"".join(f"<span>{escape(c)}</span>" for c in chips)}</div>'
        "</div></header>"
    )


def _links(links: list[str]) -> str:
    """Links as a list that wraps: dozens of evidence files make lines, never one endless word."""
    return f'<ul class="links">{"".join(f"<li>{link}</li>" for link in links)}</ul>'


def _evidence_links(paths: tuple[str, ...]) -> str:
    if not paths:
        return '<span class="muted">no evidence attached</span>'
    return _links([_link(p) for p in paths])


def _where(pairs: list[tuple[str, tuple[str, ...]]]) -> str:
    return " · ".join(
        f'{escape(check)} <span class="muted">on</span> {escape(", ".join(targets))}'
        for check, targets in pairs
    )


def _failures(model: SignoffModel) -> str:
    groups = model.failure_groups()
    if not groups and not model.problems:
        return ""
    cards = []
    for group in groups:
        lead = group.lead
        anchors = "".join(f'<span id="{_anchor(member)}"></span>' for member in group.members)
        count = f" ({len(group.members)} checks, same cause)" if len(group.members) > 1 else ""
        nodeids = "<br>".join(escape(m.nodeid) for m in group.members if m.nodeid)
        cards.append(
            f'<div class="card card-{lead.outcome}">{anchors}'
            f'<h3><span class="badge">{escape(lead.category or lead.outcome)}</span>{_where(group.where())} '
            f'<span class="{lead.outcome}">{SYMBOLS[lead.outcome]} {lead.outcome}{count}</span></h3>'
            f"<pre>{escape(first_lines(lead.message) or 'no message')}</pre>"
            f'<div class="evidence">Evidence: {_evidence_links(group.evidence)}</div>'
            + "".join(f'<div class="repro">Reproduce: <code>{escape(cmd)}</code></div>'
                      for m in group.members if (cmd := model.repro(m)))
            + (
                f'<details class="muted mono"><summary>tests</summary>{nodeids}</details>'
                if nodeids
                else ""
            )
            + "</div>"
        )
    for problem in model.problems:
        cards.append(
            f'<div class="card card-broken"><h3><span class="badge">outside any check</span></h3>'
            f"<pre>{escape(first_lines(problem))}</pre></div>"
        )
    return f'<section id="failures"><h2>What failed</h2>{"".join(cards)}</section>'


def _skipped(model: SignoffModel) -> str:
    """Why each skipped check did not run, in the page's text (a tooltip is no place for it)."""
    groups = model.skipped_groups()
    if not groups:
        return ""
    items = []
    for group in groups:
        anchors = "".join(f'<span id="{_anchor(member)}"></span>' for member in group.members)
        reason = first_lines(group.lead.message, 3) or "no reason given"
        items.append(
            f'<div class="skip">{anchors}<div>{_where(group.where())}</div>'
            f'<div class="reason muted">{escape(reason)}</div></div>'
        )
    return f'<section id="skipped"><h2>Skipped, and why</h2>{"".join(items)}</section>'


def _regressions(model: SignoffModel) -> str:
    if not model.regressions:
        return ""
    items = "".join(
        f'<div class="regression"><strong>{escape(r.kind)}</strong> · {escape(r.subject)} on {escape(r.target)}: '
        f'{escape(r.before)} → {escape(r.after)} <span class="muted">{escape(r.detail)}</span></div>'
        for r in model.regressions
    )
    return f'<section id="regressions"><h2>Regressions since the previous run</h2>{items}</section>'


def _matrix(model: SignoffModel) -> str:
    if not model.check_rows():
        return ""
    rows: list[str] = []
    current_area = None
    for area, check in model.check_rows():
        if area != current_area:
            rows.append(
                f'<tr class="area"><th colspan="{len(model.targets) + 1}">{escape(area)}</th></tr>'
            )
            current_area = area
        cells = []
        for target in model.targets:
            result = model.cell(target, check)
            if result is None:
                cells.append(f'<td class="cell notrun" title="not run">{NOT_RUN}</td>')
                continue
            label = f"{SYMBOLS[result.outcome]} {result.outcome}"
            if result.outcome in ("failed", "broken", "skipped"):
                label = f'<a class="{result.outcome}" href="#{_anchor(result)}">{label}</a>'
            title = escape(first_lines(result.message, 3), quote=True)
            cells.append(f'<td class="cell {result.outcome}" title="{title}">{label}</td>')
        rows.append(f"<tr><td>{escape(check)}</td>{''.join(cells)}</tr>")
    head = ["Check"] + [escape(t) for t in model.targets]
    return f'<section id="matrix"><h2>Checks × images</h2>{_table(head, rows)}</section>'


def _timing_rows(model: SignoffModel, names: list[str], longest: float) -> list[str]:
    rows = []
    for name in names:
        cells = []
        for target in model.targets:
            timing = model.phase(target, name)
            if timing is None:
                cells.append('<td class="num muted">–</td>')
                continue
            times = f" (×{timing.count})" if timing.count > 1 else ""
            width = max(2.0, 100.0 * timing.total_s / longest)
            bar = f'<div class="bar{"" if timing.ok else " bad"}" style="width:{width:.0f}%"></div>'
            cells.append(f'<td class="num">{seconds(timing.total_s)}{times}{bar}</td>')
        rows.append(f"<tr><td>{escape(name)}</td>{''.join(cells)}</tr>")
    return rows


def _timings(model: SignoffModel) -> str:
    if not model.phases:
        return ""
    longest = max((p.total_s for p in model.phases if p.phase != TOTAL_PHASE), default=0.0) or 1.0
    head = ["Phase"] + [escape(t) for t in model.targets]
    main = _table(head, _timing_rows(model, model.main_phases(), longest))
    if model.total_s is not None:
        main += f"<p><strong>Total time {seconds(model.total_s)}</strong> (the whole run, start to end)</p>"
    details = ""
    if model.detail_phases():
        table = _table(head, _timing_rows(model, model.detail_phases(), longest))
        details = f"<details><summary>finer steps ({len(model.detail_phases())})</summary>{table}</details>"
    limits = "".join(f'<p class="muted">{escape(path.target)}: {escape(path.line())}</p>' for path in model.critical_paths)
    return f'<section id="timings"><h2>Phase timings</h2>{main}{limits}{details}</section>'


def _static(model: SignoffModel) -> str:
    checks = model.tarball_checks()
    if not checks:
        return ""
    rows = []
    for check in checks:
        label = f"{SYMBOLS[check.outcome]} {check.outcome}"
        if check.outcome in ("failed", "broken"):
            label = f'<a class="{check.outcome}" href="#{_anchor(check)}">{label}</a>'
        summary = escape(first_lines(check.message, 1)) if check.message else ""
        rows.append(
            f'<tr><td>{escape(check.check)}</td><td class="cell {check.outcome}">{label}</td>'
            f'<td class="muted">{summary}</td></tr>'
        )
    table = _table(["Check", "Outcome", "Finding"], rows)
    return f'<section id="static"><h2>Static checks of the tarball (no VM)</h2>{table}</section>'


def _footprint(model: SignoffModel) -> str:
    if not model.footprints:
        return ""
    rows = []
    for fp in model.footprints:
        layers = ", ".join(f"{escape(k)} {human_bytes(v)}" for k, v in sorted(fp.layers.items()))
        rows.append(
            f"<tr><td>{escape(fp.target)}</td><td>{escape(fp.source)}</td>"
            f'<td class="num">{human_bytes(fp.total)}</td><td>{layers}</td></tr>'
        )
    return f'<section id="footprint"><h2>Footprint</h2>{_table(["Image", "Measured", "Total", "Layers"], rows)}</section>'


def _digests(model: SignoffModel) -> str:
    if not model.digests:
        return ""
    prompts = sorted({d.prompt_id for d in model.digests})
    rows = []
    for prompt in prompts:
        cells = []
        for target in model.targets:
            found = next(
                (d for d in model.digests if d.target == target and d.prompt_id == prompt), None
            )
            if found is None:
                cells.append('<td class="muted">–</td>')
            elif found.stable:
                cells.append(
                    f'<td class="mono" title="{escape(found.sha256s[0])}">{short_sha(found.sha256s[0])}</td>'
                )
            else:
                shas = " ≠ ".join(short_sha(s) for s in found.sha256s)
                cells.append(f'<td class="mono failed" title="differs within the run">{shas}</td>')
        rows.append(f"<tr><td>{escape(prompt)}</td>{''.join(cells)}</tr>")
    head = ["Prompt"] + [escape(t) for t in model.targets]
    return (
        f'<section id="digests"><h2>Determinism digests</h2><p class="muted">sha256 of each golden '
        f"completion (first 12 hex digits).</p>{_table(head, rows)}</section>"
    )


def _egress(model: SignoffModel) -> str:
    if not model.egress:
        return ""
    rows = [
        f'<tr><td>{escape(e.target)}</td><td class="mono">'
        f"{escape(', '.join(f'{k}={v}' for k, v in sorted(e.attempt.items())))}</td></tr>"
        for e in model.egress
    ]
    return (
        f'<section id="egress"><h2>Network attempts</h2>'
        f"{_table(['Image', 'Attempt'], rows)}</section>"
    )


def _evidence(model: SignoffModel) -> str:
    if not model.evidence:
        return ""
    rows = []
    for target in sorted({e.target for e in model.evidence}):
        links = _links([_link(e.path, e.name) for e in model.evidence if e.target == target])
        rows.append(f'<tr><td>{escape(target)}</td><td class="evidence">{links}</td></tr>')
    return f'<section id="evidence"><h2>Evidence</h2>{_table(["Image", "Files"], rows)}</section>'


def _images(model: SignoffModel) -> str:
    """Each image by its ``--image`` name and digest: the pair ``harness images list`` shows."""
    if not model.targets:
        return ""
    images = [model.image(target) for target in model.targets]
    # A target is its image's name unless several releases share one image.
    named = any(image.name != image.target for image in images)
    rows = []
    for image in images:
        digest = escape(image.digest) if image.digest else '<span class="muted">unknown</span>'
        target = f"<td>{escape(image.target)}</td>" if named else ""
        rows.append(f'<tr>{target}<td>{escape(image.name)}</td><td class="mono">{digest}</td></tr>')
    head = ["Target", "Image", "Digest"] if named else ["Image", "Digest"]
    return f'<section id="images"><h2>Images</h2>{_table(head, rows)}</section>'


def _environment(model: SignoffModel) -> str:
    rows = [
        f'<tr><th>{escape(k)}</th><td class="mono">{escape(v)}</td></tr>'
        for k, v in environment_entries(model.facts).items()
    ]
    return (
        f'<section id="environment"><h2>Environment</h2><div class="wide"><table><tbody>{"".join(rows)}'
        "</tbody></table></div></section>"
    )


def _footer(model: SignoffModel) -> str:
    links = " · ".join(_link(path, name) for name, path in model.links.items())
    return (
        f"<footer>{links}<br>Generated {timestamp(model.generated_at)} by portability-harness "
        f"{escape(model.facts.host.harness_version)}.</footer>"
    )


def render_html(model: SignoffModel) -> str:
    release = model.facts.release.tarball or "portability run"
    body = "".join(
        [
            _verdict(model),
            "<main>",
            _matrix(model),
            _static(model),
            _failures(model),
            _skipped(model),
            _regressions(model),
            _timings(model),
            _footprint(model),
            _digests(model),
            _egress(model),
            _evidence(model),
            _images(model),
            _environment(model),
            _footer(model),
            "</main>",
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{model.verdict.headline}: {escape(release)}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )
