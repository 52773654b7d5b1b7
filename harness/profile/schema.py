"""The profile's values: dataclasses a loaded profile is made of (no parsing, no rendering here).

Strings in ``paths``, ``install``, ``server`` and ``uninstall`` are templates until a profile is
bound to a guest and release (:mod:`harness.profile.bound`); everything else is plain data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Flavour = Literal["openai", "openai-sse", "tiles-sse"]
FLAVOURS: tuple[str, ...] = ("openai", "openai-sse", "tiles-sse")
GuestOS = Literal["linux", "darwin"]

# Filled in by the harness at run time; every other placeholder must be a key of [paths].
RUNTIME_PLACEHOLDERS: frozenset[str] = frozenset({"home", "user", "upload", "tarball", "version", "port"})


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
    """How the product's tarballs are named: ``<product>-v<version>-<arch>-<os>[-<backend>].tar.gz``."""

    product: str
    checksums: str = "checksums.txt"
    backends: tuple[str, ...] = ()  # optional backend suffixes after the OS, such as "cuda"
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
    # What the installer may leave in /tmp, /var/tmp and the user's cache (fnmatch on full paths).
    temp_leaves: tuple[str, ...] = ()
    # Installed paths that may differ between a fresh install and one over an existing install.
    reinstall_ignore: tuple[str, ...] = ()
    # Installed files that may name the build host's paths (a runtime's build-time configuration).
    build_residue: tuple[str, ...] = ()
    # Trace the installer's shell commands (bash xtrace, inherited by a re-exec'd bash), so a
    # failure names the command it happened in.
    trace: bool = False


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
    ports: tuple[int, ...] = ()  # further TCP/UDP ports the release may listen on (loopback only)


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
class UpgradeSpec:
    """Installing this release over the previous one (``--upgrade-from OLD.tar.gz``)."""

    command: str  # how the older release is installed first; {tarball} is the older tarball
    leaves: tuple[str, ...] = ()  # files of the older release an upgrade may keep on purpose


@dataclass(frozen=True)
class ConditionSpec:
    """One install condition users hit (a home with a space, root, a locale): a matrix dimension."""

    name: str
    home: str  # the HOME the installer runs with; {user} and {home} are the guest's own
    env: Mapping[str, str]
    as_root: bool = False
    check: str = ""  # run after the install with the condition's paths; must exit 0


@dataclass(frozen=True)
class Variant:
    """A ``[[variant]]``: overrides that apply to some OSes and/or a version range of the product.

    Variants of one ``axis`` exclude each other: at most one per axis applies, the first whose
    condition matches, unless the user forces one by name (then it replaces the axis's pick).
    """

    name: str
    axis: str
    description: str
    os: tuple[str, ...]  # empty: any OS
    versions: str  # "" : any version; else comparators like ">=0.4.17,<0.5"
    overrides: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


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
    upgrade: UpgradeSpec | None = None
    conditions: tuple[ConditionSpec, ...] = ()
    os: str | None = None  # the guest OS this profile was resolved for ([os.<name>] applied)
    variants: tuple[Variant, ...] = ()  # every [[variant]] the file defines
    applied: tuple[str, ...] = ()  # the variants merged into this resolved profile
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def layout_table(self) -> dict[str, Any]:
        """The ``[layout]`` table as plain data (this profile's OS overrides applied)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self.layout).items()}
