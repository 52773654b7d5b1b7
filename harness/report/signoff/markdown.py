"""The sign-off as Markdown, sized for a CI job summary ($GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

from harness.report.formatting import NOT_RUN, SYMBOLS, human_bytes, seconds, short_sha
from harness.report.signoff.model import SignoffModel

EMOJI = {"passed": "✅", "failed": "❌", "broken": "⚠️", "skipped": "➖"}
MESSAGE_CHARS = 300


def _cell(text: str) -> str:
    """Table-safe text: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def render_markdown(model: SignoffModel) -> str:
    release = model.facts.release
    mark = "✅" if model.verdict.ship else "⛔"
    lines = [
        f"## {mark} {model.verdict.headline} — {_cell(release.tarball or 'no release under test')}",
        "",
    ]
    lines += [f"- {_cell(r)}" for r in model.verdict.reasons]
    facts = [
        f"version `{release.version_label}`" if release.version_label else "",
        f"profile `{release.profile}`" if release.profile else "",
        f"sha256 `{short_sha(release.sha256, 16)}`" if release.sha256 else "",
        f"{len(model.targets)} image(s): {', '.join(model.targets)}" if model.targets else "",
        f"total time {seconds(model.total_s)}" if model.total_s is not None else "",
        # How the VMs started (--warm/--cold), journaled by harness.plugins.vm.
        *(
            f"{_cell(k)}: {_cell(v)}"
            for k, v in sorted(model.facts.extra.items())
            if k.startswith("vm start")
        ),
    ]
    counts = ", ".join(f"{n} {k}" for k, n in model.counts().items() if n)
    lines += ["", " · ".join(f for f in facts if f), "", f"Checks: {counts or 'none'}", ""]

    groups = model.failure_groups()
    if groups or model.problems:
        lines += ["### What failed", ""]
        rows = [
            [
                f"{EMOJI[g.lead.outcome]} "
                + "; ".join(
                    f"{_cell(check)} on {_cell(', '.join(targets))}" for check, targets in g.where()
                ),
                _cell(g.lead.category),
                _cell(g.lead.message)[:MESSAGE_CHARS],
                _cell(", ".join(g.evidence)) or "–",
            ]
            for g in groups
        ]
        rows += [
            ["⚠️ (outside any check)", "", _cell(p)[:MESSAGE_CHARS], "–"] for p in model.problems
        ]
        lines += _table(["Checks", "Category", "Message", "Evidence"], rows)
        repros = [cmd for g in groups for m in g.members if (cmd := model.repro(m))]
        if repros:
            lines += ["A kept VM where the check failed (then `harness shell --name VM`):", ""]
            lines += [f"- `{cmd}`" for cmd in repros]
            lines.append("")

    skipped = model.skipped_groups()
    if skipped:
        lines += ["### Skipped, and why", ""]
        lines += _table(
            ["Checks", "Reason"],
            [
                [
                    "; ".join(
                        f"{_cell(check)} on {_cell(', '.join(targets))}" for check, targets in g.where()
                    ),
                    _cell(g.lead.message)[:MESSAGE_CHARS] or "no reason given",
                ]
                for g in skipped
            ],
        )

    if model.regressions:
        lines += ["### Regressions since the previous run", ""]
        lines += [
            f"- **{r.kind}** {_cell(r.subject)} on {_cell(r.target)}: {_cell(r.before)} → {_cell(r.after)}"
            f" ({_cell(r.detail)})"
            for r in model.regressions
        ]
        lines.append("")

    if model.check_rows():
        lines += ["### Checks × images", ""]
        rows = []
        for area, check in model.check_rows():
            row = [f"{_cell(check)} <sub>{_cell(area)}</sub>"]
            for target in model.targets:
                result = model.cell(target, check)
                row.append(f"{EMOJI[result.outcome]} {result.outcome}" if result else NOT_RUN)
            rows.append(row)
        lines += _table(["Check", *model.targets], rows)

    static = model.tarball_checks()
    if static:
        lines += ["### Static checks of the tarball", ""]
        lines += _table(
            ["Check", "Outcome", "Finding"],
            [
                [
                    _cell(c.check),
                    f"{EMOJI[c.outcome]} {c.outcome}",
                    _cell(c.message.strip().splitlines()[0])[:MESSAGE_CHARS]
                    if c.message.strip()
                    else "",
                ]
                for c in static
            ],
        )

    if model.phases:
        lines += ["### Phase timings", ""]
        rows = []
        for name in model.main_phases():
            row = [name]
            for target in model.targets:
                timing = model.phase(target, name)
                row.append(
                    "–"
                    if timing is None
                    else seconds(timing.total_s) + (f" ×{timing.count}" if timing.count > 1 else "")
                )
            rows.append(row)
        lines += _table(["Phase", *model.targets], rows)
        if model.total_s is not None:
            lines += [f"**Total time {seconds(model.total_s)}** (the whole run, start to end)", ""]
        lines += [f"- {path.target}: {path.line()}" for path in model.critical_paths]
        if model.critical_paths:
            lines.append("")

    if model.footprints:
        lines += ["### Footprint", ""]
        lines += _table(
            ["Image", "Measured", "Total", "Layers"],
            [
                [
                    fp.target,
                    fp.source,
                    human_bytes(fp.total),
                    ", ".join(f"{k} {human_bytes(v)}" for k, v in sorted(fp.layers.items())),
                ]
                for fp in model.footprints
            ],
        )

    if model.digests:
        lines += ["### Determinism digests", ""]
        rows = []
        for prompt in sorted({d.prompt_id for d in model.digests}):
            row = [_cell(prompt)]
            for target in model.targets:
                found = next(
                    (d for d in model.digests if d.target == target and d.prompt_id == prompt), None
                )
                row.append(
                    "–" if found is None else " ≠ ".join(f"`{short_sha(s)}`" for s in found.sha256s)
                )
            rows.append(row)
        lines += _table(["Prompt", *model.targets], rows)

    if model.targets:
        lines += ["### Images", ""]
        lines += _table(
            ["Image", "Digest"],
            [
                [
                    _cell(image.name) + (f" ({_cell(image.target)})" if image.name != image.target else ""),
                    f"`{image.digest}`" if image.digest else "unknown",
                ]
                for image in (model.image(t) for t in model.targets)
            ],
        )

    if model.egress:
        lines += ["### Network attempts", ""]
        lines += [
            f"- {_cell(e.target)}: " + ", ".join(f"{k}={v}" for k, v in sorted(e.attempt.items()))
            for e in model.egress
        ]
        lines.append("")
    legend = ", ".join([*(f"{EMOJI[k]} {k}" for k in SYMBOLS), f"{NOT_RUN} not run"])
    lines += [
        f"<sub>{legend}. Full page: signoff.html; allure report: allure-report/index.html</sub>",
        "",
    ]
    return "\n".join(lines)
