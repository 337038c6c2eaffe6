"""The contract every algorithm module declares, and the Program it builds.

An algorithm is one module under jaxrl/algos/ ending in

    ALGORITHM = Algorithm(name=..., Config=..., presets=..., make_program=..., policy_state=..., make_policy=...)

and one line in jaxrl.algos.ALGOS; its Config mixes in EnvFamilyConfig and its make_program builds the env with
`make_env(config)`, so every algorithm trains over MDP families. The drivers (train, resume, eval, sweep, PBT)
and the session see an algorithm only through this record and the Program it builds, so adding one touches no
driver.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import jax
from flax import struct

from jaxrl.config import SharedFields, hparams, static
from jaxrl.errors import JaxrlError

# Every update's metrics carry these episode statistics (sums over the episodes finished in the update),
# from which records, progress and summaries compute returns; `Program.check_metrics` enforces it.
EPISODE_METRICS = ("episodes", "episode_return_sum", "episode_length_sum")
MAX_ADAPTIVE_ROWS = 512  # bounds the metrics buffer of a chunk sized by wall time (x runs x metrics)


@dataclass(frozen=True)
class EnvFamilyConfig:
    """Mixed into every algorithm's Config: training over a family of MDPs (jaxrl.envs.family)."""

    env_family: str = static("", "train over a family of the env's parameters, a new draw at every episode start, "
                                 "e.g. 'length=uniform(0.25,2.5)' (see `jaxrl eval --family`; empty: the env as is)")


@dataclass(frozen=True)
class RolloutSchedule(SharedFields):
    """Mixed into the Configs whose update steps each of `num_envs` envs `num_steps` times: the run's updates
    (of `total_timesteps` env steps) and how many of them a compiled chunk holds (`Program.updates_per_chunk`)."""

    num_envs: int = static(8, "parallel environments per seed", low=1)
    num_steps: int = static(64, "rollout length per environment and update", low=1)
    updates_per_chunk: int = static(0, "updates per compiled chunk between host callbacks (0: chunks of about a "
                                       "second)", low=0)

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.steps_per_update


@struct.dataclass
class RolloutState:
    """The runner state of an algorithm that learns from each update's fresh rollout (ppo, pqn)."""

    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array  # [num_envs, *obs_shape]
    key: jax.Array
    update_idx: jax.Array  # updates done so far
    num_updates: jax.Array  # updates in the whole run (for the learning-rate and exploration schedules)
    hparams: dict  # dynamic config fields as traced scalars


def make_env(config):
    """The env a run trains on: `config.env`, over the family `config.env_family` when one is given. Every
    algorithm's `make_program` builds its env here."""
    from jaxrl import envs
    from jaxrl.envs.family import ParamFamily, parse_family

    env = envs.make(config.env)
    return ParamFamily(env, parse_family(config.env_family, env)) if config.env_family else env


