"""Proximal Policy Optimisation (Schulman et al. 2017), discrete and continuous actions.

With `recurrent`, the actor and critic carry a memory (GRU or S5, `jaxrl.networks.RecurrentActorCritic`)
through the rollout, zeroed at episode starts, and learn on whole env sequences replayed from their first
memory, as multi-agent PPO does.

Reads top to bottom: config, runner state, `make_program` (init + one update:
collect_rollout -> compute_advantages -> update_epochs), `policy_state` and
`make_policy` (the deterministic policy used by `jaxrl eval`), and the `ALGORITHM` it declares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl import distributions, envs, loop
from jaxrl.algos.base import Algorithm, EnvFamilyConfig, Program, RolloutSchedule, RolloutState, make_env
from jaxrl.config import ConfigError, SeedFields, check_run_fields, run, static, validate_fields
from jaxrl.devices import vec_env_axes
from jaxrl.losses import (OBJECTIVES, PPOHyperparameters, PPOStructure, ValueHeadConfig, drift_params, gae,
                          load_drift, ppo_loss)
from jaxrl.networks import (ActorCritic, ConvTorso, RecurrentActorCritic, RecurrentConfig, check_conv, flatten_obs,
                            replay_sequence, zero_memory)
from jaxrl.optim import make_optimizer, rollout_epochs
from jaxrl.rollout import (RecurrentPolicy, collect_rollout, episode_metrics, episode_starts, minibatch_split,
                           rollout_minibatches, sequence_minibatches)


@dataclass(frozen=True)
class Config(RolloutSchedule, PPOStructure, PPOHyperparameters, ValueHeadConfig, RecurrentConfig, ConvTorso,
             EnvFamilyConfig, SeedFields):
    # static: shapes and program structure (num_envs, num_steps: RolloutSchedule's defaults)
    env: str = static("gymnax:CartPole-v1", "environment id (see `jaxrl envs`)")
    num_minibatches: int = static(4, "minibatches per epoch; must divide num_envs*num_steps (recurrent: num_envs)",
                                  low=1)
    normalize_obs: bool = static(False, "standardise observations with running statistics")
    objective: str = static("clip", "policy objective: PPO's clipped surrogate (clip), a learned drift started at "
                                    "PPO's (lpo; ta_lpo also reads the fraction of the run done), or the path of a "
                                    "learned drift .npz (`jaxrl meta` writes them)")
    unroll: int = static(1, "loop unrolling of the rollout scan (speed/compile-time trade-off)", low=1)
    # dynamic: traced numbers, may differ per run inside one program
    lr: float = 1e-3  # PPOHyperparameters' field
    # run: host-side only
    total_timesteps: int = run(250_000, "env steps per seed", low=1)

    def __post_init__(self):
        validate_fields(self)
        self.value_head_spec  # raises ConfigError for an empty value range
        self.check_memory()
        batch = self.steps_per_update
        if batch % self.num_minibatches:
            raise ConfigError(
                f"num_envs*num_steps={self.num_envs}*{self.num_steps}={batch} is not divisible by "
                f"num_minibatches={self.num_minibatches}"
            )
        if self.recurrent and self.num_envs % self.num_minibatches:
            raise ConfigError(f"recurrent minibatches hold whole env sequences: num_envs={self.num_envs} is not "
                              f"divisible by num_minibatches={self.num_minibatches}")
        if self.recurrent and self.conv_channels:
            raise ConfigError(f"conv_channels={list(self.conv_channels)}: convolutions are for feed-forward policies "
                              f"(recurrent=true embeds observations with a dense layer)")
        if self.total_timesteps < batch:
            raise ConfigError(
                f"total_timesteps={self.total_timesteps} is smaller than one update "
                f"(num_envs*num_steps={batch})"
            )
        check_run_fields(self)
        if self.objective not in OBJECTIVES:
            load_drift(self.objective)  # raises ConfigError for a path that holds no learned drift

    def learned_hparams(self) -> dict:
        """A learned objective's drift parameters, traced like the dynamic fields (an outer loop vmaps runs over
        them, `jaxrl.meta`); PPO's clipped surrogate has none."""
        if self.objective == "clip":
            return {}
        return {"drift": drift_params(self.objective) if self.objective in OBJECTIVES else load_drift(self.objective)}


