"""Validating profile data and resolving it for one guest OS and product version.

``parse_profile`` checks every key of a profile (a typo is an error, not a silently ignored
setting) and every template's placeholders. ``select_profile`` resolves a profile for a target:
its ``[os.<name>]`` table, then the ``[[variant]]`` entries whose OS and version range match (one
per axis), merged over the rest in file order.
"""

from __future__ import annotations

import difflib
import string
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from harness.profile.schema import (
    FLAVOURS,
    RUNTIME_PLACEHOLDERS,
    ApiSpec,
    ConditionSpec,
    DeterminismSpec,
    InstallSpec,
    Layout,
    LoadRequest,
    Message,
    Profile,
    ProfileError,
    Prompt,
    ReleaseSpec,
    ServerSpec,
    UninstallSpec,
    UpgradeSpec,
    Variant,
)
from harness.profile.tables import _Table
from harness.release_name import ReleaseNameError, Version, parse_version, version_in_range

SECTIONS = ("profile", "release", "layout", "paths", "install", "server", "api", "determinism", "prompts", "uninstall",
            "upgrade", "conditions")


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
    raw = data
    top = _Table(data, source)
    overrides = top.table("os", required=False)
    overrides.only(["linux", "darwin"])
    for name in overrides.data:
        overrides.table(name).only(SECTIONS)
    variants = _variants(top)
    _check_known(apply, variants, source)
    data = {k: v for k, v in data.items() if k not in ("os", "variant")}
    if os_name and os_name in overrides.data:
        data = _deep_merge(data, overrides.data[os_name])
    for variant in variants:
        if variant.name in apply:
            data = _deep_merge(data, variant.overrides)
    root = _Table(data, source)
    root.only(SECTIONS)
    meta = root.table("profile")
    meta.only(["name", "description"])
    paths = root.text_map("paths")
    install_command = root.table("install").text("command")
    profile = Profile(
        name=meta.text("name"),
        description=meta.text("description", ""),
        source=source,
        release=_release(root.table("release")),
        layout=_layout(root.table("layout")),
        paths=paths,
        install=_install(root.table("install")),
        server=_server(root.table("server")),
        api=_api(root.table("api")),
        determinism=_determinism(root.table("determinism", required=False)),
        prompts=_prompts(root),
        uninstall=_uninstall(root.table("uninstall")) if root.has("uninstall") else None,
        upgrade=_upgrade(root.table("upgrade"), install_command) if root.has("upgrade") else None,
        conditions=_conditions(root),
        os=os_name,
        variants=variants,
        applied=tuple(v.name for v in variants if v.name in apply),
        raw=MappingProxyType(dict(raw)),
    )
    _check_placeholders(profile, data)
    return profile


def _check_known(names: Sequence[str], variants: Sequence[Variant], source: Path) -> None:
    unknown = sorted(set(names) - {v.name for v in variants})
    if unknown:
        raise ProfileError(
            f"{source}: no variant named {', '.join(map(repr, unknown))}",
            hint=f"this profile's variants: {', '.join(v.name for v in variants) or 'none'}",
        )


VARIANT_KEYS = ("name", "axis", "description", "os", "versions")


def _variants(top: _Table) -> tuple[Variant, ...]:
    out: list[Variant] = []
    for t in top.tables("variant"):
        t.only([*VARIANT_KEYS, *(s for s in SECTIONS if s not in ("profile", "prompts"))])
        name = t.text("name")
        if any(v.name == name for v in out):
            raise t.fail("name", f"repeats the variant name {name!r}; variant names must be unique")
        oses = t.texts("os", [])
        for index, os_name in enumerate(oses):
            if os_name not in ("linux", "darwin"):
                raise t.fail(f"os[{index}]", f"must be linux or darwin, got {os_name!r}")
        versions = t.text("versions", "")
        try:
            version_in_range(Version((0,)), versions)
        except ReleaseNameError as exc:
            raise t.fail("versions", f"is not a version range: {exc.message}",
                         hint="write comparators separated by commas, e.g. \">=0.4.17\" or \">=0.4.0,<0.4.17\"") from None
        out.append(Variant(
            name=name,
            axis=t.text("axis", name),
            description=t.text("description", ""),
            os=oses,
            versions=versions,
            overrides=MappingProxyType({k: v for k, v in t.data.items() if k not in VARIANT_KEYS}),
        ))
    return tuple(out)


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
    _check_known(forced, profile.variants, profile.source)
    apply = matching_variants(profile.variants, os_name, version, forced)
    return parse_profile(profile.raw, profile.source, os_name, apply)


