"""Validating profile data and resolving it for one guest OS and product version.

``parse_profile`` checks every key of a profile (a typo is an error, not a silently ignored
setting) and every template's placeholders, and reports every mistake at once. ``select_profile``
resolves a profile for a target: its ``[os.<name>]`` table, then the ``[[variant]]`` entries whose
OS and version range match (one per axis), merged over the rest in file order. A mistake found
once tables are merged is reported at the key of the table that wrote it (``os.linux.server.port``,
``variant[0].api.flavour``). The checking itself (pydantic) is imported only when a profile is read.
"""

from __future__ import annotations

import dataclasses
import difflib
import string
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.profile.problems import Problem, ProfileError, profile_error, unique
from harness.profile.schema import RUNTIME_PLACEHOLDERS, Profile, Variant
from harness.release_name import Version, parse_version, version_in_range


@dataclass(frozen=True)
class _Layer:
    """One table merged into a resolution: the base file, an ``[os.*]`` table or a variant."""

    prefix: str  # where its keys are written in the file: "", "os.linux.", "variant[0]."
    label: str  # how a message names it: "[os.linux]", "the variant 'macos'"
    data: Mapping[str, Any]


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_profile(data: Mapping[str, Any], source: Path, os_name: str | None = None,
                  apply: Sequence[str] = ()) -> Profile:
    """Validate ``data``; with ``os_name`` its ``[os.<os_name>]`` table, then the variants named in
    ``apply`` (in file order), are merged over the rest first."""
    _check_known(apply, _variant_entries(data), source)
    profile, problems = _resolve(data, source, os_name, apply)
    if profile is None:
        raise profile_error(source, problems)
    return profile


def check_profile(data: Mapping[str, Any], source: Path) -> Profile:
    """The base profile, once the base, every ``[os.*]`` table and every variant (on each OS it
    names) are free of mistakes; otherwise one error listing all of them."""
    profile, problems = _resolve(data, source, None, ())
    os_tables = data.get("os")
    for os_name in os_tables if isinstance(os_tables, dict) else ():
        problems += _resolve(data, source, os_name, ())[1]
    for name, oses in _variant_entries(data).items():
        for os_name in oses or (None,):
            problems += _resolve(data, source, os_name, (name,))[1]
    problems = unique(problems)
    if problems or profile is None:
        raise profile_error(source, problems)
    return profile


