"""Typed, validated configs with a static / dynamic / run split.

Each algorithm declares one frozen dataclass whose fields are made with
`static(...)`, `dynamic(...)` or `run(...)`:
- static: changes shapes or program structure (a new value is a new compilation);
- dynamic: only enters arithmetic; traced inside the program (`hparams`), so it
  can differ per run of one compiled program (sweeps, PBT);
- run: read by the host loop only (seed, number of seeds, run length).
Validation happens here, in Python, before anything is compiled.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any

import yaml

from jaxrl.errors import JaxrlError


class ConfigError(JaxrlError):
    pass


def _field(kind: str, default, doc: str, *, low=None, high=None, low_open=False, choices=None):
    meta = {"kind": kind, "doc": doc, "low": low, "high": high, "low_open": low_open, "choices": choices}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def static(default, doc, **limits):
    return _field("static", default, doc, **limits)


def dynamic(default, doc, **limits):
    return _field("dynamic", default, doc, **limits)


def run(default, doc, **limits):
    return _field("run", default, doc, **limits)


def fields_of(config_cls, kind: str | None = None) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(config_cls) if kind is None or f.metadata["kind"] == kind]


_TYPES = {"int": int, "float": float, "bool": bool, "str": str, "tuple": tuple, "dict": dict}


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(name: str, value: Any, field: dataclasses.Field) -> Any:
    """Check `value` against the field's declared type; ints are accepted as floats."""
    tp = _TYPES.get(field.type, field.type)  # annotations are strings under `from __future__ import annotations`
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)  # 5e5 from YAML or --set is a valid step count
    if tp is tuple and isinstance(value, list):
        value = tuple(value)
    if tp is tuple and isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return value
    if tp in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{name}={value!r}: expected {_type_name(tp)}, got bool")
    if not isinstance(value, tp):
        raise ConfigError(f"{name}={value!r}: expected {_type_name(tp)}, got {type(value).__name__}")
    return value


def _check_limits(name: str, value: Any, meta: dict) -> None:
    low, high, choices = meta["low"], meta["high"], meta["choices"]
    if choices is not None and value not in choices:
        raise ConfigError(f"{name}={value!r}: must be one of {', '.join(map(repr, choices))}")
    if low is not None and (value < low or (meta["low_open"] and value == low)):
        bound = f"> {low}" if meta["low_open"] else f">= {low}"
        raise ConfigError(f"{name}={value!r}: must be {bound}")
    if high is not None and value > high:
        raise ConfigError(f"{name}={value!r}: must be <= {high}")


def validate_fields(config) -> None:
    """Type and range checks of every field (called from each config's __post_init__)."""
    for f in dataclasses.fields(config):
        value = _coerce(f.name, getattr(config, f.name), f)
        object.__setattr__(config, f.name, value)
        if isinstance(value, tuple):
            for v in value:
                _check_limits(f.name, v, f.metadata)
        else:
            _check_limits(f.name, value, f.metadata)


def check_keys(config_cls, keys, where: str) -> None:
    names = [f.name for f in dataclasses.fields(config_cls)]
    for key in keys:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; valid keys: {', '.join(names)}"
            raise ConfigError(f"unknown config key {key!r} in {where}{hint}")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`["lr=1e-3", "hidden_sizes=[64,64]"]` -> {"lr": 0.001, ...} (values parsed as YAML)."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({str(err).splitlines()[0]})") from None
        if isinstance(value, str) and _looks_numeric(value):
            value = float(value)  # YAML 1.1 reads "1e-3" as a string
        out[key.strip()] = value
    return out


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def load_yaml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{what} {str(path)!r} is not valid YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {str(path)!r} must hold a mapping of key: value, got {type(data).__name__}")
    return {k: (float(v) if isinstance(v, str) and _looks_numeric(v) else v) for k, v in data.items()}


def to_dict(config) -> dict[str, Any]:
    return {f.name: (list(v) if isinstance(v := getattr(config, f.name), tuple) else v) for f in dataclasses.fields(config)}


def hparams(config) -> dict[str, float]:
    """The dynamic fields, to be passed into the program as traced arrays."""
    return {f.name: float(getattr(config, f.name)) for f in fields_of(type(config), "dynamic")}


def describe(config_cls) -> str:
    """One line per field: name, kind, default, doc (for `jaxrl algos`)."""
    lines = []
    for f in dataclasses.fields(config_cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        lines.append(f"  {f.name:<20} {f.metadata['kind']:<8} {default!r:<22} {f.metadata['doc']}")
    return "\n".join(lines)
