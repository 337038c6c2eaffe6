"""Multi-agent PPO with one set of parameters shared by every agent.

IPPO: each agent's critic sees its own observation. MAPPO (`critic=world_state`, the `mappo`
algorithm): a centralised critic on the env's world state (SMAX, jaxnav) or, where the env has
none, all agents' observations. Agents are the env layer's stacked agent axis; actions are
sampled under each agent's legal-action mask, and agents that do not act (a board-game seat
not to move) do not count in the policy loss.

With `selfplay` set, the env is a two-sided zero-sum game: the learner controls one side of
each env (half the envs each side) and an opponent from `jaxrl.league.selfplay` the other, or
itself on both sides (latest). `selfplay=population` trains `population_size` policies at
once, vmapped, each on its own block of envs.

Reads top to bottom: config, runner state, `make_program` (init + one update:
pick_opponents -> collect_rollout -> compute_advantages -> learn -> league bookkeeping),
`policy_state`, `make_policy`, the `evaluate`/`report` hooks and the `ALGORITHM` it declares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxrl import distributions, envs, loop
from jaxrl.algos.base import Algorithm, EnvFamilyConfig, Program, RolloutSchedule, make_env
from jaxrl.config import ConfigError, SeedFields, check_run_fields, dynamic, run, static, validate_fields
from jaxrl.league import selfplay
from jaxrl.losses import PPOHyperparameters, PPOStructure, ValueHeadConfig, gae, ppo_loss
from jaxrl.networks import (ActorCritic, ConvTorso, RecurrentActorCritic, RecurrentConfig, check_conv,
                            replay_sequence, zero_memory)
from jaxrl.optim import gradient_step, make_optimizer
from jaxrl.rollout import RecurrentPolicy, collect_rollout, episode_starts, sequence_minibatches


@dataclass(frozen=True)
class Config(RolloutSchedule, PPOStructure, PPOHyperparameters, ValueHeadConfig, RecurrentConfig, ConvTorso,
             EnvFamilyConfig, SeedFields):
    # static: shapes and program structure. Defaults: JaxMARL's IPPO baseline on MPE.
    env: str = static("jaxmarl:MPE_simple_spread_v3", "multi-agent environment id (see `jaxrl envs`)")
    num_envs: int = 16
    num_steps: int = 128
    num_minibatches: int = static(4, "minibatches per epoch; must divide (num_envs/policies)*num_agents*num_steps",
                                  low=1)
    conv_channels: tuple[int, ...] = static((), "channels of VALID stride-1 convolutions applied first to each "
                                                "agent's image observation [H, W, C] (empty: none; feed-forward "
                                                "only)", low=1)
    agent_ids: bool = static(False, "append each agent's one-hot id to its observation")
    critic: str = static("local", "critic input: local (own observation, IPPO) or world_state (MAPPO)",
                         choices=("local", "world_state"))
    selfplay: str = static("off", "self-play opponents on a two-sided zero-sum game", choices=selfplay.MODES)
    population_size: int = static(1, "policies trained together (selfplay=population)", low=1)
    pool_size: int = static(16, "past policies kept on device (pool/pfsp opponents; rated after training)", low=1)
    snapshot_every: int = static(0, "updates between pool snapshots (0: pool_size snapshots over the run)", low=0)
    scripted_opponents: tuple[str, ...] = static((), "the game's scripted players (e.g. heuristic) that join the "
                                                      "league (pool/pfsp/population) as fixed opponents, drawn like "
                                                      "its other members unless scripted_share is set")
    opponent_groups: int = static(4, "env groups per policy, each facing its own opponent per update", low=1)
    unroll: int = static(1, "loop unrolling of the rollout scan", low=1)
    # dynamic: traced numbers
    pfsp_power: float = dynamic(2.0, "pfsp: opponent weight (1 - learner's score against it in its weaker side)^p",
                                 low=0.0)
    scripted_share: float = dynamic(0.0, "share of opponent draws reserved for scripted_opponents (0: drawn "
                                         "by the same weights as the other league members)", low=0.0, high=1.0)
    opponent_random: float = dynamic(0.0, "pool/pfsp/population: chance that an opponent's move is a uniformly "
                                          "random legal one, so the learner meets positions its opponents avoid",
                                     low=0.0, high=1.0)
    # run: host-side only
    total_timesteps: int = run(10_000_000, "env steps per seed (one step of an env moves all its agents)", low=1)

    def __post_init__(self):
        validate_fields(self)
        self.value_head_spec  # raises ConfigError for an empty value range
        self.check_memory()
        population = self.selfplay == "population"
        if population != (self.population_size > 1):
            raise ConfigError(f"population_size={self.population_size} needs selfplay=population with a size >= 2 "
                              f"(selfplay={self.selfplay})")
        if self.selfplay != "off" and self.num_envs % (2 * self.blocks):
            raise ConfigError(
                f"num_envs={self.num_envs} must split into {self.policies} policies x {self.blocks // self.policies} "
                f"opponent groups x 2 seats; use a multiple of {2 * self.blocks}")
        if self.opponent_random > 0 and self.selfplay not in ("pool", "pfsp", "population"):
            raise ConfigError(f"opponent_random={self.opponent_random} applies to the opponents of selfplay=pool, "
                              f"pfsp or population; selfplay={self.selfplay}")
        if self.scripted_opponents and self.selfplay not in ("pool", "pfsp", "population"):
            raise ConfigError(f"scripted_opponents={list(self.scripted_opponents)} join the opponents of selfplay=pool, "
                              f"pfsp or population; selfplay={self.selfplay} (set scripted_opponents=[] for it)")
        if self.scripted_share > 0 and not self.scripted_opponents:
            raise ConfigError(f"scripted_share={self.scripted_share} reserves opponent draws for scripted_opponents, "
                              f"and there are none (set scripted_opponents=[heuristic] or scripted_share=0)")
        if self.recurrent and self.conv_channels:
            raise ConfigError(f"conv_channels={list(self.conv_channels)}: convolutions are for feed-forward policies "
                              f"(recurrent=true embeds observations with a dense layer)")
        if self.recurrent and self.selfplay != "off":
            raise ConfigError(f"recurrent policies train with selfplay=off only (opponents and match players are "
                              f"stateless); got selfplay={self.selfplay}")
        if self.total_timesteps < self.steps_per_update:
            raise ConfigError(f"total_timesteps={self.total_timesteps} is smaller than one update "
                              f"(num_envs*num_steps={self.steps_per_update})")
        check_run_fields(self)

    @property
    def policies(self) -> int:
        """Policies trained (P): the population size, else 1."""
        return self.population_size if self.selfplay == "population" else 1

    @property
    def blocks(self) -> int:
        """Env blocks of one update that each face one opponent (P * groups), 1 without opponents."""
        sampled = self.selfplay in ("pool", "pfsp", "population")
        return self.policies * (self.opponent_groups if sampled else 1)

    @property
    def snapshot_interval(self) -> int:
        return self.snapshot_every or max(1, -(-self.num_updates // self.pool_size))


PRESETS: dict[str, dict[str, Any]] = {
    # Board games: bigger nets, more envs, shorter runs; self-play against a pool of past selves.
    # Tic-tac-toe: mirror self-play with entropy kept up meets every opening; this never lost to minimax
    # (1,000 games per seat, 3 seeds), while pfsp pools of near-deterministic snapshots left O blind spots.
    "jaxrl:tictactoe": dict(num_envs=64, num_steps=32, hidden_sizes=(128, 128), lr=1e-3, ent_coef=0.03,
                            normalize_advantages=False, selfplay="latest", total_timesteps=5_000_000),
    # Connect-four: pure self-play (any mode) learns to race for four and almost never blocks (its
    # snapshots scored 0.05-0.35 against the heuristic, 5e6-1e7 steps). The heuristic as a league member
    # teaches blocking. Drawn by pfsp weight alone it got ~1/5 of the games and O plateaued at ~87% wins
    # against it (still missing single blocks); with 80% of the draws reserved: 98.6% / 97.0% against it
    # as X / O, 99.8% / 99.5% against random (deterministic, 1,000 games per seat) after 2e7 steps.
    "jaxrl:connect4": dict(num_envs=128, num_steps=32, hidden_sizes=(128, 128), lr=5e-4, ent_coef=0.05,
                           normalize_advantages=False, selfplay="pfsp", scripted_opponents=("heuristic",),
                           scripted_share=0.8, total_timesteps=20_000_000),
    # SMAX 3m vs 3m self-play, with JaxMARL's SMAX IPPO optimiser settings (lr 4e-3, clip 0.05, grad norm
    # 0.25, relu): 83% against the heuristic enemy over 1,000 games after 5e6 steps (64% with lr 5e-4, tanh).
    "jaxmarl:SMAX/3m": dict(num_envs=64, num_steps=64, hidden_sizes=(128, 128), activation="relu", lr=4e-3,
                            clip_eps=0.05, max_grad_norm=0.25, ent_coef=0.01, selfplay="latest",
                            total_timesteps=5_000_000),
    "jaxrl:sumo": dict(num_envs=64, num_steps=64, hidden_sizes=(64, 64), lr=3e-4, selfplay="pfsp",
                       total_timesteps=5_000_000),
}


@struct.dataclass
class RunnerState:
    params: Any  # [P, ...] one parameter set per trained policy
    opt_state: Any  # [P, ...]
    env_state: Any
    obs: dict  # AgentView observations, leaves [num_envs, num_agents, ...]
    memory: Any  # recurrent: (actor, critic) memories [num_envs, num_agents, memory_width]; else None
    key: jax.Array
    update_idx: jax.Array
    num_updates: jax.Array
    hparams: dict
    league: selfplay.League


def make_network(config: Config, env: envs.Environment, env_params):
    if env.num_agents is None:
        raise ConfigError(f"{config_name(config)} is a multi-agent algorithm; {config.env} is single-agent "
                          f"(use --algo ppo)")
    act_space = env.action_space(env_params)
    discrete = isinstance(act_space, envs.Discrete)
    action_dim = act_space.n if discrete else envs.flat_dim(act_space)
    value_outputs = config.value_head_spec.outputs
    if config.recurrent:
        return RecurrentActorCritic(action_dim, discrete, config.hidden_sizes, config.activation,
                                    config.memory_size, value_outputs, config.memory, config.memory_layers), discrete
    image_shape = ()
    if config.conv_channels:
        view = jax.eval_shape(lambda k: envs.AgentView(env).reset(k, env_params)[0], jax.random.PRNGKey(0))
        image_shape = check_conv(config.conv_channels, config.conv_kernel, view["obs"].shape[1:], config.env)
    return ActorCritic(action_dim, discrete, 1, config.hidden_sizes, config.activation, config.conv_channels,
                       config.conv_kernel, image_shape, central_critic=config.critic == "world_state",
                       value_outputs=value_outputs), discrete


def scripted_league(config: Config, env: envs.Environment) -> list:
    """The arena players named by `config.scripted_opponents`; a clear error for unknown names."""
    if not config.scripted_opponents:
        return []
    from jaxrl.league import arena

    available = arena.scripted_players(env)
    unknown = [name for name in config.scripted_opponents if name not in available]
    if unknown:
        raise ConfigError(f"scripted_opponents: {config.env} has no scripted player {', '.join(map(repr, unknown))} "
                          f"(it has: {', '.join(available)})")
    return [available[name] for name in config.scripted_opponents]


def config_name(config: Config) -> str:
    return "mappo" if config.critic == "world_state" else "ippo"


def make_inputs(config: Config, num_agents: int, obs_ndim: int, ws_ndim: int):
    """(actor_input, critic_input) of AgentView observations (leaves [..., A, ...]) -> [..., A, features]."""

    def flat(x, ndim):
        return x.reshape(x.shape[: x.ndim - ndim] + (-1,)).astype(jnp.float32)

    def with_ids(x):
        return jnp.concatenate([x, jnp.broadcast_to(jnp.eye(num_agents), x.shape[:-1] + (num_agents,))], -1)

    def actor_input(view):
        x = flat(view["obs"], obs_ndim)
        return with_ids(x) if config.agent_ids else x

    def critic_input(view):
        if config.critic == "local":
            return None
        ws = flat(view["world_state"], ws_ndim)  # [..., W]: one per env, the same for its agents
        return with_ids(jnp.broadcast_to(ws[..., None, :], ws.shape[:-1] + (num_agents, ws.shape[-1])))

    return actor_input, critic_input


def view_inputs(config: Config, env: envs.Environment, env_params):
    """`make_inputs` for `env` (unwrapped), from the shapes of its AgentView observation."""
    view = jax.eval_shape(lambda k: envs.AgentView(env, config.critic == "world_state").reset(k, env_params)[0],
                          jax.random.PRNGKey(0))
    ws_ndim = len(view["world_state"].shape) if "world_state" in view else 0
    return make_inputs(config, env.num_agents, len(view["obs"].shape) - 1, ws_ndim)


def masked(dist, view, discrete: bool):
    """Logits with illegal actions removed; rows with no legal action (agent not acting) stay as they are."""
    if not discrete or "action_mask" not in view:
        return dist
    mask = view["action_mask"]
    mask = mask | ~jnp.any(mask, -1, keepdims=True)
    return jnp.where(mask, dist, -1e9)


def make_program(config: Config) -> loop.Program:
    base_env = make_env(config)
    env_params = base_env.default_params
    network, discrete = make_network(config, base_env, env_params)
    num_agents = base_env.num_agents
    games = config.selfplay != "off"
    sides = selfplay.sides_of(base_env, config.env) if games else jnp.zeros(num_agents, jnp.int32)
    if config.opponent_random > 0 and not discrete:
        raise ConfigError(f"opponent_random={config.opponent_random}: random opponent moves need a discrete "
                          f"action space; {config.env}'s is continuous")
    scripted = scripted_league(config, base_env)
    if games and config.agent_ids and getattr(base_env.unwrapped, "fixed_opponents", None):
        raise ConfigError(f"agent_ids=true: the policy could not play {config.env}'s fixed opponents "
                          f"({', '.join(base_env.unwrapped.fixed_opponents)}), whose env has fewer agents")
    env = envs.make_vec_env(base_env, config.num_envs, world_state=config.critic == "world_state")
    P, B, N = config.policies, config.blocks, config.num_envs
    recurrent = config.recurrent
    value_head = config.value_head_spec
    sequences = (N // P) * num_agents  # per policy: one per env and agent
    samples = sequences * config.num_steps
    if recurrent and sequences % config.num_minibatches:
        raise ConfigError(f"recurrent minibatches hold whole sequences: (num_envs/policies)*num_agents = "
                          f"({N}/{P})*{num_agents} = {sequences} is not divisible by "
                          f"num_minibatches={config.num_minibatches}")
    if samples % config.num_minibatches:
        raise ConfigError(f"(num_envs/policies)*num_agents*num_steps = ({N}/{P})*{num_agents}*{config.num_steps} = "
                          f"{samples} is not divisible by num_minibatches={config.num_minibatches}")
    actor_input, critic_input = view_inputs(config, base_env, env_params)
    # The learner's side of each env alternates, so every block plays both seats equally. Results are
    # counted from that side; against itself (latest) the learner trains on every side.
    mine = sides[None, :] == (jnp.arange(N) % 2)[:, None]  # [N, A]
    learner = mine if config.selfplay not in ("off", "latest") else jnp.ones((N, num_agents), bool)

    def split(x, parts):  # [N, ...] -> [parts, N/parts, ...]
        return x.reshape((parts, x.shape[0] // parts) + x.shape[1:])

    def per_block(fn):
        """vmap over blocks; a single block is called directly (a vmap of size 1 runs slower on CPU)."""
        def call(*args):
            if jax.tree.leaves(args)[0].shape[0] > 1:
                return jax.vmap(fn)(*args)
            return jax.tree.map(lambda x: x[None], fn(*jax.tree.map(lambda x: x[0], args)))
        return call

    def merge(x):
        return x.reshape((-1,) + x.shape[2:])

    def forward(params, view):
        """Every policy on its block of envs: params [P, ...], view leaves [N, A, ...] -> dist, value [N, A]."""
        x, c = jax.tree.map(lambda a: split(a, P), (actor_input(view), critic_input(view)))
        dist, value_out = per_block(network.apply)(params, x, c)
        return masked(jax.tree.map(merge, dist), view, discrete), value_head.value(merge(value_out))

    def recurrent_forward(params, memory, view, reset):
        """`forward` of recurrent policies: memory leaves [N, A, W], reset [N, A] -> (memory, dist, value)."""
        x, c = jax.tree.map(lambda a: split(a, P), (actor_input(view), critic_input(view)))
        memory, dist, value_out = per_block(network.apply)(params, jax.tree.map(lambda m: split(m, P), memory), x,
                                                           split(reset, P), c)
        return (jax.tree.map(merge, memory), masked(jax.tree.map(merge, dist), view, discrete),
                value_head.value(merge(value_out)))

    def opponent_forward(opp_params, view):
        """Opponent j on env block j: opp_params [B, ...] -> dist [N, A, ...]."""
        dist = per_block(lambda p, x: network.apply(p, x, method=ActorCritic.policy))(
            opp_params, split(actor_input(view), B))
        return masked(jax.tree.map(merge, dist), view, discrete)

    def init(key, hp):
        key, net_key, env_key = jax.random.split(key, 3)
        view, env_state = env.reset(env_key, env_params)
        x, c = jax.tree.map(lambda a: a[:1], (actor_input(view), critic_input(view)))
        memory = None
        if recurrent:
            memory = zero_memory(network, N, num_agents)
            init_args = (jax.tree.map(lambda m: m[:1], memory), x, jnp.zeros(x.shape[:-1], bool), c)
        else:
            init_args = (x, c)
        params = jax.vmap(lambda k: network.init(k, *init_args))(jax.random.split(net_key, P))  # members differ
        opt_state = jax.vmap(make_optimizer(0.0, hp["max_grad_norm"]).init)(params)
        league = selfplay.init_league(jax.tree.map(lambda x: x[0], params), config.pool_size, P, len(scripted))
        hp = {k: jnp.asarray(v, jnp.float32) for k, v in hp.items()}
        return RunnerState(params, opt_state, env_state, view, memory, key, jnp.int32(0),
                           jnp.int32(config.num_updates), hp, league)

    def scripted_actions(key, view, opp_index):
        """[N, A] actions of the scripted players drawn for each env block (-1 where a policy plays)."""
        keys = jax.random.split(key, view["obs"].shape[:2])
        moves = jnp.stack([jax.vmap(jax.vmap(fn))(keys, view["obs"], view["action_mask"]) for fn in scripted])
        which = jnp.repeat(opp_index - (config.pool_size + P), N // B)  # [N]: scripted player k, < 0: a policy
        return jnp.where((which >= 0)[:, None], moves[jnp.maximum(which, 0), jnp.arange(N)], -1)

    def policy(params, opp_params, opp_index, hp):
        def act(key, view):
            key, opp_key, explore_key, random_key, scripted_key = jax.random.split(key, 5)
            dist, value = forward(params, view)
            action, log_prob = distributions.sample_log_prob(key, dist, discrete)
            if opp_params is not None:
                opp_action, _ = distributions.sample_log_prob(opp_key, opponent_forward(opp_params, view), discrete)
                if scripted:
                    by_script = scripted_actions(scripted_key, view, opp_index)
                    opp_action = jnp.where(by_script >= 0, by_script, opp_action)
                if discrete:
                    explore = jax.random.uniform(explore_key, opp_action.shape) < hp["opponent_random"]
                    random_action = jax.random.categorical(random_key, masked(jnp.zeros_like(dist), view, discrete))
                    opp_action = jnp.where(explore, random_action, opp_action)
                pick = learner if discrete else learner[..., None]
                action = jnp.where(pick, action, opp_action)
            return action, {"log_prob": log_prob, "value": value}

        def act_recurrent(key, view, memory):  # collect_rollout has zeroed the memory of new episodes
            memory, dist, value = recurrent_forward(params, memory, view, jnp.zeros(view["obs"].shape[:2], bool))
            action, log_prob = distributions.sample_log_prob(key, dist, discrete)
            return action, {"log_prob": log_prob, "value": value, "memory": memory}, memory

        return act_recurrent if recurrent else act

    def compute_advantages(params, traj, hp):
        if recurrent:  # V(next obs) one recurrent step on from the memory after each step
            next_values = jax.vmap(lambda m, v: recurrent_forward(params, m, v, jnp.zeros(v["obs"].shape[:2], bool))[2])(
                traj.extras["memory"], traj.next_obs)
        else:  # the critic alone: its input flattened like the actor's, or the world state
            def value(view):
                x, c = jax.tree.map(lambda a: split(a, P), (actor_input(view), critic_input(view)))
                critic = per_block(lambda p, x, c: network.apply(p, x, c, method=ActorCritic.critic_outputs))
                return value_head.value(merge(critic(params, x, c)))

            next_values = jax.vmap(value)(traj.next_obs)
        return gae(traj.reward, traj.extras["value"], next_values, traj.terminated, traj.done,
                   hp["gamma"], hp["gae_lambda"])

    def apply_batch(params, batch):
        """(dist, critic outputs) of a minibatch: samples, or sequences [T, S, ...] replayed from their first
        memory."""
        if not recurrent:
            return network.apply(params, batch["x"], batch["c"])
        return replay_sequence(network, params, batch["memory"], batch["x"], batch["reset"], batch["c"])[1:]

    def loss_fn(params, batch, hp):
        dist, value_out = apply_batch(params, batch)
        if discrete:
            dist = jnp.where(batch["mask"], dist, -1e9)
        return ppo_loss(distributions.log_prob(dist, batch["action"], discrete), distributions.entropy(dist, discrete),
                        value_out, batch["log_prob"], batch["value"], batch["advantages"], batch["targets"], hp,
                        value_head, config.clip_value, config.normalize_advantages, batch["acts"], batch["learns"])

    def update_minibatch(carry, batch):
        params, opt_state, hp, lr = carry
        params, opt_state, stats = gradient_step(make_optimizer(lr, hp["max_grad_norm"]), loss_fn, params,
                                                 opt_state, batch, hp)
        return (params, opt_state, hp, lr), stats

    def learn(params, opt_state, batch, key, hp, lr):
        """PPO epochs of one policy on its samples (leaves [samples, ...])."""

        M = config.num_minibatches

        def minibatches(key):
            if not recurrent:  # shuffled samples
                order = jax.random.permutation(key, samples)
                return jax.tree.map(lambda x: x[order].reshape((M, -1) + x.shape[1:]), batch)
            steps, memory = sequence_minibatches(key, {k: v for k, v in batch.items() if k != "memory"},
                                                 batch["memory"], M)
            return steps | {"memory": memory}

        def epoch(carry, epoch_key):
            return jax.lax.scan(update_minibatch, carry, minibatches(epoch_key))

        (params, opt_state, *_), stats = jax.lax.scan(epoch, (params, opt_state, hp, lr),
                                                      jax.random.split(key, config.update_epochs))
        return params, opt_state, jax.tree.map(jnp.mean, stats)

    def per_policy(x):
        """[T, N, A, ...] -> [P, T * N/P * A, ...]: each policy's own samples; recurrent: its sequences
        [P, T, N/P * A, ...]."""
        t = x.shape[0]
        x = jnp.moveaxis(x.reshape((t, P, sequences) + x.shape[3:]), 1, 0)
        return x if recurrent else x.reshape((P, -1) + x.shape[3:])

    def outcomes(traj):
        """Per finished episode, from the learner's side: won, drew [T, N]; and score (win 1, draw 1/2)
        and games summed per block and learner side [B, 2] (the side alternates over a block's envs)."""
        ours = (traj.episode_return * mine).sum(-1)  # [T, N]
        theirs = (traj.episode_return * ~mine).sum(-1)
        done = traj.episode_done.astype(jnp.float32)
        won, drew = done * (ours > theirs), done * (ours == theirs)
        by_block = lambda x: x.reshape(x.shape[0], B, -1, 2).sum((0, 2))
        return won, drew, by_block(won + 0.5 * drew), by_block(done)

    def update(state: RunnerState):
        hp = state.hparams
        key, opp_key, rollout_key, learn_key = jax.random.split(state.key, 4)
        opp_params, opp_index = None, None
        if config.selfplay in ("pool", "pfsp", "population"):
            opp_params, opp_index = selfplay.pick_opponents(state.league, state.params, opp_key, config.selfplay,
                                                            P, B // P, hp["pfsp_power"], hp["scripted_share"])
        act = policy(state.params, opp_params, opp_index, hp)
        traj, env_state, view, memory = collect_rollout(env, env_params, act, state.env_state, state.obs, rollout_key,
                                                        config.num_steps, config.unroll, state.memory)
        advantages, targets = compute_advantages(state.params, traj, hp)
        learns = jnp.broadcast_to(learner, traj.reward.shape)
        batch = {"x": actor_input(traj.obs), "c": critic_input(traj.obs), "action": traj.action,
                 "log_prob": traj.extras["log_prob"], "value": traj.extras["value"], "advantages": advantages,
                 "targets": targets, "learns": learns.astype(jnp.float32),
                 "acts": (learns & traj.obs["active"]).astype(jnp.float32)}
        if discrete:
            batch["mask"] = traj.obs["action_mask"] | ~jnp.any(traj.obs["action_mask"], -1, keepdims=True)
        batch = jax.tree.map(per_policy, batch)
        if recurrent:  # replayed from the rollout's first memory, zeroed where the previous step ended
            batch["reset"] = per_policy(episode_starts(traj.done))
            batch["memory"] = jax.tree.map(lambda m: m.reshape((P, sequences) + m.shape[2:]), state.memory)
        frac = 1.0 - state.update_idx / state.num_updates if config.anneal_lr else 1.0
        lr = hp["lr"] * frac
        params, opt_state, stats = per_block(lambda *a: learn(*a, hp, lr))(
            state.params, state.opt_state, batch, jax.random.split(learn_key, P))
        league = state.league
        metrics = {k: v.mean() for k, v in stats.items()} | {"lr": lr}
        done = traj.episode_done.astype(jnp.float32)
        metrics["episodes"] = done.sum()
        if games:
            won, drew, block_score, block_games = outcomes(traj)
            side_return = (traj.episode_return * mine).sum(-1) / mine.sum(-1)
            metrics["episode_return_sum"] = (side_return * done).sum()
            metrics["win_rate"] = won.sum() / jnp.maximum(done.sum(), 1.0)
            metrics["draw_rate"] = drew.sum() / jnp.maximum(done.sum(), 1.0)
            if opp_index is not None:
                league = selfplay.record(league, opp_index, block_score, block_games)
            take = (state.update_idx + 1) % config.snapshot_interval == 0
            league = jax.lax.cond(take, lambda lg: selfplay.snapshot(lg, jax.tree.map(lambda x: x[0], params),
                                                                      state.update_idx + 1), lambda lg: lg, league)
        else:  # the team's return: summed over agents (as JaxMARL's MPE baselines report it)
            metrics["episode_return_sum"] = (traj.episode_return.sum(-1) * done).sum()
        metrics["episode_length_sum"] = (traj.episode_length * done).sum()
        new_state = RunnerState(params, opt_state, env_state, view, memory, key, state.update_idx + 1,
                                state.num_updates, hp, league)
        return new_state, metrics

    return Program(init, update, config.num_updates, config.steps_per_update, config.updates_per_chunk)


def policy_state(state: RunnerState) -> dict:
    """Parameters of every trained policy ([P, ...]) and the snapshot pool with its update stamps."""
    return {"params": state.params, "pool": state.league.pool, "pool_update": state.league.pool_update}


def make_actor(config: Config, env: envs.Environment, env_params, stochastic: bool = False):
    """`act(params, view, key=None) -> action [.., A]`: one policy (unstacked params) on AgentView
    observations; the mode of the masked distribution, or a sample when `stochastic`."""
    network, discrete = make_network(config, env, env_params)
    actor_input, _ = view_inputs(config, env, env_params)

    def act(params, view, key=None):
        dist = masked(network.apply(params, actor_input(view), method=ActorCritic.policy), view, discrete)
        if stochastic:
            return distributions.sample_log_prob(key, dist, discrete)[0]
        return distributions.mode(dist, discrete)

    return act


def make_policy(config: Config, env: envs.Environment, env_params, stochastic: bool = False):
    """`act(policy_state, view, key=None) -> action`: the first trained policy's deterministic action,
    or a sample drawn with `key` when `stochastic` (with `config.recurrent`: a deterministic
    `RecurrentPolicy` carrying its memories)."""
    if config.recurrent:
        network, discrete = make_network(config, env, env_params)
        actor_input, _ = view_inputs(config, env, env_params)

        def act_recurrent(pstate, view, memory):
            x = actor_input(view)
            memory, dist = network.apply(jax.tree.map(lambda p: p[0], pstate["params"]), memory, x,
                                         jnp.zeros(x.shape[:-1], bool), method=RecurrentActorCritic.policy)
            return distributions.mode(masked(dist, view, discrete), discrete), memory

        return RecurrentPolicy(act_recurrent, lambda n: zero_memory(network, n, env.num_agents))
    act = make_actor(config, env, env_params, stochastic)
    return lambda pstate, view, key=None: act(jax.tree.map(lambda x: x[0], pstate["params"]), view, key)


def evaluate(config: Config, policy: dict, episodes: int, seed: int = 0, opponents: dict | None = None,
             opening: int = 0) -> dict | None:
    """Self-play runs: win/draw/loss of the first policy of every seed, `episodes` games in each seat
    per seed against each of `opponents` (name -> arena player, or None for an opponent built into
    another env, played from side 0: SMAX's heuristic enemy; default: the game's scripted and built-in
    opponents); the first `opening` moves of each game random (`arena.play`). None for the other runs
    (the default return evaluation applies)."""
    if config.selfplay == "off":
        return None
    from jaxrl.league import arena

    env = envs.make(config.env)
    act = make_actor(config, env, env.default_params)
    fixed = getattr(env.unwrapped, "fixed_opponents", {})
    if opponents is None:
        opponents = arena.scripted_players(env) | dict.fromkeys(fixed)
    seeds = jax.tree.leaves(policy["params"])[0].shape[0]
    params = [jax.tree.map(lambda x: x[s, 0], policy["params"]) for s in range(seeds)]
    players = {name: opponent for name, opponent in opponents.items() if opponent is not None}
    vs = arena.match(env, act, params, players, episodes, seed, opening) if players else {}
    for name in (name for name, opponent in opponents.items() if opponent is None):
        fixed_env = fixed[name]()
        vs[name] = arena.fixed_match(fixed_env, make_actor(config, fixed_env, fixed_env.default_params), params,
                                     episodes, seed)
    vs = {name: vs[name] for name in opponents}  # in the order asked
    return {"games_per_side": episodes * seeds, "random_opening_moves": opening, "vs": vs}


def report(config: Config, policy: dict, run_dir, steps_per_update: int) -> dict:
    """After a self-play run: Elo of the pool snapshots (first seed) and the population, with plots."""
    if config.selfplay == "off":
        return {}
    from jaxrl.league import ratings

    env = envs.make(config.env)
    act = make_actor(config, env, env.default_params, stochastic=True)
    first = jax.tree.map(lambda x: x[0], policy)
    updates = np.asarray(first["pool_update"])
    order = [i for i in np.argsort(updates) if updates[i] >= 0]
    snapshots = jax.tree.map(lambda x: x[np.asarray(order)], first["pool"])
    members = first["params"] if config.policies > 1 else None
    return {"league": ratings.league_report(env, act, snapshots, updates[order] * steps_per_update, members,
                                            run_dir, f"{config_name(config)} {config.selfplay} on {config.env}",
                                            seed=config.seed)}


ALGORITHM = Algorithm("ippo", "multi-agent PPO, parameters shared by all agents; self-play on two-player games",
                      Config, make_program, policy_state, make_policy, PRESETS, evaluate=evaluate, report=report,
                      make_actor=make_actor, recurrent=lambda config: config.recurrent)
make_train = ALGORITHM.make_train
