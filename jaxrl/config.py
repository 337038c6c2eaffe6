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
import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from jaxrl.errors import JaxrlError


class ConfigError(JaxrlError):
    pass


def _field(kind: str, default, doc: str, *, low=None, high=None, low_open=False, choices=None):
    meta = {"kind": kind, "doc": doc, "low": low, "high": high, "low_open": low_open, "choices": choices}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class SharedFields:
    """Base of the config classes whose fields several algorithms mix in. A subclass gives such a field its own
    default with a plain value, `num_envs: int = 16`: the field keeps the help and limits it was declared with."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in vars(cls).get("__annotations__", {}):
            value = vars(cls).get(name, dataclasses.MISSING)
            if isinstance(value, dataclasses.Field):
                continue
            declared = next((b.__dataclass_fields__[name] for b in cls.__mro__[1:]
                             if name in getattr(b, "__dataclass_fields__", {})), None)
            if declared is None or value is dataclasses.MISSING:
                raise TypeError(f"{cls.__qualname__}.{name}: declare a new config field with static(), dynamic() or "
                                f"run(); a plain value only gives an inherited field another default")
            meta = declared.metadata
            setattr(cls, name, _field(meta["kind"], value, meta["doc"], low=meta["low"], high=meta["high"],
                                      low_open=meta["low_open"], choices=meta["choices"]))


def static(default, doc, **limits):
    return _field("static", default, doc, **limits)


def dynamic(default, doc, **limits):
    return _field("dynamic", default, doc, **limits)


def run(default, doc, **limits):
    return _field("run", default, doc, **limits)


KINDS = ("static", "dynamic", "run")


def fields_of(config_cls, kind: str | None = None) -> list[dataclasses.Field]:
    """A config's fields of one kind, or all of them static first, then dynamic, then run; within a kind,
    the algorithm's own fields before those of the shared bases it mixes in (value head, exploration)."""
    mro = config_cls.__mro__

    def origin(f):  # position in the MRO of the first class (from the base) that declared the field
        return min(i for i, k in enumerate(mro) if f.name in vars(k).get("__annotations__", {})
                   and not any(f.name in vars(b).get("__annotations__", {}) for b in mro[i + 1:]))

    fields = sorted(dataclasses.fields(config_cls), key=lambda f: (KINDS.index(f.metadata["kind"]), origin(f)))
    return [f for f in fields if kind is None or f.metadata["kind"] == kind]


_TYPES = {"int": int, "float": float, "bool": bool, "str": str, "tuple": tuple, "dict": dict}


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def declared_type(field: dataclasses.Field) -> tuple[type, type]:
    """(type, element type) from the field's annotation, a string under `from __future__ import
    annotations`: `tuple[int, ...]` -> (tuple, int); any other type's element type is `object`."""
    if not isinstance(field.type, str):
        return field.type, object
    outer, _, inner = field.type.partition("[")
    return _TYPES.get(outer, outer), _TYPES.get(inner.split(",")[0].strip(), object) if inner else object


def _as_type(value: Any, tp: type) -> Any:
    """`value` as `tp` (ints are accepted as floats, integral floats as ints), or None if it is not one."""
    if isinstance(value, bool) and tp in (int, float):
        return None
    if tp is float and isinstance(value, int):
        return float(value)
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)  # 5e5 from YAML or --set is a valid step count
    return value if isinstance(value, tp) else None


def _coerce(name: str, value: Any, field: dataclasses.Field) -> Any:
    """Check `value` against the field's declared type."""
    tp, item_tp = declared_type(field)
    if tp is tuple:
        items = [_as_type(v, item_tp) for v in value] if isinstance(value, (list, tuple)) else [None]
        if any(v is None for v in items):
            shown = list(value) if isinstance(value, tuple) else value
            raise ConfigError(f"{name}={shown!r}: expected a list of {_type_name(item_tp)}")
        return tuple(items)
    coerced = _as_type(value, tp)
    if coerced is None:
        raise ConfigError(f"{name}={value!r}: expected {_type_name(tp)}, got {type(value).__name__}")
    return coerced


def _check_limits(name: str, value: Any, meta: dict) -> None:
    low, high, choices = meta["low"], meta["high"], meta["choices"]
    if isinstance(value, float) and not math.isfinite(value):  # NaN passes every comparison below
        raise ConfigError(f"{name}={value!r}: must be a finite number ({meta['doc']})")
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


