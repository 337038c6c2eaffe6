"""Families of MDPs: distributions over an environment's parameters ("contexts"), and the wrapper that
trains over one (a new context at every episode start).

    family = parse_family("length=uniform(0.25,2.5),masspole=uniform(0.05,0.5)", env)
    context = family.sample(key)                     # {"length": [], "masspole": []}
    params = family.params(env.default_params, context)

A spec is comma-separated `field=distribution`, the fields those of the env's params dataclass (gymnax
EnvParams) that hold one number:
    uniform(low,high)  loguniform(low,high)  normal(mean,std)  choice(v1,v2,...)
and any of them `*default`, e.g. `length=uniform(0.5,2)*default`: relative to the field's default value.
Integer fields (max_steps_in_episode) take the sampled value rounded.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.envs.core import Environment, Wrapper
from jaxrl.errors import JaxrlError

DISTRIBUTIONS = {"uniform": 2, "loguniform": 2, "normal": 2, "choice": None}  # name -> number of arguments

# Fields an env computes from others, recomputed when one of their sources varies and never varied themselves
# (gymnax's CartPole keeps total_mass and polemass_length beside the masses and length they come from).
DERIVED: dict[str, dict[str, tuple[tuple[str, ...], Callable[[Any], Any]]]] = {
    "gymnax:CartPole-v1": {
        "total_mass": (("masscart", "masspole"), lambda p: p.masscart + p.masspole),
        "polemass_length": (("masspole", "length"), lambda p: p.masspole * p.length),
    },
}

_TERM = re.compile(r"\s*(\w+)\s*=\s*(\w+)\s*\(([^()]*)\)\s*(\*\s*default)?\s*(,|$)")


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One varied field: `kind` with `args`, times the field's default when `relative`."""

    field: str
    kind: str
    args: tuple[float, ...]
    relative: bool
    default: float
    integer: bool

    def sample(self, key: jax.Array) -> jax.Array:
        a = self.args
        if self.kind == "uniform":
            x = jax.random.uniform(key, minval=a[0], maxval=a[1])
        elif self.kind == "loguniform":
            x = jnp.exp(jax.random.uniform(key, minval=math.log(a[0]), maxval=math.log(a[1])))
        elif self.kind == "normal":
            x = a[0] + a[1] * jax.random.normal(key)
        else:
            x = jnp.asarray(a, jnp.float32)[jax.random.randint(key, (), 0, len(a))]
        return x * self.default if self.relative else x

    def cast(self, x: jax.Array) -> jax.Array:
        return jnp.round(x).astype(jnp.int32) if self.integer else jnp.asarray(x, jnp.float32)


@dataclasses.dataclass(frozen=True)
class Family:
    """A distribution over an env's parameters: independent `dims`, plus the fields derived from them."""

    spec: str
    dims: tuple[Dimension, ...]
    derived: dict

    @property
    def fields(self) -> list[str]:
        return [d.field for d in self.dims]

    def sample(self, key: jax.Array) -> dict[str, jax.Array]:
        """One context: field -> scalar value (cast to the field's type)."""
        keys = jax.random.split(key, len(self.dims))
        return {d.field: d.cast(d.sample(k)) for d, k in zip(self.dims, keys)}

    def sample_many(self, key: jax.Array, n: int) -> dict[str, jax.Array]:
        """`n` contexts: field -> [n]."""
        return jax.jit(jax.vmap(self.sample))(jax.random.split(key, n))

    def cast(self, context: dict) -> dict[str, jax.Array]:
        """Values given from outside (k-means centroids, a context read back) as the fields' types."""
        return {d.field: d.cast(jnp.asarray(context[d.field])) for d in self.dims}

    def params(self, base: Any, context: dict) -> Any:
        """`base` (the env's params) with the context's values and the fields derived from them."""
        params = base.replace(**context)
        for name, (sources, derive) in self.derived.items():
            if set(sources) & set(context):
                params = params.replace(**{name: derive(params)})
        return params


def variable_fields(env: Environment) -> dict[str, float]:
    """The env's parameters a family may vary -> their default values (numbers only, derived ones left out)."""
    params = env.default_params
    if not dataclasses.is_dataclass(params):
        return {}
    derived = DERIVED.get(env.env_id, {})
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(params)
            if f.name not in derived and isinstance(getattr(params, f.name), (int, float))
            and not isinstance(getattr(params, f.name), bool)}