# Settings known to work, applied under the user's own (see README's results table).
PRESETS: dict[str, dict[str, Any]] = {
    "brax:": dict(num_envs=32, num_steps=64, num_minibatches=8, update_epochs=4, lr=3e-4, ent_coef=0.0,
                  normalize_obs=True, max_grad_norm=0.5, total_timesteps=1_000_000),
    # The support of a categorical critic (value_head=hl_gauss or two_hot; a scalar one ignores it). CartPole pays
    # 1 per step and its time limit bootstraps, so at gamma=0.99 values lie in [1, 1/(1-gamma)=100]; a margin of
    # 10 (over 5 HL-Gauss sigmas with 51 bins) keeps the projected targets whole at both ends. Other gammas: set
    # value_max to about 1.1/(1-gamma).
    "gymnax:CartPole": dict(value_min=-10.0, value_max=110.0),
    # bsuite's MemoryChain (memory length 5): the context bit is shown at the start, asked for 5 steps later.
    # GRU and S5 both evaluate at return 1.0 (4 seeds x 100 episodes; training return 0.997) after these 32k
    # steps, run ~13 s on 2 shared CPU cores after a 5-35 s compile; feed-forward PPO stays at chance
    # (eval -0.045, training 0.005) with recurrent=false.
    "gymnax:MemoryChain": dict(recurrent=True, memory_size=32, num_envs=16, num_steps=64, total_timesteps=32_768),
}


@struct.dataclass
class RecurrentRunnerState(RolloutState):
    """A recurrent run's state: its own class, so that feed-forward runs keep the state (and the checkpoints)
    they had before recurrence existed."""

    memory: Any  # (actor, critic) memories [num_envs, memory_width]


def make_network(config: Config, env: envs.Environment, env_params) -> tuple[ActorCritic | RecurrentActorCritic,
                                                                               bool]:
    if env.num_agents is not None:
        raise ConfigError(f"ppo is a single-agent algorithm; {config.env} has {env.num_agents} agents")
    act_space = env.action_space(env_params)
    discrete = isinstance(act_space, envs.Discrete)
    action_dim = act_space.n if discrete else envs.flat_dim(act_space)
    obs_shape = env.observation_space(env_params).shape
    if config.recurrent:
        return RecurrentActorCritic(action_dim, discrete, config.hidden_sizes, config.activation, config.memory_size,
                                    config.value_head_spec.outputs, config.memory, config.memory_layers), discrete
    image_shape = check_conv(config.conv_channels, config.conv_kernel, obs_shape, config.env)
    return ActorCritic(action_dim, discrete, len(obs_shape), config.hidden_sizes, config.activation,
                       config.conv_channels, config.conv_kernel, image_shape,
                       value_outputs=config.value_head_spec.outputs), discrete


