"""A profile bound once to one guest and one release: every template rendered, values typed.

Consumers read ``bound.install.command`` or ``bound.server.pid_file`` as plain strings instead of
rendering templates against a context dict themselves; the rendering (and its errors, naming the
key) happens in one place, when the install starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from harness.profile.problems import ProfileError
from harness.profile.schema import InstallSpec, Profile, ServerSpec, UninstallSpec

T = TypeVar("T")


@dataclass(frozen=True)
class BoundProfile:
    profile: Profile
    context: Mapping[str, str]  # runtime values plus every [paths] entry, expanded
    install: InstallSpec
    server: ServerSpec
    uninstall: UninstallSpec | None

    @property
    def paths(self) -> dict[str, str]:
        return {key: self.context[key] for key in self.profile.paths}

    def text(self, template: str, where: str = "") -> str:
        """Render one more template (e.g. from a user's own check) against this binding."""
        return render(template, self.context, where, self.profile.source)


def bind(profile: Profile, runtime: Mapping[str, str]) -> BoundProfile:
    """``runtime`` holds at least ``home`` and ``user``; ``upload``, ``tarball`` and ``version``
    once a release is known."""
    missing = {"home", "user"} - set(runtime)
    if missing:
        raise ValueError(f"a profile is bound to a guest: the runtime values lack {sorted(missing)}")
    context = {"port": str(profile.server.port), **{k: str(v) for k, v in runtime.items()}}
    for key, template in profile.paths.items():
        context[key] = render(template, context, f"paths.{key}", profile.source)
    frozen = MappingProxyType(context)
    return BoundProfile(
        profile=profile,
        context=frozen,
        install=_render_spec(profile.install, frozen, "install", profile.source),
        server=_render_spec(profile.server, frozen, "server", profile.source),
        uninstall=None if profile.uninstall is None
        else _render_spec(profile.uninstall, frozen, "uninstall", profile.source),
    )


def render(template: str, context: Mapping[str, str], where: str, source: Path) -> str:
    try:
        return template.format_map(context)
    except KeyError as exc:
        raise ProfileError(
            f"{source}: {where or 'a template'} uses {{{exc.args[0]}}}, which has no value here",
            hint="use only {home} {user} {upload} {tarball} {version} {port} or a key of [paths]",
        ) from None


def _render_spec(spec: T, context: Mapping[str, str], where: str, source: Path) -> T:
    assert dataclasses.is_dataclass(spec) and not isinstance(spec, type)
    changes = {f.name: _render_value(getattr(spec, f.name), context, f"{where}.{f.name}", source)
               for f in dataclasses.fields(spec)}
    return dataclasses.replace(spec, **changes)  # type: ignore[type-var]


def _render_value(value: Any, context: Mapping[str, str], where: str, source: Path) -> Any:
    if isinstance(value, str):
        return render(value, context, where, source)
    if isinstance(value, tuple):
        return tuple(_render_value(v, context, f"{where}[{i}]", source) for i, v in enumerate(value))
    if isinstance(value, Mapping):
        return MappingProxyType({k: _render_value(v, context, f"{where}.{k}", source) for k, v in value.items()})
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _render_spec(value, context, where, source)
    return value