def parse_family(spec: str, env: Environment) -> Family:
    """`field=distribution(...)[*default],...` over the params of `env` (see the module docstring)."""
    variable = variable_fields(env)
    if not variable:
        why = ("its adapter builds the physical system into the env object and passes no parameters to step"
               if env.env_id.startswith("brax:") else "it has no parameters dataclass of numbers")
        raise JaxrlError(f"family {spec!r}: {env.env_id} has no parameters a family can vary: {why}")
    derived = DERIVED.get(env.env_id, {})
    dims, pos = [], 0
    text = spec.strip()
    while pos < len(text):
        match = _TERM.match(text, pos)
        if not match:
            raise JaxrlError(f"family {spec!r}: cannot read {text[pos:]!r}; expected field=uniform(low,high), "
                             f"loguniform(low,high), normal(mean,std) or choice(v1,...), optionally *default, "
                             f"comma-separated")
        field, kind, raw, relative = match.group(1), match.group(2), match.group(3), bool(match.group(4))
        pos = match.end()
        if field in derived:
            raise JaxrlError(f"family {spec!r}: {field} is derived from {', '.join(derived[field][0])}; vary those")
        if field not in variable:
            raise JaxrlError(f"family {spec!r}: {env.env_id} has no parameter {field!r}; "
                             f"valid: {', '.join(variable)}")
        if field in (d.field for d in dims):
            raise JaxrlError(f"family {spec!r}: {field} is given twice")
        dims.append(_dimension(spec, field, kind, raw, relative, variable[field]))
    if not dims:
        raise JaxrlError(f"family {spec!r}: names no parameter; valid: {', '.join(variable)}")
    return Family(spec, tuple(dims), derived)


def _dimension(spec: str, field: str, kind: str, raw: str, relative: bool, default) -> Dimension:
    if kind not in DISTRIBUTIONS:
        raise JaxrlError(f"family {spec!r}: {field}={kind}(...): unknown distribution; "
                         f"valid: {', '.join(DISTRIBUTIONS)}")
    try:
        args = tuple(float(a) for a in raw.split(",")) if raw.strip() else ()
    except ValueError:
        raise JaxrlError(f"family {spec!r}: {field}={kind}({raw}): arguments must be numbers") from None
    arity = DISTRIBUTIONS[kind]
    if (arity is not None and len(args) != arity) or not args or not all(map(math.isfinite, args)):
        wanted = f"{arity} numbers" if arity else "at least one number"
        raise JaxrlError(f"family {spec!r}: {field}={kind}({raw}): takes {wanted}")
    if kind in ("uniform", "loguniform") and not args[0] < args[1]:
        raise JaxrlError(f"family {spec!r}: {field}={kind}({raw}): low must be < high")
    if kind == "loguniform" and args[0] <= 0:
        raise JaxrlError(f"family {spec!r}: {field}={kind}({raw}): low must be > 0")
    if kind == "normal" and args[1] < 0:
        raise JaxrlError(f"family {spec!r}: {field}={kind}({raw}): std must be >= 0")
    return Dimension(field, kind, args, relative, float(default), isinstance(default, int))


@struct.dataclass
class FamilyState:
    env_state: Any
    context: dict  # field -> value of the running episode's parameters


class ParamFamily(Wrapper):
    """Draws new parameters from `family` at every reset and steps the episode with them; the context stays
    in the state. Wrap the bare env (under AutoReset), so that every episode start draws a new one."""

    STATE_HOOKS = ("action_mask", "active", "world_state")  # what AgentView reads from a multi-agent env's state

    def __init__(self, env: Environment, family: Family):
        super().__init__(env)
        self.family = family

    def __getattr__(self, name):
        attr = getattr(self.env, name)
        return (lambda state: attr(state.env_state)) if name in self.STATE_HOOKS else attr

    def reset(self, key, params):
        context_key, key = jax.random.split(key)
        context = self.family.sample(context_key)
        obs, state = self.env.reset(key, self.family.params(params, context))
        return obs, FamilyState(state, context)

    def step(self, key, state, action, params):
        obs, env_state, reward, terminated, truncated, info = self.env.step(
            key, state.env_state, action, self.family.params(params, state.context))
        return obs, FamilyState(env_state, state.context), reward, terminated, truncated, info