def make_program(config: Config) -> loop.Program:
    base_env = make_env(config)
    env_params = base_env.default_params
    network, discrete = make_network(config, base_env, env_params)
    env = envs.make_vec_env(base_env, config.num_envs, normalize_obs=config.normalize_obs)
    value_head = config.value_head_spec
    recurrent = config.recurrent
    obs_ndim = len(base_env.observation_space(env_params).shape)

    def step_recurrent(params, memory, obs):
        """One step of a recurrent network (memory of new episodes already zeroed): obs [N, *obs_shape]."""
        flat = flatten_obs(obs, obs_ndim)
        return network.apply(params, memory, flat, jnp.zeros(flat.shape[:-1], bool))

    def init(key, hp):
        key, net_key, env_key = jax.random.split(key, 3)
        obs, env_state = env.reset(env_key, env_params)
        if recurrent:
            memory = zero_memory(network, config.num_envs)
            params = network.init(net_key, jax.tree.map(lambda m: m[:1], memory), flatten_obs(obs[:1], obs_ndim),
                                  jnp.zeros(1, bool))
        else:
            memory, params = None, network.init(net_key, obs)
        opt_state = make_optimizer(0.0, hp["max_grad_norm"]).init(params)
        hp = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), hp)
        state = RolloutState(params, opt_state, env_state, obs, key, jnp.int32(0), jnp.int32(config.num_updates), hp)
        return RecurrentRunnerState(**vars(state), memory=memory) if recurrent else state

    def policy(params):
        def act(key, obs):
            dist, value_out = network.apply(params, obs)
            action, log_prob = distributions.sample_log_prob(key, dist, discrete)
            return action, {"log_prob": log_prob, "value": value_head.value(value_out)}

        def act_recurrent(key, obs, memory):  # collect_rollout has zeroed the memory of new episodes
            memory, dist, value_out = step_recurrent(params, memory, obs)
            action, log_prob = distributions.sample_log_prob(key, dist, discrete)
            return action, {"log_prob": log_prob, "value": value_head.value(value_out), "memory": memory}, memory

        return act_recurrent if recurrent else act

    def compute_advantages(params, traj, hp):
        if recurrent:  # V(next obs) one recurrent step on from the memory after each step
            next_values = value_head.value(jax.vmap(lambda m, o: step_recurrent(params, m, o)[2])(
                traj.extras["memory"], traj.next_obs))
        else:
            next_values = value_head.value(network.apply(params, traj.next_obs, method=ActorCritic.critic_outputs))
        return gae(traj.reward, traj.extras["value"], next_values, traj.terminated, traj.done,
                   hp["gamma"], hp["gae_lambda"])

    def loss_fn(params, batch, hp):
        if recurrent:  # sequences [T, S/M, ...] replayed from their first memory
            (traj, advantages, targets, reset), memory = batch
            _, dist, value_out = replay_sequence(network, params, memory, flatten_obs(traj.obs, obs_ndim), reset)
        else:
            traj, advantages, targets = batch
            dist, value_out = network.apply(params, traj.obs)
        return ppo_loss(distributions.log_prob(dist, traj.action, discrete), distributions.entropy(dist, discrete),
                        value_out, traj.extras["log_prob"], traj.extras["value"], advantages, targets, hp,
                        value_head, config.clip_value, config.normalize_advantages)

    def update(state: RolloutState):
        hp = state.hparams
        key, rollout_key, epoch_key = jax.random.split(state.key, 3)
        traj, env_state, obs, memory = collect_rollout(
            env, env_params, policy(state.params), state.env_state, state.obs, rollout_key, config.num_steps,
            config.unroll, state.memory if recurrent else None)
        advantages, targets = compute_advantages(state.params, traj, hp)
        frac = 1.0 - state.update_idx / state.num_updates if config.anneal_lr else 1.0
        lr = hp["lr"] * frac
        if "drift" in hp:  # a learned objective reads how far the run is (TA-LPO)
            hp = hp | {"progress": (state.update_idx / state.num_updates).astype(jnp.float32)}
        if recurrent:  # replayed from the rollout's first memory, zeroed where the previous step ended
            steps = (traj.replace(extras={k: v for k, v in traj.extras.items() if k != "memory"}), advantages,
                     targets, episode_starts(traj.done))
            batch, minibatches = (steps, state.memory), lambda key, b, m: sequence_minibatches(key, *b, m)
        else:
            batch, minibatches = (traj, advantages, targets), rollout_minibatches
        params, opt_state, stats = rollout_epochs(loss_fn, state.params, state.opt_state, batch, epoch_key,
                                                  config.update_epochs, config.num_minibatches, lr,
                                                  hp["max_grad_norm"], hp, minibatches=minibatches)
        metrics = stats | episode_metrics(traj) | {"lr": lr}
        new_state = state.replace(params=params, opt_state=opt_state, env_state=env_state, obs=obs, key=key,
                                  update_idx=state.update_idx + 1)
        return (new_state.replace(memory=memory) if recurrent else new_state), metrics

    # Envs split over devices in blocks that keep the minibatches' env groups whole (recurrent: minibatches
    # draw whole sequences from all envs at random, so a run's envs stay on one device).
    _, env_groups = minibatch_split(config.num_minibatches, config.num_steps)
    env_axes = lambda state: vec_env_axes(state, env, **({"memory": 0} if recurrent else {}))
    return Program(init, update, config.num_updates, config.steps_per_update, config.updates_per_chunk,
                   env_axes=env_axes, env_shards=0 if recurrent else config.num_envs // env_groups)


def policy_state(state: RolloutState) -> dict:
    """What a trained policy needs outside training: parameters and observation statistics."""
    out = {"params": state.params}
    if hasattr(state.env_state, "obs_stats"):
        out["obs_stats"] = {"mean": state.env_state.obs_stats.mean, "var": state.env_state.obs_stats.var,
                            "count": state.env_state.obs_stats.count}
    return out


def make_policy(config: Config, env: envs.Environment, env_params, stochastic: bool = False):
    """`act(policy_state, obs, key=None) -> action`: the deterministic (mode) action, or a sample drawn
    with `key` when `stochastic`; obs [*obs_shape] or batched. With `config.recurrent`: a deterministic
    `RecurrentPolicy` on batched obs [N, *obs_shape], carrying its memories."""
    from jaxrl.normalize import RunningStats, normalize

    network, discrete = make_network(config, env, env_params)
    if config.recurrent:
        obs_ndim = len(env.observation_space(env_params).shape)

        def act_recurrent(pstate, obs, memory):
            if "obs_stats" in pstate:
                obs = normalize(RunningStats(**pstate["obs_stats"]), obs)
            flat = flatten_obs(obs, obs_ndim)
            memory, dist = network.apply(pstate["params"], memory, flat, jnp.zeros(flat.shape[:-1], bool),
                                         method=RecurrentActorCritic.policy)
            return distributions.mode(dist, discrete), memory

        return RecurrentPolicy(act_recurrent, lambda n: zero_memory(network, n))

    def act(pstate, obs, key=None):
        if "obs_stats" in pstate:
            obs = normalize(RunningStats(**pstate["obs_stats"]), obs)
        dist, _ = network.apply(pstate["params"], obs)
        if stochastic:
            return distributions.sample_log_prob(key, dist, discrete)[0]
        return distributions.mode(dist, discrete)

    return act


ALGORITHM = Algorithm("ppo", "Proximal Policy Optimisation, discrete and continuous actions; recurrent (GRU, S5)",
                      Config, make_program, policy_state, make_policy, PRESETS,
                      recurrent=lambda config: config.recurrent)
make_train = ALGORITHM.make_train
