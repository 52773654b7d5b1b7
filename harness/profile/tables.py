"""Typed access to one TOML table; every error names the file, the dotted key and the type wanted."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from harness.profile.schema import ProfileError

REFERENCE_PROFILE = Path(__file__).resolve().parent.parent / "profiles" / "reference.toml"

T = TypeVar("T")
_MISSING: Any = object()
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "a table", list: "an array"}


class _Table:
    """Typed access to one TOML table; every error names the file, the dotted key and the type wanted."""

    def __init__(self, data: Mapping[str, Any], source: Path, prefix: str = "") -> None:
        self.data = data
        self.source = source
        self.prefix = prefix

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def fail(self, name: str, problem: str, hint: str = "") -> ProfileError:
        return ProfileError(
            f"{self.source}: key '{self.key(name)}' {problem}",
            hint=hint or f"compare with the built-in profile {REFERENCE_PROFILE}",
        )

    def _get(self, name: str, kind: type[T], default: Any) -> T:
        if name not in self.data:
            if default is _MISSING:
                raise self.fail(name, f"is missing (expected {_TYPE_NAMES[kind]})")
            return default  # type: ignore[no-any-return]
        value = self.data[name]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise self.fail(name, f"must be {_TYPE_NAMES[kind]}, got {type(value).__name__} {value!r}")
        return value  # type: ignore[no-any-return]

    def text(self, name: str, default: Any = _MISSING) -> str:
        return self._get(name, str, default)

    def choice(self, name: str, allowed: Iterable[str], default: Any = _MISSING) -> str:
        """A text that must be one of ``allowed``."""
        value = self.text(name, default)
        options = tuple(allowed)
        if value not in options:
            raise self.fail(name, f"must be one of {', '.join(options)}, got {value!r}")
        return value

    def integer(self, name: str, default: Any = _MISSING, minimum: int | None = None) -> int:
        value = self._get(name, int, default)
        if minimum is not None and value < minimum:
            raise self.fail(name, f"must be at least {minimum}, got {value}")
        return value

    def number(self, name: str, default: Any = _MISSING, positive: bool = False) -> float:
        value = self._get(name, float, default)
        if positive and value <= 0:
            raise self.fail(name, f"must be a positive number of seconds, got {value}")
        return value

    def flag(self, name: str, default: Any = _MISSING) -> bool:
        return self._get(name, bool, default)

    def texts(self, name: str, default: Any = _MISSING) -> tuple[str, ...]:
        value = self._get(name, list, default)
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise self.fail(f"{name}[{index}]", f"must be a string, got {type(item).__name__} {item!r}")
        return tuple(value)

    def text_map(self, name: str) -> Mapping[str, str]:
        table = self.table(name, required=False)
        for key, value in table.data.items():
            if not isinstance(value, str):
                raise table.fail(key, f"must be a string, got {type(value).__name__} {value!r}")
        return MappingProxyType(dict(table.data))

    def table(self, name: str, required: bool = True) -> _Table:
        value = self._get(name, dict, _MISSING if required else {})
        return _Table(value, self.source, f"{self.key(name)}.")

    def has(self, name: str) -> bool:
        return name in self.data

    def tables(self, name: str) -> list[_Table]:
        value = self._get(name, list, [])
        out = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.fail(f"{name}[{index}]", f"must be a table, got {type(item).__name__}")
            out.append(_Table(item, self.source, f"{self.key(name)}[{index}]."))
        return out

    def only(self, allowed: Iterable[str]) -> None:
        """Reject unknown keys, so a typo is an error instead of a silently ignored setting."""
        allowed = list(allowed)
        for name in self.data:
            if name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1)
                hint = f"did you mean '{self.key(close[0])}'?" if close else f"known keys here: {', '.join(allowed)}"
                raise self.fail(name, "is not a known setting", hint=hint)


