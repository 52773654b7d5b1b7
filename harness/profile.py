"""Release profiles: how a product installs, serves and answers, as data read from TOML.

A profile is the only place that knows a product's paths, commands and API dialect; the suite's
code stays product-neutral. Built-in profiles live in ``harness/profiles/<name>.toml``; a user
passes their own file with ``--profile path/to/mine.toml``.

Strings in a profile are templates: ``{home}``, ``{user}``, ``{upload}``, ``{tarball}``,
``{version}``, ``{port}`` are filled in by the harness, and every key of the ``[paths]`` table
(e.g. ``{lib}``, ``{bin}``) can be used in later paths and in every command. Placeholders are
checked when the profile is loaded, so a typo fails before any VM boots.
"""

from __future__ import annotations

import difflib
import string
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeVar

from harness.errors import UsageError

BUILTIN_DIR = Path(__file__).parent / "profiles"

Flavour = Literal["openai", "openai-sse", "tiles-sse"]
FLAVOURS: tuple[str, ...] = ("openai", "openai-sse", "tiles-sse")
GuestOS = Literal["linux", "darwin"]

# Filled in by the harness at run time; every other placeholder must be a key of [paths].
RUNTIME_PLACEHOLDERS: frozenset[str] = frozenset({"home", "user", "upload", "tarball", "version", "port"})


class ProfileError(UsageError):
    """A profile file is missing, not TOML, or has a key of the wrong type or name."""


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class Prompt:
    id: str
    messages: tuple[Message, ...]
    max_tokens: int | None = None


@dataclass(frozen=True)
class ReleaseSpec:
    """How the product's tarballs are named: ``<product>-v<version>-<arch>-<os>[-<suffix>].tar.gz``."""

    product: str
    checksums: str = "checksums.txt"
    suffixes: tuple[str, ...] = ()  # optional build suffixes such as "cuda"
    platforms: tuple[str, ...] = ("linux-x86_64",)  # "<os>-<arch>" pairs the product ships


@dataclass(frozen=True)
class Layout:
    """Where things sit inside the tarball (paths relative to its top); static inspection reads it.

    The ``[layout]`` keys are also what ``harness.inspect`` reads (``layers_dir``, ``layers``,
    ``launch_module``, ``required_paths``, ``forbidden_paths``); per-OS differences (Tiles ships
    ``framework-mlx`` only on macOS) go in ``[os.<name>.layout]``.
    """

    cli: str
    server: str
    layers_dir: str
    modelfiles: str = ""
    layers: tuple[str, ...] = ()  # expected layer install targets
    app_layer: str = ""
    runtime_layer: str = ""
    launch_module: str = ""
    required_paths: tuple[str, ...] = ()  # glob patterns that must match something
    forbidden_paths: tuple[str, ...] = ()  # glob patterns that must match nothing


@dataclass(frozen=True)
class InstallSpec:
    command: str
    env: Mapping[str, str]
    files: tuple[str, ...]  # host files next to the tarball that the installer needs (install.sh)
    timeout_s: float
    writes: tuple[str, ...]  # path templates the installer may create or change
    tree: tuple[str, ...]  # installed roots whose manifest must be reproducible
    volatile: tuple[str, ...]  # extra guest paths a snapshot ignores (the harness adds /tmp, /proc ...)
    # Installed files left out of the reproducibility manifest (fnmatch patterns on full paths).
    # Bytecode caches: CPython's marshal output varies between processes, so no two are equal.
    manifest_ignore: tuple[str, ...] = ("*/__pycache__", "*/__pycache__/*")


@dataclass(frozen=True)
class LoadRequest:
    """An optional request made once the server is healthy (e.g. Tiles' ``POST /start``)."""

    method: str
    path: str
    json: Mapping[str, Any]
    timeout_s: float


@dataclass(frozen=True)
class ServerSpec:
    start: str
    stop: str
    status: str
    cwd: str
    env: Mapping[str, str]
    port: int
    health_path: str
    ready_timeout_s: float
    stop_timeout_s: float
    pid_file: str
    logs: tuple[str, ...]
    writes: tuple[str, ...] = ()  # where the running server may write (logs, pid, caches)
    load: LoadRequest | None = None


@dataclass(frozen=True)
class ApiSpec:
    flavour: Flavour
    path: str
    model: str
    extra: Mapping[str, Any]  # fields every request carries (Tiles: chat_start, python_code)
    timeout_s: float
    supports_seed: bool
    supports_stream: bool
    supports_non_stream: bool


@dataclass(frozen=True)
class DeterminismSpec:
    repeats: int = 5
    temperature: float = 0.0
    seeded_temperature: float = 0.9
    seeds: tuple[int, int] = (7, 8)
    max_tokens: int = 32
    # What answers that differ from goldens recorded for ANOTHER build mean: "fail" (they must be
    # reviewed and re-recorded before shipping) or "report" (shown with their diff, not blocking).
    goldens_other_build: str = "fail"