MAX_SEED = 2**32 - 1  # jax.random.PRNGKey(seed) wraps larger seeds onto smaller ones
MAX_UPDATES = 2**31 - 1  # the compiled loop counts updates in int32


def check_run_fields(config) -> None:
    """The seeds and the number of updates of a run must be ones the program can represent
    (called from each config's __post_init__ after `validate_fields`)."""
    last = config.seed + config.num_seeds - 1
    if last > MAX_SEED:
        raise ConfigError(f"seed={config.seed} with num_seeds={config.num_seeds} uses seeds up to {last}; "
                          f"seeds must be <= {MAX_SEED} (2**32 - 1)")
    if config.num_updates > MAX_UPDATES:
        raise ConfigError(f"total_timesteps={config.total_timesteps:.3g} is {config.num_updates:.3g} updates of "
                          f"num_envs*num_steps={config.num_envs * config.num_steps}; a run has at most "
                          f"{MAX_UPDATES} (2**31 - 1) updates")


@dataclasses.dataclass(frozen=True)
class SeedFields:
    """The seed fields every algorithm's Config mixes in (its own `total_timesteps` sorts before them)."""

    seed: int = run(0, "seed of the first run; run i uses seed + i", low=0)
    num_seeds: int = run(1, "independent seeds trained together in one program", low=1)


# Config fields renamed since runs could have recorded them: old name -> new name. Configs read from files (a run's
# config.yaml, its checkpoints' configs) use the new names, so runs written before a rename still resume and evaluate.
RENAMED_FIELDS = {"gru_size": "memory_size"}


def current_names(values: dict[str, Any]) -> dict[str, Any]:
    """`values` (config fields by name, as a file or checkpoint recorded them) under today's field names."""
    return {RENAMED_FIELDS.get(k, k): v for k, v in values.items()}


def recorded_config(config_cls, values: dict[str, Any]) -> dict[str, Any]:
    """The fields of a config recorded by an earlier run (`to_dict` form), under today's names; a field it does not
    name was added later, at a default that keeps the old behaviour, so it counts as that default."""
    defaults = {f.name: list(d) if isinstance(d := default_of(f), tuple) else d for f in dataclasses.fields(config_cls)}
    return {**defaults, **current_names(values)}


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
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {str(path)!r} is not a text file (not UTF-8); expected YAML") from None
    except OSError as err:
        raise ConfigError(f"{what} {str(path)!r} cannot be read: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{what} {str(path)!r} is not valid YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {str(path)!r} must hold a mapping of key: value, got {type(data).__name__}")
    return {k: (float(v) if isinstance(v, str) and _looks_numeric(v) else v) for k, v in data.items()}


def to_dict(config) -> dict[str, Any]:
    return {f.name: (list(v) if isinstance(v := getattr(config, f.name), tuple) else v) for f in fields_of(type(config))}


def hparams(config) -> dict[str, Any]:
    """The dynamic fields, to be passed into the program as traced arrays, and the config's learned parameters
    (`config.learned_hparams()`, if it declares them: a pytree of arrays, e.g. a learned objective's weights)."""
    values = {f.name: float(getattr(config, f.name)) for f in fields_of(type(config), "dynamic")}
    learned = getattr(config, "learned_hparams", None)
    return values | learned() if learned else values


def stacked_hparams(configs) -> dict[str, Any]:
    """`hparams` of several runs' configs (one static signature), stacked: every leaf leads with one entry per run."""
    import jax

    return jax.tree.map(lambda *values: np.stack([np.asarray(v, np.float32) for v in values]),
                        *[hparams(c) for c in configs])


def default_of(f: dataclasses.Field):
    """A config field's default value."""
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def describe(config_cls) -> str:
    """A header, then one line per field (`fields_of` order): name, kind, default, doc (for `jaxrl algos`)."""
    rows = [("field", "kind", "default", "doc")]
    rows += [(f.name, f.metadata["kind"], repr(default_of(f)), f.metadata["doc"]) for f in fields_of(config_cls)]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join("  " + " ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " " + row[3] for row in rows)


def format_value(value) -> str:
    """A field's value as a person reads it: floats to 4 significant digits, tuples as [a,b]."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, tuple):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)


def format_point(point: dict) -> str:
    """Field values as `lr=0.001, clip_eps=0.2` (a sweep point, a PBT member's hyperparameters)."""
    return ", ".join(f"{k}={format_value(v)}" for k, v in point.items())
