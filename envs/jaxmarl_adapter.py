"""Adapter for jaxmarl multi-agent environments (ids `jaxmarl:<name>`).

Agents are stacked on a leading axis in the env's `agents` order:
obs [num_agents, *obs_shape] (float32), action [num_agents] (discrete) or
[num_agents, act_dim] (continuous), reward / terminated / truncated [num_agents].
Where agents' observation shapes differ (e.g. MPE simple_tag, simple_push),
each observation is flattened and zero-padded to the largest size. Where
action sets differ, the action space is the largest one: discrete actions past
an agent's own range are clipped to its last action and masked out of
`info["action_mask"]`; continuous actions are cut to each agent's size.

info: "agent_ids" (one-hot [num_agents, num_agents]); "action_mask"
([num_agents, n] bool, discrete only; from `get_avail_actions`, or hanabi's
`get_legal_moves`, else all valid); "world_state" where the env provides one
(SMAX's `obs["world_state"]`, jaxnav's `get_world_state`; other envs have
none: concatenate the stacked obs if a critic needs it); and any
per-agent info dict of the env (e.g. overcooked's "shaped_reward"), stacked.
Like `final_obs`, these describe the state *before* AutoReset resets it; call
`action_mask(state)` on the unwrapped env for the mask of a reset state.

jaxmarl's `step` auto-resets, so `step_env` is used and AutoReset does it.
Time limits arrive as jaxmarl dones; they are split per family:
- MPE, overcooked, overcooked_v2, coin_game: no terminal states, so every done
  is the step limit -> truncated.
- SMAX, HeuristicEnemySMAX: an agent is terminated when it dies or a team is
  wiped out; an end with both teams alive is the step limit -> truncated.
- MABrax (ant_4x2, ...): brax's `truncation` flag; built with auto_reset=False.
- switch_riddle, jaxnav: a done with `state.step >= max_steps` -> truncated
  (so a true terminal on the very last step counts as truncated, and jaxnav
  agents that finished earlier switch to truncated at the limit).
- hanabi and anything else: every done is terminated.
SMAX scenarios have their own ids:
- `jaxmarl:HeuristicEnemySMAX/<map>` (e.g. /3m): the allies against jaxmarl's scripted enemy,
  jaxmarl's rewards (the benchmark setting of its SMAX baselines).
- `jaxmarl:SMAX/<map>`: both teams are agents, for self-play. The reward is zero-sum: each team's
  jaxmarl reward (damage dealt + 1 for a win) minus the other team's, so a game cut by the step
  limit goes to the side that dealt more damage. On symmetric maps (equal teams of equal units:
  3m, 2s3z, 3s5z, 8m, 25m) the env declares the two teams as `sides`, so `jaxrl selfplay`
  accepts it, and `fixed_opponents` names the heuristic enemy for evaluation.
Not supported: storm, storm_2p, storm_np (observations not keyed by agent),
JaxRobotarium_* (needs the jaxrobotarium package); LearnedPolicyEnemySMAX
needs `policy=` and `params=` keyword arguments.
"""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.envs.core import Environment
from jaxrl.envs.deferred import defer_import
from jaxrl.envs.spaces import Box, Discrete
from jaxrl.errors import JaxrlError

_LIMIT_ONLY = {"SimpleMPE", "Overcooked", "OvercookedV2", "CoinGame"}  # class names in the env's MRO
_SMAX = {"SMAX", "EnemySMAX"}


def _obs_bounds(space, shape):
    """The declared bounds where they match the real observations, else unbounded."""
    kind = type(space).__name__
    if kind == "Box" and tuple(np.atleast_1d(space.shape)) == shape:
        return np.asarray(space.low), np.asarray(space.high)
    if kind == "MultiDiscrete" and tuple(space.shape) == shape:
        return 0, np.asarray(space.num_categories) - 1
    return -np.inf, np.inf