@dataclass(frozen=True)
class UninstallSpec:
    command: str
    env: Mapping[str, str]
    timeout_s: float
    leaves: tuple[str, ...]  # paths the uninstaller may leave on purpose (user data, logs)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    source: Path
    release: ReleaseSpec
    layout: Layout
    paths: Mapping[str, str]  # ordered; later entries may use earlier ones
    install: InstallSpec
    server: ServerSpec
    api: ApiSpec
    determinism: DeterminismSpec
    prompts: tuple[Prompt, ...]
    uninstall: UninstallSpec | None
    os: str | None = None  # the guest OS this profile was resolved for ([os.<name>] applied)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def layout_table(self) -> dict[str, Any]:
        """The ``[layout]`` table as plain data (this profile's OS overrides applied)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self.layout).items()}

    def for_os(self, os_name: str) -> Profile:
        """This profile with its ``[os.<os_name>]`` overrides merged in (a no-op without them)."""
        return parse_profile(self.raw, self.source, os_name)

    def context(self, runtime: Mapping[str, str]) -> dict[str, str]:
        """Runtime values plus every ``[paths]`` entry expanded, ready for :meth:`render`."""
        missing = {"home", "user"} - set(runtime)
        if missing:
            raise ValueError(f"render context lacks {sorted(missing)}")
        ctx = {"port": str(self.server.port), **{k: str(v) for k, v in runtime.items()}}
        for key, template in self.paths.items():
            ctx[key] = _format(template, ctx, where=f"paths.{key}", source=self.source)
        return ctx

    def render(self, template: str, context: Mapping[str, str], where: str = "") -> str:
        return _format(template, context, where=where, source=self.source)


def _format(template: str, context: Mapping[str, str], where: str, source: Path) -> str:
    try:
        return template.format_map(context)
    except KeyError as exc:
        raise ProfileError(
            f"{source}: {where or 'a template'} uses {{{exc.args[0]}}}, which has no value here",
            hint="use only {home} {user} {upload} {tarball} {version} {port} or a key of [paths]",
        ) from None


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
    for os_name in data.get("os", {}):
        # Validate every OS variant now, so a bad override fails before any VM boots.
        try:
            parse_profile(data, path, os_name)
        except ProfileError as exc:
            raise ProfileError(f"{exc.message} (with [os.{os_name}] merged in)", hint=exc.hint) from None
    return profile


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
            hint=hint or f"compare with the built-in profile {BUILTIN_DIR / 'reference.toml'}",
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


SECTIONS = ("profile", "release", "layout", "paths", "install", "server", "api", "determinism", "prompts", "uninstall")


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_profile(data: Mapping[str, Any], source: Path, os_name: str | None = None) -> Profile:
    """Validate ``data``; with ``os_name``, its ``[os.<os_name>]`` table is merged over the rest first."""
    raw = data
    overrides = _Table(data, source).table("os", required=False)
    overrides.only(["linux", "darwin"])
    for name in overrides.data:
        overrides.table(name).only(SECTIONS)
    data = {k: v for k, v in data.items() if k != "os"}
    if os_name and os_name in overrides.data:
        data = _deep_merge(data, overrides.data[os_name])
    root = _Table(data, source)
    root.only(SECTIONS)
    meta = root.table("profile")
    meta.only(["name", "description"])
    paths = root.text_map("paths")
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
        os=os_name,
        raw=MappingProxyType(dict(raw)),
    )
    _check_placeholders(profile, data)
    return profile


def _release(t: _Table) -> ReleaseSpec:
    t.only(["product", "checksums", "suffixes", "platforms"])
    platforms = t.texts("platforms", ["linux-x86_64"])
    for index, platform in enumerate(platforms):
        os_name, _, arch = platform.partition("-")
        if os_name not in ("linux", "darwin") or not arch:
            raise t.fail(f"platforms[{index}]", f"must look like 'linux-x86_64' or 'darwin-arm64', got {platform!r}")
    return ReleaseSpec(
        product=t.text("product"),
        checksums=t.text("checksums", "checksums.txt"),
        suffixes=t.texts("suffixes", []),
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
    t.only(["command", "env", "files", "timeout_s", "writes", "tree", "volatile", "manifest_ignore"])
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
    )


def _server(t: _Table) -> ServerSpec:
    t.only(["start", "stop", "status", "cwd", "env", "port", "health_path", "ready_timeout_s",
            "stop_timeout_s", "pid_file", "logs", "writes", "load"])
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
    )


def _api(t: _Table) -> ApiSpec:
    t.only(["flavour", "path", "model", "extra", "timeout_s", "supports_seed", "supports_stream", "supports_non_stream"])
    flavour = t.text("flavour")
    if flavour not in FLAVOURS:
        raise t.fail("flavour", f"must be one of {', '.join(FLAVOURS)}, got {flavour!r}")
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
        goldens_other_build=_one_of(t, "goldens_other_build", GOLDENS_OTHER_BUILD, "fail"),
    )


GOLDENS_OTHER_BUILD = ("fail", "report")


def _one_of(t: _Table, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = t.text(name, default)
    if value not in allowed:
        raise t.fail(name, f"must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


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
