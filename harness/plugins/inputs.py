"""A portability run's inputs, judged once at configure time: the profile (loaded once per session
and shared by every plugin), the releases it names, the chosen install conditions, and where the
profile's goldens are."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.preflight import check_release_readable
from harness.profile import ConditionSpec, Profile, load_profile, select_profile
from harness.release import parse_release_name
from harness.run_options import DEFAULT_PROFILE, is_portability_run, run_options

GOLDENS = "goldens"  # beside a profile's TOML file: its approved answers, <profile>/<platform>.json

_PROFILE = pytest.StashKey[Profile]()


def profile_name(config: pytest.Config) -> str:
    return run_options(config).profile or DEFAULT_PROFILE


def session_profile(config: pytest.Config) -> Profile:
    """The profile named by --profile, read on first use and then shared by the whole session."""
    if _PROFILE not in config.stash:
        config.stash[_PROFILE] = load_profile(profile_name(config))
    return config.stash[_PROFILE]


def forced_variants(config: pytest.Config) -> tuple[str, ...]:
    return run_options(config).variants


def pytest_configure(config: pytest.Config) -> None:
    if is_portability_run(config):
        check_inputs(config)


def check_inputs(config: pytest.Config) -> None:
    """A bad --profile or --release stops the run at once with the reason (exit code 4), instead
    of turning every check into an error after collection."""
    if config.option.help or getattr(config.option, "version", False):
        return
    try:
        profile = session_profile(config)
        for path in run_options(config).release:
            release = Path(path).expanduser()
            if not release.is_file():
                raise UsageError(f"release tarball {release} does not exist",
                                 hint="pass the path of a built .tar.gz with --release")
            check_release_readable(release)  # an empty, cut or renamed file stops here, not in every check
            found = parse_release_name(release.name)
            select_profile(profile, found.os, found.parsed, forced_variants(config))  # unknown names fail here
            if found.product != profile.release.product:
                raise UsageError(f"{release.name} is a {found.product!r} release but the {profile.name} "
                                 f"profile expects {profile.release.product!r}", hint="pick the matching --profile")
        chosen_conditions(config, profile)
    except UsageError as exc:
        raise pytest.UsageError(f"harness: {exc}") from None


def chosen_conditions(config: pytest.Config, profile: Profile) -> tuple[ConditionSpec, ...]:
    """The profile's install conditions named by --condition ('all': every one)."""
    wanted = [n for given in run_options(config).conditions for n in given.split(",") if n]
    if "all" in wanted:
        return profile.conditions
    known = {c.name: c for c in profile.conditions}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise pytest.UsageError(f"harness: --condition {', '.join(unknown)}: the {profile.name} profile declares "
                                f"{', '.join(known) or 'no [[conditions]]'}")
    return tuple(known[n] for n in dict.fromkeys(wanted))


@pytest.fixture(scope="session")
def profile(pytestconfig: pytest.Config) -> Profile:
    """The release profile named by --profile (validated before any VM boots)."""
    return session_profile(pytestconfig)


@pytest.fixture(scope="session")
def goldens_dir(pytestconfig: pytest.Config) -> Path:
    """``--goldens-dir``, else ``goldens/`` beside the profile's file (the built-in profiles' own
    goldens ship in the package; recording into an installed package needs ``--goldens-dir``)."""
    options = run_options(pytestconfig)
    if options.goldens_dir is not None:
        return options.goldens_dir.absolute()
    found = session_profile(pytestconfig).source.resolve().parent / GOLDENS
    if options.update_goldens and found.is_relative_to(Path(sys.prefix).resolve()):
        raise UsageError(f"--update-goldens would write into the installed harness package ({found})",
                         hint="pass --goldens-dir DIR to record your own goldens, and use it for later runs")
    return found