class JaxMarlEnv(Environment):
    def __init__(self, env, env_id: str, zero_sum_teams: bool = False):
        self._env = env
        self.env_id = env_id
        self.agents = list(env.agents)
        self.num_agents = len(self.agents)
        obs, state = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
        if not isinstance(obs, dict) or any(a not in obs for a in self.agents):
            raise JaxrlError(f"{env_id}: observations are not keyed by agent; unsupported")
        shapes = [tuple(obs[a].shape) for a in self.agents]
        self._pad = None if len(set(shapes)) == 1 else max(int(np.prod(s)) for s in shapes)
        self._obs_shape = shapes[0] if self._pad is None else (self._pad,)
        low, high = _obs_bounds(env.observation_space(self.agents[0]), self._obs_shape)
        self._obs_space = Box.make(low, high, self._obs_shape)
        self._ws_in_obs = "world_state" in obs
        # MPE facmac's get_world_state returns the per-agent obs dict: not a world state
        self._ws_fn = getattr(env, "get_world_state", None)
        if self._ws_fn is not None and not hasattr(jax.eval_shape(self._ws_fn, state), "shape"):
            self._ws_fn = None
        self._act_space = self._action_space([env.action_space(a) for a in self.agents])
        mro = {c.__name__ for c in type(env).__mro__}
        self._family = ("limit" if mro & _LIMIT_ONLY else "smax" if mro & _SMAX else "mabrax" if "MABraxEnv" in mro
                        else "steps" if hasattr(env, "max_steps") else "none")
        from jaxmarl.environments.multi_agent_env import MultiAgentEnv

        self._mask_fn = (env.get_avail_actions if type(env).get_avail_actions is not MultiAgentEnv.get_avail_actions
                         else getattr(env, "get_legal_moves", None))
        self._teams = np.asarray(env.teams, np.int32) if zero_sum_teams else None
        if zero_sum_teams:
            n = env.num_allies
            types = np.asarray(env.scenario if env.scenario is not None else np.zeros(self.num_agents))
            symmetric = (n == env.num_enemies and np.array_equal(types[:n], types[n:])
                         and not env.smacv2_unit_type_generation)
            if symmetric:  # a two-sided zero-sum game: self-play applies
                self.sides, self.zero_sum = tuple(int(t) for t in self._teams), True
                map_name = env_id.partition("/")[2]
                # side 0 against jaxmarl's scripted enemy; its self-play reward makes a win +1, a loss -1
                self.fixed_opponents = {"heuristic": lambda: make(f"HeuristicEnemySMAX/{map_name}",
                                                                  use_self_play_reward=True)}

    def _action_space(self, spaces):
        kinds = {type(s).__name__ for s in spaces}
        if kinds == {"Discrete"}:
            self._sizes = [int(s.n) for s in spaces]
            return Discrete(max(self._sizes))
        if kinds == {"Box"} and all(len(np.atleast_1d(s.shape)) == 1 for s in spaces):
            self._sizes = [int(np.prod(s.shape)) for s in spaces]
            lows = np.full((len(spaces), max(self._sizes)), np.inf, np.float32)
            highs = -lows
            for i, s in enumerate(spaces):  # per dim: the widest bounds of the agents that have it
                lows[i, : self._sizes[i]] = np.broadcast_to(np.asarray(s.low), (self._sizes[i],))
                highs[i, : self._sizes[i]] = np.broadcast_to(np.asarray(s.high), (self._sizes[i],))
            return Box.make(lows.min(0), highs.max(0), (max(self._sizes),))
        raise JaxrlError(f"{self.env_id}: unsupported action spaces {sorted(kinds)}")

    def _stack_obs(self, obs):
        xs = [jnp.asarray(obs[a], jnp.float32) for a in self.agents]
        if self._pad is not None:
            xs = [jnp.pad(x.ravel(), (0, self._pad - x.size)) for x in xs]
        return jnp.stack(xs)

    def _to_dict(self, action):
        if isinstance(self._act_space, Discrete):
            return {a: jnp.minimum(action[i], n - 1) for i, (a, n) in enumerate(zip(self.agents, self._sizes))}
        return {a: action[i, :d] for i, (a, d) in enumerate(zip(self.agents, self._sizes))}

    def action_mask(self, state) -> jax.Array:
        """[num_agents, n] bool: the actions each agent may take in `state`."""
        n = self._act_space.n
        mask = jnp.arange(n)[None, :] < jnp.asarray(self._sizes)[:, None]
        if self._mask_fn is not None:
            avail = self._mask_fn(state)
            rows = [jnp.pad(jnp.asarray(avail[a]) > 0, (0, n - size)) for a, size in zip(self.agents, self._sizes)]
            mask = mask & jnp.stack(rows)
        return mask

    def world_state(self, state):
        """The env's global state (SMAX, jaxnav), or None."""
        return None if self._ws_fn is None else self._ws_fn(state)

    def _ends(self, dones, done_all, state, info):
        """(terminated, truncated) per agent from jaxmarl's dones (see the module docstring)."""
        ended = dones | done_all
        if self._family == "smax":
            inner = getattr(state, "state", state)  # EnemySMAX wraps the SMAX state
            n = self._env.num_allies
            wiped_out = ~jnp.any(inner.unit_alive[:n]) | ~jnp.any(inner.unit_alive[n:])
            terminated = dones | (done_all & wiped_out)
            return terminated, ended & ~terminated
        limit = {
            "limit": lambda: jnp.bool_(True),
            "mabrax": lambda: info["truncation"] > 0,
            "steps": lambda: state.step >= self._env.max_steps,
            "none": lambda: jnp.bool_(False),
        }[self._family]()
        return ended & ~limit, ended & limit

    def reset(self, key, params):
        obs, state = self._env.reset(key)
        return self._stack_obs(obs), state

    def step(self, key, state, action, params):
        obs, state, reward, dones, env_info = self._env.step_env(key, state, self._to_dict(action))
        done_all = jnp.asarray(dones["__all__"], bool)
        per_agent = jnp.stack([jnp.asarray(dones.get(a, done_all), bool) for a in self.agents])
        terminated, truncated = self._ends(per_agent, done_all, state, env_info)
        info = {"agent_ids": jnp.eye(self.num_agents)}
        if isinstance(self._act_space, Discrete):
            info["action_mask"] = self.action_mask(state)
        if self._ws_in_obs:
            info["world_state"] = obs["world_state"]
        elif self._ws_fn is not None:
            info["world_state"] = self._ws_fn(state)
        for k, v in env_info.items():  # per-agent extras such as overcooked's shaped_reward
            if isinstance(v, dict) and all(a in v for a in self.agents):
                info[k] = jnp.stack([jnp.asarray(v[a], jnp.float32) for a in self.agents])
        rewards = jnp.stack([jnp.asarray(reward[a], jnp.float32) for a in self.agents])
        if self._teams is not None:  # every agent gets its team's reward minus the other team's
            first = np.array([0, self._env.num_allies])
            team = rewards[first]
            rewards = jnp.where(self._teams == 0, team[0] - team[1], team[1] - team[0])
        return self._stack_obs(obs), state, rewards, terminated, truncated, info

    def observation_space(self, params):
        return self._obs_space

    def action_space(self, params):
        return self._act_space


