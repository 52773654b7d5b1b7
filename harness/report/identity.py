"""Which check a test is, in which area, on which target: the coordinates of a matrix cell.

A test may say so with ``@pytest.mark.check(name=..., area=...)``; otherwise the name comes from
the test function (``test_install_offline`` -> ``install_offline``), the area from its module
(``test_determinism.py`` -> ``determinism``) and the target from, in order: what the suite bound
with ``report.bind_target(request, target)``, a ``target``/``image``/``platform`` parameter, a
single ``--image`` option, else ``local``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

CHECK_MARKER = "check"
TARGET_PARAMS: tuple[str, ...] = ("target", "image", "platform")
DEFAULT_TARGET = "local"
# Static checks judge the tarball itself, on no image: they get a target of their own.
TARBALL_TARGET = "tarball"
STATIC_AREA = "static"
# Module stems that belong to a broader report area.
AREA_ALIASES: dict[str, str] = {
    "goldens": "determinism",
    "golden": "determinism",
    "completions": "determinism",
    "offline": "egress",
    "network": "egress",
    "inspect": "static",
    "inspection": "static",
    "uninstall": "install",
    "manifest": "install",
    "health": "server",
    "release": "static",  # checksum and other host-side checks of the tarball
}

bound_target_key = pytest.StashKey[str]()


@dataclass(frozen=True)
class CheckIdentity:
    check: str
    area: str
    target: str


def _marker_kwargs(item: pytest.Item) -> dict[str, Any]:
    marker = item.get_closest_marker(CHECK_MARKER)
    if marker is None:
        return {}
    kwargs = dict(marker.kwargs)
    if marker.args and "name" not in kwargs:
        kwargs["name"] = marker.args[0]
    return kwargs


def _params(item: pytest.Item) -> dict[str, Any]:
    callspec = getattr(item, "callspec", None)
    return dict(callspec.params) if callspec is not None else {}


def _param_text(value: Any) -> str:
    return value if isinstance(value, str) else getattr(value, "name", None) or repr(value)


def area_from_module(module_stem: str) -> str:
    stem = module_stem.removeprefix("test_")
    return AREA_ALIASES.get(stem, stem)


def target_objects(item: pytest.Item) -> list[str]:
    """Target parameters whose value is an object (shown by its target name, not its repr)."""
    return [
        name
        for name, value in _params(item).items()
        if name in TARGET_PARAMS and not isinstance(value, str)
    ]


def _explicit_target(item: pytest.Item) -> str | None:
    bound = item.stash.get(bound_target_key, None)
    if bound:
        return bound
    params = _params(item)
    for name in TARGET_PARAMS:
        if name in params:
            return _param_text(params[name])
    return None


def resolve_target(item: pytest.Item) -> str:
    explicit = _explicit_target(item)
    if explicit:
        return explicit
    try:
        option = item.config.getoption("image")
    except ValueError:
        option = None
    if isinstance(option, str) and option:
        return option
    if isinstance(option, (list, tuple)) and len(option) == 1:
        return str(option[0])
    return DEFAULT_TARGET


def identify(item: pytest.Item) -> CheckIdentity:
    marked = _marker_kwargs(item)
    base = marked.get("name") or getattr(item, "originalname", item.name).removeprefix("test_")
    others = [_param_text(v) for k, v in sorted(_params(item).items()) if k not in TARGET_PARAMS]
    check = f"{base}[{'-'.join(others)}]" if others else base
    module = getattr(item, "module", None)
    stem = module.__name__.rsplit(".", 1)[-1] if module is not None else item.nodeid.split("::")[0]
    area = marked.get("area") or area_from_module(stem.rsplit("/", 1)[-1].removesuffix(".py"))
    if area == STATIC_AREA:
        target = _explicit_target(item) or TARBALL_TARGET
    else:
        target = resolve_target(item)
    return CheckIdentity(check=str(check), area=str(area), target=target)


def identify_nodeid(nodeid: str) -> CheckIdentity:
    """Best effort for a test known only by node id (its xdist worker died): a bracketed parameter
    id is taken for the target, as the suite names its parameters after their targets."""
    path, _, rest = nodeid.partition("::")
    function, _, param = rest.rsplit("::", 1)[-1].partition("[")
    name = function.removeprefix("test_") or nodeid
    area = area_from_module(path.rsplit("/", 1)[-1].removesuffix(".py"))
    fallback = TARBALL_TARGET if area == STATIC_AREA else DEFAULT_TARGET
    return CheckIdentity(name, area, param.removesuffix("]") or fallback)
