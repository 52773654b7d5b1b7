"""Finding a profile by name or path and reading it (built-in profiles live in harness/profiles)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from harness.profile.parse import check_profile
from harness.profile.problems import ProfileError
from harness.profile.schema import Profile

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "profiles"


def builtin_profiles() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))


def resolve_profile_path(name_or_path: str) -> Path:
    """A built-in profile's file by name, or the user's own TOML file."""
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix == ".toml" or candidate.parent != Path("."):
        if not candidate.is_file():
            raise ProfileError(
                f"profile file {candidate} does not exist",
                hint=f"pass a built-in profile name ({', '.join(builtin_profiles())}) or an existing .toml file",
            )
        return candidate
    builtin = BUILTIN_DIR / f"{name_or_path}.toml"
    if builtin.is_file():
        return builtin
    if candidate.is_file():
        return candidate
    raise ProfileError(
        f"unknown profile {name_or_path!r}",
        hint=f"built-in profiles: {', '.join(builtin_profiles())}; or pass the path of a .toml file",
    )


def load_profile(name_or_path: str | Path) -> Profile:
    path = resolve_profile_path(str(name_or_path))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}", hint="fix the syntax error at the position shown") from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read: {exc.strerror}") from None
    return check_profile(data, path)
