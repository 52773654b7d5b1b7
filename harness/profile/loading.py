"""Finding a profile by name or path and reading it (built-in profiles live in harness/profiles)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from harness.profile.parse import parse_profile
from harness.profile.schema import Profile, ProfileError

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
    profile = parse_profile(data, path)
    # Validate every OS table and every variant now, so a bad override fails before any VM boots.
    for os_name in data.get("os", {}):
        _validate(data, path, os_name, (), f"[os.{os_name}]")
    for variant in profile.variants:
        for os_name in variant.os or (None,):
            _validate(data, path, os_name, (variant.name,), f"the variant {variant.name!r}")
    return profile


def _validate(data: dict, path: Path, os_name: str | None, apply: tuple[str, ...], what: str) -> None:
    try:
        parse_profile(data, path, os_name, apply)
    except ProfileError as exc:
        raise ProfileError(f"{exc.message} (with {what} merged in)", hint=exc.hint) from None