_SMAX_IDS = ("SMAX", "HeuristicEnemySMAX")
_SMAX_MAPS = ("3m", "2s3z", "25m", "3s5z", "8m", "5m_vs_6m", "10m_vs_11m", "27m_vs_30m", "3s5z_vs_3s6z", "3s_vs_5z",
              "6h_vs_8z", "smacv2_5_units", "smacv2_10_units", "smacv2_20_units")
# The ids listed without importing jaxmarl, and those that fail here (tests check both against jaxmarl).
PACKAGE = "jaxmarl"
IDS = (
    "MPE_simple_v3", "MPE_simple_tag_v3", "MPE_simple_world_comm_v3", "MPE_simple_spread_v3", "MPE_simple_crypto_v3",
    "MPE_simple_speaker_listener_v4", "MPE_simple_push_v3", "MPE_simple_adversary_v3", "MPE_simple_reference_v3",
    "MPE_simple_facmac_v1", "MPE_simple_facmac_3a_v1", "MPE_simple_facmac_6a_v1", "MPE_simple_facmac_9a_v1",
    "switch_riddle", "SMAX", "HeuristicEnemySMAX", "ant_4x2", "halfcheetah_6x1", "hopper_3x1", "humanoid_9|8",
    "walker2d_2x3", "hanabi", "overcooked", "overcooked_v2", "coin_game", "jaxnav",
    *(f"{e}/{m}" for e in _SMAX_IDS for m in _SMAX_MAPS),
)
UNAVAILABLE = {
    "LearnedPolicyEnemySMAX": "needs policy= and params= keyword arguments (envs.make from Python)",
    **dict.fromkeys(("storm", "storm_2p", "storm_np"), "observations are not keyed by agent"),
    **dict.fromkeys((f"JaxRobotarium_{n}" for n in ("navigation", "discovery", "material_transport", "warehouse",
                                                    "arctic_transport", "foraging", "rware", "predator_prey")),
                    "needs the jaxrobotarium package (not installed with jaxrl)"),
}