def _release(t: _Table) -> ReleaseSpec:
    t.only(["product", "checksums", "backends", "platforms"])
    platforms = t.texts("platforms", ["linux-x86_64"])
    for index, platform in enumerate(platforms):
        os_name, _, arch = platform.partition("-")
        if os_name not in ("linux", "darwin") or not arch:
            raise t.fail(f"platforms[{index}]", f"must look like 'linux-x86_64' or 'darwin-arm64', got {platform!r}")
    return ReleaseSpec(
        product=t.text("product"),
        checksums=t.text("checksums", "checksums.txt"),
        backends=t.texts("backends", []),
        platforms=platforms,
    )


def _layout(t: _Table) -> Layout:
    t.only(["cli", "server", "layers_dir", "modelfiles", "layers", "app_layer", "runtime_layer",
            "launch_module", "required_paths", "forbidden_paths"])
    return Layout(
        cli=t.text("cli"),
        server=t.text("server"),
        layers_dir=t.text("layers_dir"),
        modelfiles=t.text("modelfiles", ""),
        layers=t.texts("layers", []),
        app_layer=t.text("app_layer", ""),
        runtime_layer=t.text("runtime_layer", ""),
        launch_module=t.text("launch_module", ""),
        required_paths=t.texts("required_paths", []),
        forbidden_paths=t.texts("forbidden_paths", []),
    )


def _install(t: _Table) -> InstallSpec:
    t.only(["command", "env", "files", "timeout_s", "writes", "tree", "volatile", "manifest_ignore", "temp_leaves",
            "reinstall_ignore", "build_residue", "trace"])
    writes = t.texts("writes")
    return InstallSpec(
        command=t.text("command"),
        env=t.text_map("env"),
        files=t.texts("files", []),
        timeout_s=t.number("timeout_s", 600.0, positive=True),
        writes=writes,
        tree=t.texts("tree", list(writes)),
        volatile=t.texts("volatile", []),
        manifest_ignore=t.texts("manifest_ignore", list(InstallSpec.manifest_ignore)),
        temp_leaves=t.texts("temp_leaves", []),
        reinstall_ignore=t.texts("reinstall_ignore", []),
        build_residue=t.texts("build_residue", []),
        trace=t.flag("trace", False),
    )


def _server(t: _Table) -> ServerSpec:
    t.only(["start", "stop", "status", "cwd", "env", "port", "health_path", "ready_timeout_s",
            "stop_timeout_s", "pid_file", "logs", "writes", "load", "ports"])
    port = t.integer("port", 6969, minimum=1)
    if port > 65535:
        raise t.fail("port", f"must be a TCP port (1-65535), got {port}")
    load = None
    if t.has("load"):
        lt = t.table("load")
        lt.only(["method", "path", "json", "timeout_s"])
        load = LoadRequest(
            method=lt.text("method", "POST").upper(),
            path=lt.text("path"),
            json=MappingProxyType(dict(lt.table("json", required=False).data)),
            timeout_s=lt.number("timeout_s", 120.0, positive=True),
        )
    health = t.text("health_path", "/health")
    if not health.startswith("/"):
        raise t.fail("health_path", f"must start with '/', got {health!r}")
    return ServerSpec(
        start=t.text("start"),
        stop=t.text("stop"),
        status=t.text("status", ""),
        cwd=t.text("cwd", "{home}"),
        env=t.text_map("env"),
        port=port,
        health_path=health,
        ready_timeout_s=t.number("ready_timeout_s", 60.0, positive=True),
        stop_timeout_s=t.number("stop_timeout_s", 20.0, positive=True),
        pid_file=t.text("pid_file"),
        logs=t.texts("logs", []),
        writes=t.texts("writes", []),
        load=load,
        ports=_ports(t, "ports"),
    )


def _ports(t: _Table, name: str) -> tuple[int, ...]:
    ports = t._get(name, list, [])
    for index, port in enumerate(ports):
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise t.fail(f"{name}[{index}]", f"must be a TCP/UDP port (1-65535), got {port!r}")
    return tuple(ports)


def _api(t: _Table) -> ApiSpec:
    t.only(["flavour", "path", "model", "extra", "timeout_s", "supports_seed", "supports_stream", "supports_non_stream"])
    flavour = t.choice("flavour", FLAVOURS)
    stream_only = flavour == "tiles-sse"
    api = ApiSpec(
        flavour=flavour,  # type: ignore[arg-type]
        path=t.text("path", "/v1/chat/completions"),
        model=t.text("model"),
        extra=MappingProxyType(dict(t.table("extra", required=False).data)),
        timeout_s=t.number("timeout_s", 60.0, positive=True),
        supports_seed=t.flag("supports_seed", True),
        supports_stream=t.flag("supports_stream", flavour != "openai"),
        supports_non_stream=t.flag("supports_non_stream", not stream_only),
    )
    if not (api.supports_stream or api.supports_non_stream):
        raise t.fail("supports_stream", "and supports_non_stream cannot both be false: nothing could be requested")
    return api


