"""Release profiles: how a product installs, serves and answers, as data read from TOML.

A profile is the only place that knows a product's paths, commands and API dialect; the suite's
code stays product-neutral. Built-in profiles live in ``harness/profiles/<name>.toml``; a user
passes their own file with ``--profile path/to/mine.toml``.

    schema.py    the values (dataclasses)         document.py  the file's tables, checked (pydantic)
    parse.py     resolving for an OS and a product version ([os.*], [[variant]]), placeholders
    problems.py  one mistake, and the error listing all of a file's mistakes at once
    explain.py   pydantic's errors as those mistakes, in the file's words
    loading.py   finding and reading a profile    bound.py     a profile bound to a guest + release

Strings in ``[paths]``, ``[install]``, ``[server]`` and ``[uninstall]`` are templates:
``{home}``, ``{user}``, ``{upload}``, ``{tarball}``, ``{version}``, ``{port}`` are filled in by the
harness, and every key of ``[paths]`` (e.g. ``{lib}``, ``{bin}``) can be used in later paths and
in every command. Placeholders are checked when the profile is loaded, so a typo fails before any
VM boots; :func:`bind` renders them once per guest. Loading reports every mistake of a file at once
(the base tables, each ``[os.*]`` table and each variant), each at its key path.
"""

from harness.profile.bound import BoundProfile, bind
from harness.profile.loading import (
    BUILTIN_DIR,
    builtin_profiles,
    load_profile,
    resolve_profile_path,
)
from harness.profile.parse import matching_variants, parse_profile, select_profile
from harness.profile.problems import ProfileError
from harness.profile.schema import (
    FLAVOURS,
    RUNTIME_PLACEHOLDERS,
    ApiSpec,
    ConditionSpec,
    DeterminismSpec,
    Flavour,
    GuestOS,
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

__all__ = [
    "BUILTIN_DIR", "FLAVOURS", "RUNTIME_PLACEHOLDERS", "ApiSpec", "BoundProfile", "ConditionSpec", "DeterminismSpec",
    "Flavour", "GuestOS", "InstallSpec", "Layout", "LoadRequest", "Message", "Profile", "ProfileError",
    "Prompt", "ReleaseSpec", "ServerSpec", "UninstallSpec", "UpgradeSpec", "Variant", "bind", "builtin_profiles",
    "load_profile", "matching_variants", "parse_profile", "resolve_profile_path", "select_profile",
]
