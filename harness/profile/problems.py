"""One mistake in a profile file, and the single error that lists every mistake the file has."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UsageError

REFERENCE_PROFILE = Path(__file__).resolve().parent.parent / "profiles" / "reference.toml"


@dataclass(frozen=True)
class Problem:
    """``path`` is the dotted key as written in the file (``os.linux.server.port``,
    ``variant[0].versions``); ``suggestion`` is the nearest valid key or value, if one is close."""

    path: str
    what: str
    expected: str = ""
    got: str = ""
    suggestion: str = ""
    context: str = ""  # the resolution it showed up in, when the path alone does not say

    def __str__(self) -> str:
        line = f"{self.path}: {self.what}"
        detail = ", ".join(part for part in (
            f"expected {self.expected}" if self.expected else "",
            f"got {self.got}" if self.got else "",
        ) if part)
        if detail:
            line += f" ({detail})"
        if self.context:
            line += f" ({self.context})"
        if self.suggestion:
            line += f"; did you mean '{self.suggestion}'?"
        return line

    @property
    def identity(self) -> tuple[str, str, str, str]:
        """Equal for the same mistake seen through two resolutions (an OS table, a variant)."""
        return self.path, self.what, self.expected, self.got


class ProfileError(UsageError):
    """A profile file is missing, not TOML, or has keys of the wrong type or name (``problems``
    lists each of those, all of them at once)."""

    def __init__(self, message: str, hint: str = "", detail: str = "",
                 problems: tuple[Problem, ...] = ()) -> None:
        super().__init__(message, hint, detail)
        self.problems = problems



def unique(problems: Iterable[Problem]) -> list[Problem]:
    """Each mistake once, the first sighting kept (the base file is checked first)."""
    seen: set[tuple[str, str, str, str]] = set()
    out = []
    for problem in problems:
        if problem.identity not in seen:
            seen.add(problem.identity)
            out.append(problem)
    return out


def profile_error(source: Path, problems: Sequence[Problem]) -> ProfileError:
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    return ProfileError(
        f"{source}: {count} in this profile:\n" + "\n".join(f"  {problem}" for problem in problems),
        hint=f"fix each key listed; compare with the built-in profile {REFERENCE_PROFILE}",
        problems=tuple(problems),
    )
