"""The options of a portability run, declared once, and which pytest sessions are such runs.

:class:`RunOptions` is the one table: each field is one option with its type, default, flags and
help. The ``harness run`` parser, the pytest plugin's option group, the pytest command line that
``harness run`` starts and the value the plugins read (:func:`run_options`) are all built from it.

This module is imported by every pytest session in a venv that has the harness installed (the
entry-point plugin needs it to declare the options and to decide whether a session is a
portability run), so it imports the standard library and pytest's types only.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

import pytest

SUITE_PACKAGE = "harness.portability"
DEFAULT_IMAGE = "linux-debian12"
DEFAULT_PROFILE = "reference"  # the profile of the reference release, used when none is given
DEFAULT_RESULTS = "results"
KeepPolicy = Literal["never", "on-failure", "always"]
KEEP_POLICIES: tuple[str, ...] = get_args(KeepPolicy)
# The pytest --help group every option below appears in (the plugin's only help lines).
HELP_GROUP = ("portability-harness", "portability harness (its options act only in a portability run)")


@dataclass(frozen=True)
class Flag:
    """How one :class:`RunOptions` field is spelled on a command line."""

    flag: str
    help: str
    metavar: str | None = None
    parse: Callable[[str], Any] = str  # one value from the command line
    repeat: bool = False  # a tuple field: the flag may be given several times
    choices: tuple[str, ...] | None = None
    # The name pytest stores it under (config.getoption), when it is not the field's: pytest's
    # option namespace is shared by every plugin, so generic names get a prefix there.
    pytest_dest: str | None = None
    in_run: bool = True  # `harness run` has it too; else it is a pytest option only
    off: tuple[str, str] | None = None  # a boolean that defaults to on: its off flag and that flag's help

    def pytest_name(self, name: str) -> str:
        return self.pytest_dest or name


def _flag(flag: str, help: str, **how: Any) -> dict[str, Flag]:
    return {"flag": Flag(flag, help, **how)}


@dataclass(frozen=True)
class RunOptions:
    """What a portability run was asked to do, whichever command line it came from."""

    release: tuple[Path, ...] = field(default=(), metadata=_flag(
        "--release", "release tarball to test; repeat for a matrix (default: the reference release "
        "of a checkout of the harness, which `harness run` builds when it is missing)",
        metavar="TARBALL", parse=Path, repeat=True))
    profile: str | None = field(default=None, metadata=_flag(
        "--profile", "release profile: a built-in name (reference, tiles) or a TOML file "
        f"(default: {DEFAULT_PROFILE})", metavar="NAME|FILE"))
    variants: tuple[str, ...] = field(default=(), metadata=_flag(
        "--profile-variant", "apply this [[variant]] of the profile whatever the release's version "
        "and OS (repeatable; replaces the variant picked automatically on the same axis)",
        metavar="NAME", repeat=True, pytest_dest="profile_variant"))
    image: tuple[str, ...] = field(default=(), metadata=_flag(
        "--image", f"base image to test on; repeat for a matrix (default: {DEFAULT_IMAGE}); "
        "`harness run` builds missing Linux images", metavar="IMAGE", repeat=True))
    keep_vm: KeepPolicy = field(default="never", metadata=_flag(
        "--keep-vm", "keep VMs after their test: never (default), on-failure, always; a kept "
        "VM prints its ssh command and is removed with `harness gc --name NAME`", choices=KEEP_POLICIES))
    warm: bool = field(default=True, metadata=_flag(
        "--warm", "start VMs from a saved, already booted machine where the provider can "
        "(default); the first warm VM of an image builds the snapshot (one cold boot), later ones "
        "resume it", pytest_dest="vm_warm",
        off=("--cold", "boot every VM from scratch (the report records which start each VM had)")))
    results_dir: Path | None = field(default=None, metadata=_flag(
        "--results-dir", "where a run writes allure-results/, junit.xml, the journal, evidence "
        f"and the sign-off (default: ./{DEFAULT_RESULTS}); emptied once at the start of each run, "
        "except history/", metavar="DIR", parse=Path, pytest_dest="harness_results_dir"))
    update_goldens: bool = field(default=False, metadata=_flag(
        "--update-goldens", "record this run's completions as the golden answers instead of "
        "comparing with them"))
    goldens_dir: Path | None = field(default=None, metadata=_flag(
        "--goldens-dir", "where golden files live, as DIR/<profile>/<platform>.json (default: "
        "goldens/ beside the profile's TOML file; the built-in profiles' goldens ship in the package)",
        metavar="DIR", parse=Path))
    upgrade_from: Path | None = field(default=None, metadata=_flag(
        "--upgrade-from", "the previous release: the upgrade check installs it, then the release "
        "under test over it (in a VM of its own), and checks that nothing old is left behind; without "
        "it that check skips", metavar="OLD_TARBALL", parse=Path))
    conditions: tuple[str, ...] = field(default=(), metadata=_flag(
        "--condition", "also install under this [[conditions]] entry of the profile (repeatable; "
        "'all' for every one), in the second VM; without it install_conditions skips",
        metavar="NAME|all", repeat=True))
    max_vms: int = field(default=2, metadata=_flag(
        "--max-vms", "VMs running at once on this host, across xdist workers and pytest runs "
        "(default 2)", metavar="N", parse=int, in_run=False))
    vm_cpus: int = field(default=0, metadata=_flag(
        "--vm-cpus", "vCPUs of each release VM (default: from the host's cores and how many VMs run "
        "at once)", metavar="N", parse=int, in_run=False))
    vm_boot_timeout: float = field(default=600.0, metadata=_flag(
        "--vm-boot-timeout", "seconds from clone to SSH ready before a boot counts as hung "
        "(default 600)", metavar="S", parse=float, in_run=False))
    vm_slot_timeout: float = field(default=3600.0, metadata=_flag(
        "--vm-slot-timeout", "seconds to wait for a free VM slot (default 3600)", metavar="S",
        parse=float, in_run=False))
    inspect_target: str | None = field(default=None, metadata=_flag(
        "--inspect-target", "target system of the static checks: a name `harness inspect --help` "
        "lists or a target JSON file (default: inferred from the release's binaries)", metavar="TARGET",
        in_run=False))

    @property
    def images(self) -> tuple[str, ...]:
        return self.image or (DEFAULT_IMAGE,)

    @classmethod
    def from_values(cls, get: Callable[[str, Flag], Any]) -> RunOptions:
        """Built from a parsed command line: ``get(field name, flag)`` is the value given or None."""
        values: dict[str, Any] = {}
        for name, flag, _ in _table():
            raw = get(name, flag)
            if raw is None:
                continue
            values[name] = tuple(_parsed(flag, item) for item in raw) if flag.repeat else _parsed(flag, raw)
        return cls(**values)

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> RunOptions:
        return cls.from_values(lambda name, flag: getattr(args, name, None))

    @classmethod
    def from_pytest(cls, config: pytest.Config) -> RunOptions:
        return cls.from_values(lambda name, flag: config.getoption(flag.pytest_name(name), default=None))

    def pytest_argv(self) -> list[str]:
        """This value as pytest options of the plugin: what ``harness run`` passes on.

        Values ride in the same word as their option (``--release=PATH``): pytest picks its rootdir,
        and with it the caller's configuration, from free-standing paths before plugins load.
        """
        argv: list[str] = []
        for name, flag, _ in _table():
            if not flag.in_run:
                continue
            value = getattr(self, name)
            if isinstance(value, bool):
                if flag.off is not None and not value:
                    argv.append(flag.off[0])
                elif value:
                    argv.append(flag.flag)
            elif flag.repeat:
                argv += [f"{flag.flag}={item}" for item in value]
            elif value is not None:
                argv.append(f"{flag.flag}={value}")
        return argv


def _parsed(flag: Flag, raw: Any) -> Any:
    return flag.parse(raw) if isinstance(raw, str) else raw


def _table() -> Iterator[tuple[str, Flag, Any]]:
    for option in fields(RunOptions):
        yield option.name, option.metadata["flag"], option.default


def add_to_argparse(parser: argparse.ArgumentParser) -> None:
    """The ``harness run`` flags of the table (its values keep the table's field names)."""
    for name, flag, default in _table():
        if not flag.in_run:
            continue
        for spelling, attrs in _spellings(flag, default):
            if flag.repeat:
                attrs["default"] = []  # argparse appends to a list of its own per parse
            parser.add_argument(spelling, dest=name, **attrs)


def add_to_pytest(parser: pytest.Parser) -> None:
    """Every option of the table in one pytest help group."""
    group = parser.getgroup(*HELP_GROUP)
    for name, flag, default in _table():
        for spelling, attrs in _spellings(flag, default):
            if flag.repeat:
                attrs["default"] = None
            if attrs.get("type") is Path:
                # Strings on pytest's side: xdist sends the parsed options to its workers, and
                # it can send only plain values; RunOptions.from_pytest makes them paths.
                attrs["type"] = str
            group.addoption(spelling, dest=flag.pytest_name(name), **attrs)


def _spellings(flag: Flag, default: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(default, bool):
        yield flag.flag, {"action": "store_true", "default": default, "help": flag.help}
        if flag.off is not None:
            yield flag.off[0], {"action": "store_false", "help": flag.off[1]}
        return
    attrs: dict[str, Any] = {"help": flag.help, "metavar": flag.metavar, "default": default}
    if flag.repeat:
        attrs["action"] = "append"
    if flag.choices is not None:
        attrs["choices"] = flag.choices
        del attrs["metavar"]
    if flag.parse is not str:
        attrs["type"] = flag.parse
    yield flag.flag, attrs


_options = pytest.StashKey[RunOptions]()
_asks = pytest.StashKey[bool]()


def run_options(config: pytest.Config) -> RunOptions:
    """This session's options, read from pytest's command line once."""
    if _options not in config.stash:
        config.stash[_options] = RunOptions.from_pytest(config)
    return config.stash[_options]


# -- is this session a portability run? ----------------------------------------------------------


def suite_dir() -> Path:
    """Where the suite's modules are, found without importing the suite package."""
    spec = importlib.util.find_spec(SUITE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{SUITE_PACKAGE} is not importable")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def names_the_suite(config: pytest.Config) -> bool:
    """True when a command-line argument (or testpaths entry) collects the suite."""
    suite = suite_dir()
    for arg in config.args:
        where = _argument_path(str(arg).split("::", 1)[0], config)
        if where is None:
            continue
        if where == suite or suite in where.parents:
            return True
        # An ancestor collects it too, unless the suite sits in a virtualenv pytest skips.
        if where in suite.parents and not suite.is_relative_to(Path(sys.prefix).resolve()):
            return True
    return False


def _argument_path(arg: str, config: pytest.Config) -> Path | None:
    if config.option.pyargs and arg and "/" not in arg:
        try:
            spec = importlib.util.find_spec(arg)
        except (ImportError, ValueError):
            spec = None
        if spec is not None:
            if spec.submodule_search_locations:
                return Path(next(iter(spec.submodule_search_locations))).resolve()
            if spec.origin:
                return Path(spec.origin).resolve()
    try:
        return (config.invocation_params.dir / arg).resolve()
    except (OSError, ValueError):
        return None


def utility_session(config: pytest.Config) -> bool:
    """--help, --collect-only, --fixtures and friends: they run no checks."""
    option = config.option
    names = ("help", "version", "collectonly", "showfixtures", "show_fixtures_per_test", "markers")
    return any(getattr(option, name, False) for name in names)


def asks_for_the_harness(config: pytest.Config) -> bool:
    """The session names the suite or asks for a release or a results directory: the harness's
    fixtures and hooks are registered (also for --collect-only and friends, which list them)."""
    if _asks not in config.stash:
        options = run_options(config)
        config.stash[_asks] = names_the_suite(config) or bool(options.release) or options.results_dir is not None
    return config.stash[_asks]


def is_portability_run(config: pytest.Config) -> bool:
    """A session that asks for the harness and runs checks: only such a run writes results and
    prints a sign-off. Decided at configure time, before any results are touched."""
    return asks_for_the_harness(config) and not utility_session(config)
