"""pydantic's validation errors as problems in the file's words: the key path as TOML writes it,
what was expected, what was found and the nearest valid key or value."""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from harness.profile.problems import Problem

_TYPE_ERRORS = {
    "string_type": "a string", "int_type": "an integer", "float_type": "a number", "bool_type": "true or false",
    "list_type": "an array", "dict_type": "a table", "model_type": "a table", "model_attributes_type": "a table",
}


def problem(model: type[BaseModel], error: Mapping[str, Any]) -> Problem:
    loc: tuple[str | int, ...] = tuple(error["loc"])
    path = dotted(loc)
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "profile_rule":
        return Problem(path + ctx["at"], ctx["what"], ctx["expected"], "" if ctx["at"] else _shown(value))
    if kind == "extra_forbidden":
        known = sorted(_keys(_annotation_at(model, loc[:-1])))
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        if close:
            return Problem(path, "unknown key", suggestion=dotted((*loc[:-1], close[0])))
        return Problem(path, "unknown key", expected=f"one of {', '.join(known)}")
    if kind == "missing":
        return Problem(path, "missing", expected=_describe(_annotation_at(model, loc)))
    if kind == "literal_error":
        options = [str(o) for o in get_args(_plain(_annotation_at(model, loc)))]
        close = difflib.get_close_matches(str(value), options, n=1)
        return Problem(path, "not a known value", f"one of {', '.join(options)}", _shown(value),
                       suggestion=close[0] if close else "")
    if kind in _TYPE_ERRORS:
        return Problem(path, "wrong type", _TYPE_ERRORS[kind], f"{type(value).__name__} {_shown(value)}")
    return Problem(path, str(error["msg"]), got=_shown(value))  # a check pydantic adds in a later version


def dotted(loc: Sequence[str | int]) -> str:
    """``("variant", 0, "versions")`` as written in TOML terms: ``variant[0].versions``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(annotation: Any) -> Any:
    """``annotation`` without Annotated's rules and without ``| None``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        else:
            return annotation


def _annotation_at(model: type[BaseModel], loc: Iterable[str | int]) -> Any:
    current: Any = model
    for part in loc:
        current = _plain(current)
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            field = _fields(current).get(part)
            current = field.annotation if field else None
        elif get_origin(current) in (list, dict):
            current = get_args(current)[-1]
        else:
            return None
    return current


def _keys(annotation: Any) -> list[str]:
    plain = _plain(annotation)
    return list(_fields(plain)) if isinstance(plain, type) and issubclass(plain, BaseModel) else []


def _fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """A table's fields by the key the file writes."""
    return {field.alias or name: field for name, field in model.model_fields.items()}


def _describe(annotation: Any) -> str:
    plain = _plain(annotation)
    origin = get_origin(plain)
    if origin is list:
        item = _plain(get_args(plain)[0])
        return "an array of tables" if isinstance(item, type) and issubclass(item, BaseModel) else "an array"
    if origin is Literal:
        return f"one of {', '.join(map(str, get_args(plain)))}"
    if origin is dict or (isinstance(plain, type) and issubclass(plain, BaseModel)):
        return "a table"
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    return names.get(plain, "a value")