def _determinism(t: _Table) -> DeterminismSpec:
    t.only(["repeats", "temperature", "seeded_temperature", "seeds", "max_tokens", "goldens_other_build"])
    seeds = t._get("seeds", list, [7, 8])
    if len(seeds) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds) or seeds[0] == seeds[1]:
        raise t.fail("seeds", f"must be two different integers, got {seeds!r}")
    return DeterminismSpec(
        repeats=t.integer("repeats", 5, minimum=2),
        temperature=t.number("temperature", 0.0),
        seeded_temperature=t.number("seeded_temperature", 0.9, positive=True),
        seeds=(seeds[0], seeds[1]),
        max_tokens=t.integer("max_tokens", 32, minimum=1),
        goldens_other_build=t.choice("goldens_other_build", GOLDENS_OTHER_BUILD, "fail"),
    )


GOLDENS_OTHER_BUILD = ("fail", "report")


def _prompts(root: _Table) -> tuple[Prompt, ...]:
    prompts = []
    seen: set[str] = set()
    for t in root.tables("prompts"):
        t.only(["id", "prompt", "system", "messages", "max_tokens"])
        prompt_id = t.text("id")
        if prompt_id in seen:
            raise t.fail("id", f"repeats prompt id {prompt_id!r}; ids name golden entries and must be unique")
        seen.add(prompt_id)
        if t.has("messages") == t.has("prompt"):
            raise t.fail("prompt", "or 'messages' must be given (exactly one of them)")
        if t.has("prompt"):
            messages = [Message("user", t.text("prompt"))]
            if t.has("system"):
                messages.insert(0, Message("system", t.text("system")))
        else:
            messages = []
            for m in t.tables("messages"):
                m.only(["role", "content"])
                messages.append(Message(m.text("role"), m.text("content")))
        max_tokens = t.integer("max_tokens", 0, minimum=1) if t.has("max_tokens") else None
        prompts.append(Prompt(prompt_id, tuple(messages), max_tokens))
    if not prompts:
        raise root.fail("prompts", "must hold at least one [[prompts]] entry (id and prompt)")
    return tuple(prompts)


def _uninstall(t: _Table) -> UninstallSpec:
    t.only(["command", "env", "timeout_s", "leaves"])
    return UninstallSpec(
        command=t.text("command"),
        env=t.text_map("env"),
        timeout_s=t.number("timeout_s", 120.0, positive=True),
        leaves=t.texts("leaves", []),
    )


def _upgrade(t: _Table, install_command: str) -> UpgradeSpec:
    t.only(["command", "leaves"])
    return UpgradeSpec(command=t.text("command", install_command), leaves=t.texts("leaves", []))


def _conditions(root: _Table) -> tuple[ConditionSpec, ...]:
    found: list[ConditionSpec] = []
    for t in root.tables("conditions"):
        t.only(["name", "home", "env", "as_root", "check"])
        name = t.text("name")
        if not name.replace("_", "").replace("-", "").isalnum() or name in {c.name for c in found}:
            raise t.fail("name", f"must be a unique identifier (letters, digits, _ or -), got {name!r}")
        found.append(ConditionSpec(name=name, home=t.text("home", "/tmp/hns-condition-" + name),
                                   env=t.text_map("env"), as_root=t.flag("as_root", False),
                                   check=t.text("check", "")))
    return tuple(found)


def _check_placeholders(profile: Profile, data: Mapping[str, Any]) -> None:
    """Every ``{name}`` in every string must be a runtime value or a ``[paths]`` key defined earlier."""
    known = set(RUNTIME_PLACEHOLDERS)
    for key, template in profile.paths.items():
        _check_template(template, known, f"paths.{key}", profile.source)
        known.add(key)
    sections = {k: v for k, v in data.items() if k not in ("paths", "profile", "prompts", "layout", "api")}
    for where, text in _strings(sections, ""):
        _check_template(text, known, where, profile.source)


def _strings(value: Any, where: str) -> Iterable[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{where}.{k}" if where else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{where}[{i}]")


def _check_template(text: str, known: set[str], where: str, source: Path) -> None:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise ProfileError(f"{source}: key '{where}' is not a valid template: {exc}",
                           hint="write a literal brace as {{ or }}") from None
    for name in fields:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            raise ProfileError(
                f"{source}: key '{where}' uses the placeholder {{{name}}}, which is not defined",
                hint=(f"did you mean {{{close[0]}}}? " if close else "")
                + "placeholders are {home} {user} {upload} {tarball} {version} {port} and the keys of [paths] defined above",
            )
