"""Typed run configuration: one dataclass per stage, overridden by a YAML preset, then by `key=value` arguments.

A field's type is its annotation; YAML and `key=value` values are parsed as YAML scalars (`lr=1e-5`,
`pack=false`, `stages=[...]`) and checked against it, so `lr=abc` or an unknown key is an error that names the key
and where it came from, before any work starts. Presets live in `rlvr/recipes/<stage>/NAME.yaml`; each opens with
a comment giving the command that runs it (`rlvr ls` shows that line, `rlvr cp` copies the file out).
Nested dataclasses are set with dotted keys on the command line (`model.hidden_size=128`) or nested maps in YAML.
A field that takes a name or a dataclass (`template: str | Template`) takes either: a mapping given after a
mapping updates its keys, after a name it replaces the name (`template.prefix=...` after `template: deepscaler`
is a template with the defaults and that prefix, not DeepScaleR's text with it).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

C = TypeVar("C")


def load_config(cls: type[C], preset: str | Path | None = None, overrides: list[str] | None = None) -> C:
    """`cls()` with the preset's values, then the overrides', applied in order."""
    values: dict[str, Any] = {}
    if preset is not None:
        path = Path(preset)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such recipe file")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a recipe is a mapping of field: value")
        values = _merge(values, data, cls, str(path))
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"argument {item!r}: expected key=value")
        value: Any = yaml.safe_load(raw) if raw else ""
        for part in reversed(key.split(".")):
            value = {part: value}
        values = _merge(values, value, cls, f"argument {item!r}")
    return build(cls, values, "config")


def _merge(base: dict[str, Any], new: dict[str, Any], cls: type, where: str) -> dict[str, Any]:
    """Recursive dict merge; unknown keys are reported here, against `cls`, with `where`."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    out = dict(base)
    for key, value in new.items():
        if key not in fields:
            raise ValueError(f"{where}: unknown key {key!r} for {cls.__name__}; known: {', '.join(fields)}")
        inner = _dataclass_in(hints[key])
        if inner is not None and isinstance(value, dict) and isinstance(out.get(key) or {}, dict):
            out[key] = _merge(out.get(key) or {}, value, inner, where)
        else:
            out[key] = value
    return out


def build(cls: type[C], values: dict[str, Any], where: str) -> C:
    """An instance of dataclass `cls` from plain values, each checked against its field's type; what the class
    itself refuses (its `__post_init__`) is reported with `where` too."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        if name not in hints:
            raise ValueError(f"{where}: unknown key {name!r} for {cls.__name__}; known: {', '.join(hints)}")
        kwargs[name] = coerce(value, hints[name], f"{where}.{name}")
    try:
        return cls(**kwargs)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def coerce(value: Any, hint: Any, where: str) -> Any:
    """`value` (as YAML reads it) checked against the type `hint` and converted where YAML is loose (ints for
    floats, mappings for dataclasses); a ValueError naming `where` if it does not fit."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return build(hint, value, where)  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        options = [o for o in typing.get_args(hint) if o is not type(None)]
        if value is None and len(options) < len(typing.get_args(hint)):
            return None
        # the option of the value's own kind first, so its error is the one reported (`str | Template` given a
        # mapping says what is wrong with the mapping, not "expected str")
        options.sort(key=lambda option: not _same_kind(value, option))
        errors = []
        for option in options:
            try:
                return coerce(value, option, where)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            choices = ", ".join(map(str, typing.get_args(hint)))
            raise ValueError(f"{where}: {value!r} is not one of {choices}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        items = [coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{where}: expected a number, got {value!r}") from None
    if hint is str and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if (isinstance(hint, type) and not isinstance(value, hint)) or (hint is int and isinstance(value, bool)):
        raise ValueError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
    return value


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass a field holds (`TinyModel`, or `Template` in `str | Template`), if any: a mapping given for
    it is merged key by key, so `template.prefix=...` after a preset's mapping keeps the preset's other keys."""
    if dataclasses.is_dataclass(hint):
        return hint  # type: ignore[return-value]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        found = [o for o in typing.get_args(hint) if dataclasses.is_dataclass(o)]
        return found[0] if len(found) == 1 else None  # type: ignore[return-value]
    return None


def _same_kind(value: Any, hint: Any) -> bool:
    """Whether `value` is the kind of thing `hint` describes: a mapping for a dataclass or dict, else its type."""
    if isinstance(value, dict):
        return dataclasses.is_dataclass(hint) or typing.get_origin(hint) is dict
    return isinstance(hint, type) and isinstance(value, hint)


def to_dict(config: Any) -> dict[str, Any]:
    """Plain values of a config dataclass (for the run folder's config.yaml)."""
    return dataclasses.asdict(config)


def save_config(config: Any, path: str | Path) -> None:
    from rlvr.io import atomic_write

    with atomic_write(path) as f:
        f.write(yaml.safe_dump(to_dict(config), sort_keys=False))