@dataclass(frozen=True)
class Program:
    """One run as pure functions, plus what the drivers need to know about its state without asking."""

    init: Callable[[jax.Array, Any], Any]  # (key, hparams) -> state; hparams: a pytree of traced numbers
    update: Callable[[Any], tuple[Any, dict]]  # state -> (state, metrics: name -> scalar)
    num_updates: int  # updates in the whole run
    steps_per_update: int  # env steps per update (all envs)
    # Updates per compiled chunk between host callbacks (progress, records, checkpoints, signals; a multiple of
    # log_every). 0: the host loop sizes each chunk to take about loop.CHUNK_SECONDS, up to `chunk_capacity`.
    updates_per_chunk: int = 0
    # Data parallelism (jaxrl.devices): `env_axes(state)` gives, for each leaf of one run's state, the
    # axis that indexes its environments (devices.NO_ENV_AXIS: none; a replay buffer [capacity,
    # num_envs, ...] says 1), and `env_shards` the device counts that axis splits over (any divisor; 0: none).
    env_axes: Callable[[Any], Any] | None = None
    env_shards: int = 0
    # NaN isolation: `guarded(state)` marks (pytree of bools) the leaves whose non-finite values mean the run
    # diverged; a diverged chunk is rolled back whole. None: every floating-point leaf.
    guarded: Callable[[Any], Any] | None = None
    # Updates whose metrics are aggregated on the device into one logged row: EPISODE_METRICS and
    # `summed_metrics` add up, the others are averaged.
    log_every: int = 1
    summed_metrics: tuple[str, ...] = ()
    # Parts of the state (top-level fields) a config field sizes, beyond envs, seeds and networks: the memory
    # check names the field when the part is large (a replay buffer: {"buffer": "buffer_size"}).
    sized_by: Mapping[str, str] = field(default_factory=dict)
    # Where the state keeps the hyperparameters `init` was given (resume edits and PBT replace them).
    get_hparams: Callable[[Any], Any] = lambda state: state.hparams
    set_hparams: Callable[[Any, Any], Any] = lambda state, hparams: state.replace(hparams=hparams)

    @functools.cached_property
    def traced_update(self) -> Callable:
        """`update` as one jitted function: the loop, the metrics check and the memory estimate all call it,
        so it is traced once for each state shape (nested in the chunk, XLA inlines it)."""
        return jax.jit(self.update)

    @functools.cached_property
    def traced_init(self) -> Callable:
        """`init` jitted once, for the same reason."""
        return jax.jit(self.init)

    @property
    def chunk_capacity(self) -> int:
        """Most updates one chunk runs (its metrics buffer holds a row per `log_every` of them)."""
        most = self.updates_per_chunk or min(self.num_updates, MAX_ADAPTIVE_ROWS * self.log_every)
        return -(-min(most, self.num_updates) // self.log_every) * self.log_every

    def __post_init__(self):
        if self.updates_per_chunk % self.log_every:
            raise JaxrlError(f"updates_per_chunk={self.updates_per_chunk} must be a multiple of "
                             f"log_every={self.log_every}")

    @property
    def summed(self) -> frozenset[str]:
        return frozenset(EPISODE_METRICS + self.summed_metrics)

    def check_metrics(self, metric_shapes: Mapping[str, Any], algo: str = "the algorithm") -> None:
        """Refuse, before compiling, an update whose metrics break the contract."""
        missing = [k for k in EPISODE_METRICS if k not in metric_shapes]
        if missing:
            raise JaxrlError(f"{algo}'s update returns no {', '.join(missing)} metric(s); every update must report "
                             f"the episode statistics {', '.join(EPISODE_METRICS)}")
        shaped = [f"{k} {tuple(v.shape)}" for k, v in metric_shapes.items() if v.shape != ()]
        if shaped:
            raise JaxrlError(f"{algo}'s update metrics must be scalars; got {', '.join(shaped)}")


@dataclass(frozen=True)
class Algorithm:
    """What an algorithm module declares (see the module docstring)."""

    name: str
    description: str
    Config: type  # frozen dataclass with static/dynamic/run fields (jaxrl.config)
    make_program: Callable[[Any], Program]  # config -> Program (builds the env with make_env, validates it fits)
    policy_state: Callable[[Any], dict]  # runner state -> what the trained policy needs (params, statistics)
    # (config, env, env_params, stochastic=False) -> act(policy_state, obs, key=None) -> action
    make_policy: Callable[..., Callable]
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # env-id prefix -> settings under the user's
    # Optional hooks, declared rather than discovered.
    # evaluate(config, policy, episodes, seed, opponents=None, opening=0) -> dict or None (the generic evaluation)
    evaluate: Callable | None = None
    report: Callable | None = None  # report(config, policy, run_dir, steps_per_update) -> summary entries
    make_actor: Callable | None = None  # league play: (config, env, env_params) -> act(params, obs, key)
    recurrent: Callable[[Any], bool] = lambda config: False  # does the policy carry a hidden state?

    def make_train(self, config) -> Callable:
        """`train(key, hparams=None)` of `config` (see `make_train`); None: the config's dynamic fields."""
        return make_train(self.make_program(config), hparams(config))


def make_train(program: Program, default_hparams) -> Callable:
    """`train(key, hparams=None) -> (state, metrics [num_updates])`: the whole run as one function, vmappable
    over keys and hyperparameters (a pytree of numbers; None: `default_hparams`), so an outer loop (evolution
    strategies, meta-learning) can vmap or differentiate whole runs."""

    def train(key, hparams=None):
        state = program.init(key, default_hparams if hparams is None else hparams)
        return jax.lax.scan(lambda s, _: program.update(s), state, None, program.num_updates)

    return train
