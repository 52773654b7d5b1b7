"""Failure categories, shared by allure's ``categories.json`` and the sign-off page.

allure matches a category by status and by a regular expression over the *whole* status message.
Free-form messages from the checks would make such expressions guesswork, so the report plugin
starts every failed or broken message with the check's area in brackets (``[install] ...``) and
the categories match that tag. The sign-off uses :func:`categorize` with the very same
expressions, so both reports file a failure under the same name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from harness.journal import Outcome


@dataclass(frozen=True)
class Category:
    name: str
    statuses: tuple[Outcome, ...]
    message_regex: str
    description: str

    def matches(self, status: str, message: str) -> bool:
        # Java's String.matches, which allure uses, is a full match: so is this.
        return status in self.statuses and re.fullmatch(self.message_regex, message) is not None

    def to_allure(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "matchedStatuses": list(self.statuses),
            "messageRegex": self.message_regex,
        }


def tag(area: str) -> str:
    return f"[{area}] "


def tagged(area: str, message: str) -> str:
    """``message`` with its area tag in front, once."""
    prefix = tag(area)
    return message if message.startswith(prefix) else prefix + message


NAMED_AREAS: tuple[str, ...] = ("install", "determinism", "egress", "static", "server")


def _area_regex(area: str) -> str:
    return rf"(?s)\[{re.escape(area)}\] .*"


# Golden answers that changed because this is another build than the approved one. It comes
# before "Determinism drift" (the first matching category wins) so such a change is never filed
# as drift: a new build's answers need review and approval, not a hunt for nondeterminism.
CHANGED_SINCE_APPROVED = "Changed since approved"
CHANGED_SINCE_APPROVED_REGEX = r"(?s)\[determinism\] (?:\w+: )?goldens describe build .*"

CATEGORIES: tuple[Category, ...] = (
    Category(
        "Install defect",
        ("failed",),
        _area_regex("install"),
        "The release did not install offline, wrote outside its tree, or its tree differs between clean VMs.",
    ),
    Category(
        CHANGED_SINCE_APPROVED,
        ("failed", "skipped"),
        CHANGED_SINCE_APPROVED_REGEX,
        "Another build than the one the golden answers were recorded from answers differently: "
        "review the diff, then approve by re-recording (the command is in the message).",
    ),
    Category(
        "Determinism drift",
        ("failed",),
        _area_regex("determinism"),
        "Completions at temperature 0 or with a fixed seed differ between requests, restarts or the golden.",
    ),
    Category(
        "Egress attempt",
        ("failed",),
        _area_regex("egress"),
        "The release tried to reach the network during install or serving.",
    ),
    Category(
        "Static finding",
        ("failed",),
        _area_regex("static"),
        "Static inspection of the tarball found a portability defect (no VM involved).",
    ),
    Category(
        "Server defect",
        ("failed",),
        _area_regex("server"),
        "The server did not become healthy, did not answer, or did not stop cleanly.",
    ),
    Category(
        "Other product defect",
        ("failed",),
        rf"(?s)(?!\[(?:{'|'.join(NAMED_AREAS)})\] ).*",
        "A failed check outside the areas above (e.g. macOS launch checks): the release is at fault.",
    ),
    Category(
        "Infrastructure broken",
        ("broken",),
        r"(?s).*",
        "The harness could not judge the release (VM, SSH, host tool or harness bug): rerun, do not blame the release.",
    ),
)


def categorize(status: str, message: str) -> Category | None:
    """The first category a result falls in, or None (allure then files it as a plain defect)."""
    return next((c for c in CATEGORIES if c.matches(status, message)), None)


def categories_json() -> list[dict[str, Any]]:
    return [c.to_allure() for c in CATEGORIES]
