"""The shape of a profile file, checked as a whole, and its conversion into the values of schema.py.

pydantic v2 rather than jsonschema: strict models with ``extra="forbid"`` collect every error with
its exact location (an unknown key at its own path, not at its parent's) and carry our value rules.

The models mirror the TOML tables, not the dataclasses: a table's keys differ from a value's fields
where a default comes from another key (``install.tree`` from ``writes``) or two forms make one
value (``prompt``/``system`` or ``messages``). Importing this module costs more than the rest of the
package, so it is imported only when a profile is read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from harness.profile.explain import problem
from harness.profile.problems import Problem
from harness.profile.schema import (
    ApiSpec,
    ConditionSpec,
    DeterminismSpec,
    Flavour,
    InstallSpec,
    Layout,
    LoadRequest,
    Message,
    Profile,
    Prompt,
    ReleaseSpec,
    ServerSpec,
    UninstallSpec,
    UpgradeSpec,
    Variant,
)
from harness.release_name import ReleaseNameError, Version, version_in_range

OsName = Literal["linux", "darwin"]
VARIANT_KEYS = ("name", "axis", "description", "os", "versions")


def _fail(what: str, expected: str, at: str = "") -> PydanticCustomError:
    """A broken value rule; ``at`` extends the error's location (a model-level rule names its key)."""
    return PydanticCustomError("profile_rule", "{what}", {"what": what, "expected": expected, "at": at})


def _rule(holds: Callable[[Any], bool], what: str, expected: str) -> AfterValidator:
    def check(value: Any) -> Any:
        if not holds(value):
            raise _fail(what, expected)
        return value
    return AfterValidator(check)


def _version_range(spec: str) -> str:
    try:
        version_in_range(Version((0,)), spec)
    except ReleaseNameError as exc:
        raise _fail(f"not a version range: {exc.message}",
                    'comparators separated by commas, e.g. ">=0.4.17" or ">=0.4.0,<0.4.17"') from None
    return spec


def _unique(key: str, what: str) -> AfterValidator:
    """Entries of an array of tables whose ``key`` must differ (ids name goldens, names name rows)."""
    def check(entries: list[Any]) -> list[Any]:
        seen: set[str] = set()
        for index, entry in enumerate(entries):
            value = getattr(entry, key)
            if value in seen:
                raise _fail(f"repeats {what} {value!r}", f"a {what} used once", at=f"[{index}].{key}")
            seen.add(value)
        return entries
    return AfterValidator(check)


Seconds = Annotated[float, _rule(lambda v: v > 0, "not positive", "a positive number of seconds")]
Port = Annotated[int, _rule(lambda v: 1 <= v <= 65535, "out of range", "a TCP/UDP port, 1-65535")]
Platform = Annotated[str, _rule(lambda v: v.partition("-")[0] in ("linux", "darwin") and bool(v.partition("-")[2]),
                                "not a platform", "'<os>-<arch>' such as 'linux-x86_64' or 'darwin-arm64'")]
Identifier = Annotated[str, _rule(lambda v: bool(v) and v.replace("_", "").replace("-", "").isalnum(),
                                  "not an identifier", "letters, digits, _ or -")]


def _at_least(minimum: int) -> AfterValidator:
    return _rule(lambda v: v >= minimum, "too small", f"at least {minimum}")