# jaxmarl's package __init__ imports every env family (3.7 s of each process on a 2-core CPU: storm 1.4 s, MABrax
# brax and MuJoCo, ...). These ids are built from their own family's subpackage, under jaxmarl's packages
# deferred (envs.deferred: MPE alone imports in 0.5 s); the rest through jaxmarl.make. id -> (family, class), as
# jaxmarl.make builds them (a test checks).
_MABRAX = {"ant_4x2": "Ant", "halfcheetah_6x1": "HalfCheetah", "hopper_3x1": "Hopper", "humanoid_9|8": "Humanoid",
           "walker2d_2x3": "Walker2d"}
_CLASSES = {
    "MPE_simple_v3": ("mpe", "SimpleMPE"), "MPE_simple_tag_v3": ("mpe", "SimpleTagMPE"),
    "MPE_simple_world_comm_v3": ("mpe", "SimpleWorldCommMPE"), "MPE_simple_spread_v3": ("mpe", "SimpleSpreadMPE"),
    "MPE_simple_crypto_v3": ("mpe", "SimpleCryptoMPE"),
    "MPE_simple_speaker_listener_v4": ("mpe", "SimpleSpeakerListenerMPE"),
    "MPE_simple_push_v3": ("mpe", "SimplePushMPE"), "MPE_simple_adversary_v3": ("mpe", "SimpleAdversaryMPE"),
    "MPE_simple_reference_v3": ("mpe", "SimpleReferenceMPE"), "MPE_simple_facmac_v1": ("mpe", "SimpleFacmacMPE"),
    "MPE_simple_facmac_3a_v1": ("mpe", "SimpleFacmacMPE3a"), "MPE_simple_facmac_6a_v1": ("mpe", "SimpleFacmacMPE6a"),
    "MPE_simple_facmac_9a_v1": ("mpe", "SimpleFacmacMPE9a"), "switch_riddle": ("switch_riddle", "SwitchRiddle"),
    "SMAX": ("smax", "SMAX"), "HeuristicEnemySMAX": ("smax", "HeuristicEnemySMAX"), "hanabi": ("hanabi", "Hanabi"),
    "overcooked": ("overcooked", "Overcooked"), "overcooked_v2": ("overcooked_v2", "OvercookedV2"),
    "coin_game": ("coin_game", "CoinGame"), "jaxnav": ("jaxnav", "JaxNav"),
    **{name: ("mabrax", cls) for name, cls in _MABRAX.items()},
}


def _family(family: str):
    """The module jaxmarl.environments.<family>, without running jaxmarl's package __init__s until they are used."""
    for package in ("jaxmarl", "jaxmarl.environments"):
        defer_import(package)
    return importlib.import_module(f"jaxmarl.environments.{family}")


def ids() -> list[str]:
    import jaxmarl

    scenarios = _family("smax").smax_env.MAP_NAME_TO_SCENARIO
    return list(jaxmarl.registered_envs) + [f"{e}/{m}" for e in _SMAX_IDS for m in scenarios]


def make(name: str, **kwargs) -> Environment:
    base, _, scenario = name.partition("/")
    if scenario:  # SMAX/<map>, HeuristicEnemySMAX/<map>
        kwargs["scenario"] = _family("smax").map_name_to_scenario(scenario)
    if base in _MABRAX:
        kwargs.setdefault("auto_reset", False)  # AutoReset does it
    try:
        if base in _CLASSES:
            family, cls = _CLASSES[base]
            env = getattr(_family(family), cls)(**kwargs)
        else:
            import jaxmarl

            env = jaxmarl.make(name, **kwargs)
    except Exception as err:
        raise JaxrlError(f"jaxmarl:{name} failed to construct: {type(err).__name__}: {err}") from err
    return JaxMarlEnv(env, f"jaxmarl:{name}", zero_sum_teams=bool(scenario) and base == "SMAX")