def _variant_entries(data: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """Each variant's name and OSes as far as they can be read (a broken one is reported elsewhere)."""
    entries = data.get("variant")
    out: dict[str, tuple[str, ...]] = {}
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            oses = entry.get("os", [])
            out.setdefault(entry["name"], tuple(o for o in oses if o in ("linux", "darwin"))
                           if isinstance(oses, list) else ())
    return out


def _layers(data: Mapping[str, Any], os_name: str | None, apply: Sequence[str]) -> list[_Layer]:
    base = {k: v for k, v in data.items() if k not in ("os", "variant")}
    layers = [_Layer("", "", base)]
    os_tables = data.get("os")
    if os_name and isinstance(os_tables, dict) and isinstance(os_tables.get(os_name), dict):
        layers.append(_Layer(f"os.{os_name}.", f"[os.{os_name}]", os_tables[os_name]))
    entries = data.get("variant")
    for index, entry in enumerate(entries if isinstance(entries, list) else ()):
        if isinstance(entry, dict) and entry.get("name") in apply:
            overrides = {k: v for k, v in entry.items() if k not in ("name", "axis", "description", "os", "versions")}
            layers.append(_Layer(f"variant[{index}].", f"the variant {entry['name']!r}", overrides))
    return layers


def _resolve(data: Mapping[str, Any], source: Path, os_name: str | None,
             apply: Sequence[str]) -> tuple[Profile | None, list[Problem]]:
    from harness.profile import document  # pydantic: imported when a profile is read, not before

    whole, problems = document.check(document.Document, data)
    layers = _layers(data, os_name, apply)
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = _deep_merge(merged, layer.data)
    sections = whole
    if len(layers) > 1:
        sections, found = document.check(document.Sections, merged)
        problems += [_placed(problem, layers) for problem in found]
    problems += [_placed(problem, layers) for problem in _placeholder_problems(merged)]
    problems = unique(problems)
    if problems or whole is None or sections is None:
        return None, problems
    assert isinstance(whole, document.Document)
    variants = document.variants(whole, data)
    applied = tuple(v.name for v in variants if v.name in apply)
    return document.to_profile(sections, source, os_name, variants, applied, data), []


def _placed(problem: Problem, layers: Sequence[_Layer]) -> Problem:
    """``problem`` (found in the merged tables) at the key of the table that wrote it; one the
    base file wrote that shows only once merged says which tables it was merged with."""
    layer = _owner(_parts(problem.path), layers)
    if layer.prefix:
        # An unknown key's suggestion is a key beside it; other suggestions are values.
        suggestion = layer.prefix + problem.suggestion if problem.suggestion and problem.what == "unknown key" \
            else problem.suggestion
        return dataclasses.replace(problem, path=layer.prefix + problem.path, suggestion=suggestion)
    if len(layers) == 1:
        return problem
    merged = " and ".join(layer.label for layer in layers[1:])
    return dataclasses.replace(problem, context=f"with {merged} merged in")


_ABSENT: Any = object()


def _lookup(data: Any, parts: Sequence[str | int]) -> Any:
    for part in parts:
        found = (isinstance(part, str) and isinstance(data, dict) and part in data) or (
            isinstance(part, int) and isinstance(data, list) and 0 <= part < len(data))
        if not found:
            return _ABSENT
        data = data[part]
    return data


def _owner(parts: Sequence[str | int], layers: Sequence[_Layer]) -> _Layer:
    """The layer whose value ends up at ``parts``: tables merge key by key, anything else (an
    array, a scalar) is replaced whole by the last layer that sets it."""
    owner = layers[0]
    for depth in range(1, len(parts) + 1):
        holders = [layer for layer in layers if _lookup(layer.data, parts[:depth]) is not _ABSENT]
        if not holders:
            # A key no layer has (a missing one) belongs to whoever wrote the table around it first.
            return next(layer for layer in layers if _lookup(layer.data, parts[:depth - 1]) is not _ABSENT)
        owner = holders[-1]
        if not isinstance(_lookup(owner.data, parts[:depth]), dict):
            return owner
    return owner


def _parts(path: str) -> list[str | int]:
    """``variant[0].server.ports[1]`` back into ``["variant", 0, "server", "ports", 1]``."""
    parts: list[str | int] = []
    for piece in path.split("."):
        name, *indexes = piece.split("[")
        if name:
            parts.append(name)
        parts.extend(int(index.rstrip("]")) for index in indexes)
    return parts


def _check_known(names: Sequence[str], variants: Iterable[str], source: Path) -> None:
    known = list(variants)
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ProfileError(
            f"{source}: no variant named {', '.join(map(repr, unknown))}",
            hint=f"this profile's variants: {', '.join(known) or 'none'}",
        )


def matching_variants(variants: Sequence[Variant], os_name: str | None, version: Version | None,
                      forced: Sequence[str] = ()) -> tuple[str, ...]:
    """The variant names that apply: per axis the first whose condition matches, unless one of
    that axis is forced. A variant with a version range never matches an unknown version."""
    forced_axes = {v.axis for v in variants if v.name in forced}
    picked: dict[str, str] = {}
    for v in variants:
        if v.name in forced:
            picked[v.axis] = v.name
            continue
        if v.axis in forced_axes or v.axis in picked:
            continue
        if v.os and os_name not in v.os:
            continue
        if v.versions and (version is None or not version_in_range(version, v.versions)):
            continue
        picked[v.axis] = v.name
    return tuple(picked.values())


def select_profile(profile: Profile, os_name: str | None, version: Version | str | None = None,
                   forced: Sequence[str] = ()) -> Profile:
    """``profile`` resolved for a target: its OS table and the variants that fit (or are forced)."""
    if isinstance(version, str):
        version = parse_version(version)
    _check_known(forced, (v.name for v in profile.variants), profile.source)
    apply = matching_variants(profile.variants, os_name, version, forced)
    return parse_profile(profile.raw, profile.source, os_name, apply)


PLACEHOLDERS_EXPECTED = "{home} {user} {upload} {tarball} {version} {port} or a key of [paths] defined above"


def _placeholder_problems(data: Mapping[str, Any]) -> Iterator[Problem]:
    """Every ``{name}`` in every string must be a runtime value or a ``[paths]`` key defined
    earlier. Read from the raw tables, so a placeholder typo is found beside a wrong type."""
    known = set(RUNTIME_PLACEHOLDERS)
    paths = data.get("paths")
    for key, template in paths.items() if isinstance(paths, dict) else ():
        if isinstance(template, str):
            yield from _template_problems(template, known, f"paths.{key}")
        known.add(key)
    sections = {k: v for k, v in data.items() if k not in ("paths", "profile", "prompts", "layout", "api")}
    for where, text in _strings(sections, ""):
        yield from _template_problems(text, known, where)


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{where}.{k}" if where else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{where}[{i}]")


def _template_problems(text: str, known: set[str], where: str) -> Iterator[Problem]:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        yield Problem(where, f"is not a valid template: {exc}", "a literal brace written as {{ or }}")
        return
    for name in fields:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            yield Problem(where, f"uses the placeholder {{{name}}}, which is not defined", PLACEHOLDERS_EXPECTED,
                          suggestion=f"{{{close[0]}}}" if close else "")