class _Table(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class MetaTable(_Table):
    name: str
    description: str = ""


class ReleaseTable(_Table):
    product: str
    checksums: str = "checksums.txt"
    backends: list[str] = []
    platforms: list[Platform] = ["linux-x86_64"]


class LayoutTable(_Table):
    cli: str
    server: str
    layers_dir: str
    modelfiles: str = ""
    layers: list[str] = []
    app_layer: str = ""
    runtime_layer: str = ""
    launch_module: str = ""
    required_paths: list[str] = []
    forbidden_paths: list[str] = []


class InstallTable(_Table):
    command: str
    env: dict[str, str] = {}
    files: list[str] = []
    timeout_s: Seconds = 600.0
    writes: list[str]
    tree: list[str] | None = None  # default: the same as writes
    volatile: list[str] = []
    manifest_ignore: list[str] = list(InstallSpec.manifest_ignore)
    temp_leaves: list[str] = []
    reinstall_ignore: list[str] = []
    build_residue: list[str] = []
    trace: bool = False


class LoadTable(_Table):
    method: str = "POST"
    path: str
    body: dict[str, Any] = Field(default={}, alias="json")  # BaseModel has a method named json
    timeout_s: Seconds = 120.0


class ServerTable(_Table):
    start: str
    stop: str
    status: str = ""
    cwd: str = "{home}"
    env: dict[str, str] = {}
    port: Port = 6969
    health_path: Annotated[str, _rule(lambda v: v.startswith("/"), "not a URL path", "a path starting with '/'")] = "/health"
    ready_timeout_s: Seconds = 60.0
    stop_timeout_s: Seconds = 20.0
    pid_file: str
    logs: list[str] = []
    writes: list[str] = []
    load: LoadTable | None = None
    ports: list[Port] = []


class ApiTable(_Table):
    flavour: Flavour
    path: str = "/v1/chat/completions"
    model: str
    extra: dict[str, Any] = {}
    timeout_s: Seconds = 60.0
    supports_seed: bool = True
    supports_stream: bool | None = None  # default: every flavour but plain openai streams
    supports_non_stream: bool | None = None  # default: every flavour but tiles-sse answers whole

    @property
    def streams(self) -> bool:
        return self.flavour != "openai" if self.supports_stream is None else self.supports_stream

    @property
    def answers_whole(self) -> bool:
        return self.flavour != "tiles-sse" if self.supports_non_stream is None else self.supports_non_stream

    @model_validator(mode="after")
    def _something_to_request(self) -> ApiTable:
        if not (self.streams or self.answers_whole):
            raise _fail("and supports_non_stream are both false", "at least one way to request a completion",
                        at=".supports_stream")
        return self


def _two_seeds(seeds: list[int]) -> bool:
    return len(seeds) == 2 and seeds[0] != seeds[1]


class DeterminismTable(_Table):
    repeats: Annotated[int, _at_least(2)] = 5
    temperature: float = 0.0
    seeded_temperature: Seconds = 0.9  # positive, like a duration
    seeds: Annotated[list[int], _rule(_two_seeds, "not two seeds", "two different integers")] = [7, 8]
    max_tokens: Annotated[int, _at_least(1)] = 32
    # What answers that differ from goldens recorded for another build mean (see DeterminismSpec).
    goldens_other_build: Literal["fail", "report"] = "fail"


class MessageTable(_Table):
    role: str
    content: str


class PromptTable(_Table):
    id: str
    prompt: str | None = None
    system: str | None = None
    messages: list[MessageTable] | None = None
    max_tokens: Annotated[int, _at_least(1)] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> PromptTable:
        if (self.prompt is None) == (self.messages is None):
            raise _fail("has both or neither of 'prompt' and 'messages'", "exactly one of them", at=".prompt")
        return self


class UninstallTable(_Table):
    command: str
    env: dict[str, str] = {}
    timeout_s: Seconds = 120.0
    leaves: list[str] = []


class UpgradeTable(_Table):
    command: str | None = None  # default: the install command
    leaves: list[str] = []


class ConditionTable(_Table):
    name: Identifier
    home: str | None = None  # default: a directory of its own under /tmp
    env: dict[str, str] = {}
    as_root: bool = False
    check: str = ""


class Sections(_Table):
    """A profile resolved for one target: the tables every check reads."""

    profile: MetaTable
    release: ReleaseTable
    layout: LayoutTable
    paths: dict[str, str] = {}
    install: InstallTable
    server: ServerTable
    api: ApiTable
    determinism: DeterminismTable = DeterminismTable()
    prompts: Annotated[list[PromptTable], _unique("id", "prompt id"),
                       _rule(bool, "is empty", "at least one [[prompts]] entry (id and prompt)")]
    uninstall: UninstallTable | None = None
    upgrade: UpgradeTable | None = None
    conditions: Annotated[list[ConditionTable], _unique("name", "condition name")] = []


class OsTables(_Table):
    """``[os.<name>]``: any section, checked once merged over the rest (see parse.py)."""

    linux: dict[str, Any] | None = None
    darwin: dict[str, Any] | None = None


class VariantTable(_Table):
    """``[[variant]]``: when it applies, then the sections it overrides (checked once merged)."""

    name: str
    axis: str | None = None
    description: str = ""
    os: list[OsName] = []
    versions: Annotated[str, AfterValidator(_version_range)] = ""
    release: Any = None
    layout: Any = None
    paths: Any = None
    install: Any = None
    server: Any = None
    api: Any = None
    determinism: Any = None
    uninstall: Any = None
    upgrade: Any = None
    conditions: Any = None


class Document(Sections):
    """The whole file: the base sections plus per-OS tables and variants."""

    os: OsTables | None = None
    variant: Annotated[list[VariantTable], _unique("name", "variant name")] = []


def check(model: type[Sections], data: Mapping[str, Any]) -> tuple[Sections | None, list[Problem]]:
    """``data`` validated as ``model``; every problem found, none if it is valid."""
    try:
        return model.model_validate(dict(data)), []  # strict: a read-only view is no table
    except ValidationError as exc:
        return None, [problem(model, error) for error in exc.errors(include_url=False)]


def variants(document: Document, data: Mapping[str, Any]) -> tuple[Variant, ...]:
    raw = [entry for entry in data.get("variant", []) if isinstance(entry, dict)]
    return tuple(
        Variant(name=v.name, axis=v.axis or v.name, description=v.description, os=tuple(v.os),
                versions=v.versions,
                overrides=MappingProxyType({k: val for k, val in entry.items() if k not in VARIANT_KEYS}))
        for v, entry in zip(document.variant, raw, strict=True)
    )


def to_profile(s: Sections, source: Path, os_name: str | None, all_variants: tuple[Variant, ...],
               applied: tuple[str, ...], raw: Mapping[str, Any]) -> Profile:
    install = s.install
    return Profile(
        name=s.profile.name,
        description=s.profile.description,
        source=source,
        release=ReleaseSpec(product=s.release.product, checksums=s.release.checksums,
                            backends=tuple(s.release.backends), platforms=tuple(s.release.platforms)),
        layout=Layout(**_tuples(s.layout)),
        paths=MappingProxyType(dict(s.paths)),
        install=InstallSpec(**_tuples(install, tree=tuple(install.writes if install.tree is None else install.tree))),
        server=_server(s),
        api=ApiSpec(flavour=s.api.flavour, path=s.api.path, model=s.api.model,
                    extra=MappingProxyType(dict(s.api.extra)), timeout_s=s.api.timeout_s,
                    supports_seed=s.api.supports_seed, supports_stream=s.api.streams,
                    supports_non_stream=s.api.answers_whole),
        determinism=DeterminismSpec(**_tuples(s.determinism, seeds=(s.determinism.seeds[0], s.determinism.seeds[1]))),
        prompts=tuple(_prompt(p) for p in s.prompts),
        uninstall=None if s.uninstall is None else UninstallSpec(**_tuples(s.uninstall)),
        upgrade=None if s.upgrade is None else UpgradeSpec(
            command=install.command if s.upgrade.command is None else s.upgrade.command,
            leaves=tuple(s.upgrade.leaves)),
        conditions=tuple(
            ConditionSpec(name=c.name, home=c.home or f"/tmp/hns-condition-{c.name}",
                          env=MappingProxyType(dict(c.env)), as_root=c.as_root, check=c.check)
            for c in s.conditions),
        os=os_name,
        variants=all_variants,
        applied=applied,
        raw=MappingProxyType(dict(raw)),
    )


def _tuples(table: BaseModel, **changes: Any) -> dict[str, Any]:
    """A table's fields as a dataclass wants them: arrays as tuples, tables read-only."""
    def frozen(value: Any) -> Any:
        if isinstance(value, list):
            return tuple(value)
        if isinstance(value, dict):
            return MappingProxyType(dict(value))
        return value
    return {name: frozen(getattr(table, name)) for name in type(table).model_fields} | changes


def _server(s: Sections) -> ServerSpec:
    load = s.server.load
    return ServerSpec(**_tuples(s.server, load=None if load is None else LoadRequest(
        method=load.method.upper(), path=load.path, json=MappingProxyType(dict(load.body)),
        timeout_s=load.timeout_s)))


def _prompt(p: PromptTable) -> Prompt:
    if p.messages is not None:
        messages = tuple(Message(m.role, m.content) for m in p.messages)
    else:
        assert p.prompt is not None  # the model's rule: exactly one form
        messages = (*([Message("system", p.system)] if p.system is not None else []), Message("user", p.prompt))
    return Prompt(p.id, messages, p.max_tokens)
