"""The evaluation drivers: a trained run's policy played outside training (`jaxrl eval`, `load_policy`,
the evaluation at the end of `jaxrl train`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxrl import algos, checkpoint, records
from jaxrl.errors import JaxrlError
from jaxrl.session import load_run_config


def evaluate_state(config, policy: dict, episodes: int, seed: int = 0) -> dict:
    """Deterministic-policy return over `episodes` episodes for every seed in `policy` (leading axis)."""
    algorithm = algos.of_config(config)
    # An algorithm's own evaluation (self-play: games won) where it has one for this config.
    if algorithm.evaluate and (result := algorithm.evaluate(config, policy, episodes, seed)) is not None:
        return result
    (returns, lengths, finished), _ = play_episodes(config, policy, episodes, seed)
    returns = np.asarray(returns, dtype=np.float64)
    return {
        "episodes": int(returns.size),
        "return_mean": round(float(returns.mean()), 4),
        "return_std": round(float(returns.std()), 4),
        "return_per_seed": [round(float(r), 4) for r in returns.mean(1)],
        "length_mean": round(float(np.mean(lengths)), 2),
        "all_finished": bool(np.all(finished)),
    }


def play_episodes(config, policy: dict, episodes: int, seed: int = 0, family=None, contexts: dict | None = None):
    """The deterministic policy's episodes: ((returns, lengths, finished), seconds) with arrays [seeds, episodes],
    or over the `contexts` of a `family` (field -> [C]) [seeds, C, episodes], in one compiled program;
    seconds: {"compile": ..., "run": ...}. Every context of a seed plays with the seed's key of the point-MDP
    evaluation (common random numbers), so contexts with equal parameters play equal episodes, exactly. A
    separately compiled program may round differently: XLA folds constants and rewrites x / b as x * (1/b)
    where b is one value for a whole batch, so a context batch and the point MDP alone can differ in the last
    bits, and a marginal policy's episode may then end a step earlier or later."""
    import time

    import jax

    from jaxrl import envs
    from jaxrl.rollout import evaluate_policy

    env = envs.make(config.env)
    act = algos.of_config(config).make_policy(config, env, env.default_params)
    keys = jax.random.split(jax.random.PRNGKey(seed), jax.tree.leaves(policy)[0].shape[0])

    def play(policy_state, key, context):
        params = env.default_params if family is None else family.params(env.default_params, context)
        return evaluate_policy(env, params, act, policy_state, key, episodes)

    if family is not None:
        play = jax.vmap(play, in_axes=(None, None, 0))
    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(play, in_axes=(0, 0, None))).lower(policy, keys, contexts).compile()
    compiled_at = time.perf_counter()
    result = jax.device_get(compiled(policy, keys, contexts))
    return result, {"compile": compiled_at - start, "run": time.perf_counter() - compiled_at}


def default_eval_episodes(config) -> int:
    """The evaluation when none is asked for: 10 episodes per seed, or for a self-play run 100 games
    per seat per seed against each opponent (win rates to within about ten points)."""
    return 100 if getattr(config, "selfplay", "off") != "off" else 10


def evaluate_run(run_dir: str | Path, episodes: int | None = None, seed: int = 0, step: int | None = None,
             opponent: str | None = None, show: bool = False, opening: int = 0) -> dict:
    """`jaxrl eval`: restore the run's policy checkpoint and evaluate it deterministically, over
    `episodes` episodes per seed (None: `default_eval_episodes`).

    Self-play runs play `episodes` games in each seat per seed against `opponent` (default: the
    game's scripted players): a scripted player's name, `path/to/file.py:function`, or another run
    `RUN_DIR[@STEP]`; the first `opening` moves of every game are random (`arena.play`); `show` adds
    one game per seat, move by move."""
    if episodes is not None and episodes < 1:
        raise JaxrlError(f"episodes={episodes}: must be >= 1")
    if opening < 0:
        raise JaxrlError(f"--random-opening {opening}: must be >= 0")
    config = load_run_config(run_dir)
    selfplay = getattr(config, "selfplay", "off") != "off"
    if (opponent or show or opening) and not selfplay:
        raise JaxrlError(f"--opponent, --show and --random-opening apply to self-play runs; {str(run_dir)!r} was "
                         f"not trained by self-play")
    episodes = default_eval_episodes(config) if episodes is None else episodes
    algorithm = algos.of_config(config)
    opponents = _opponents(opponent, config) if selfplay else None
    if show and opponents and None in opponents.values():
        raise JaxrlError(f"--show: {opponent} is built into another env and cannot be shown; pick another opponent")
    step, policy = checkpoint.restore_policy(Path(run_dir) / "checkpoints", step, flag="--checkpoint {}")
    if selfplay:
        result = algorithm.evaluate(config, policy, episodes, seed, opponents, opening)
    else:
        result = evaluate_state(config, policy, episodes, seed)
    result = {"run_dir": str(run_dir), "run_status": records.run_status(run_dir), "checkpoint": step,
              "env": config.env, **result}
    if show:
        import jax

        from jaxrl import envs
        from jaxrl.league import arena

        env = envs.make(config.env)
        act = algorithm.make_actor(config, env, env.default_params)
        player = arena.params_player(act, jax.tree.map(lambda x: x[0, 0], policy["params"]))
        name, other = next(iter((opponents or arena.scripted_players(env)).items()))
        result["shown"] = {"opponent": name,
                           "games": [arena.show_game(env, player, other, side, seed, opening=opening)
                                     for side in (0, 1)]}
    return result


def load_policy(run_dir: str | Path, checkpoint: int | None = None, seed_index: int = 0, deterministic: bool = True):
    """A trained run's policy: `policy(obs, key=None) -> action`, compiled on first call.

    obs: one observation [*obs_shape] or a batch [B, *obs_shape] (multi-agent runs: the AgentView
    dict `jaxrl eval` plays with, agents leading). The policy of seed `seed_index` at checkpoint
    `checkpoint` (default: latest) plays its mode, as `jaxrl eval` does, or, when not
    `deterministic`, a sample drawn with `key`."""
    import jax

    from jaxrl import envs
    from jaxrl.checkpoint import restore_policy

    config = load_run_config(run_dir)
    algorithm = algos.of_config(config)
    if algorithm.recurrent(config):
        raise JaxrlError(f"run {str(run_dir)!r} has a recurrent policy, which carries a hidden state from step to "
                         f"step; load_policy returns memoryless policies only")
    if not 0 <= seed_index < config.num_seeds:
        raise JaxrlError(f"seed_index={seed_index}: the run has {config.num_seeds} seeds "
                         f"(0 to {config.num_seeds - 1})")
    _, trained = restore_policy(Path(run_dir) / "checkpoints", checkpoint)
    trained = jax.tree.map(lambda x: x[seed_index], trained)
    env = envs.make(config.env)
    act = jax.jit(algorithm.make_policy(config, env, env.default_params, stochastic=not deterministic))

    def policy(obs, key=None):
        if key is None and not deterministic:
            raise JaxrlError("a policy loaded with deterministic=False needs a key: policy(obs, key)")
        return act(trained, obs, key)

    return policy


def _opponents(spec: str | None, config) -> dict:
    """name -> arena player for `jaxrl eval --opponent`, None for an opponent built into another env
    (SMAX's heuristic enemy); no spec: None (the game's scripted and built-in opponents)."""
    if spec is None:
        return None
    from jaxrl import envs
    from jaxrl.league import arena

    env = envs.make(config.env)
    scripted = arena.scripted_players(env) | dict.fromkeys(getattr(env.unwrapped, "fixed_opponents", {}))
    if spec in scripted:
        return {spec: scripted[spec]}
    if ".py:" in spec:
        return {spec: arena.external_player(spec, env)}
    other_dir, _, at = spec.partition("@")
    if not Path(other_dir).is_dir():
        raise JaxrlError(f"unknown opponent {spec!r}: give one of {', '.join(scripted)}, path/to/file.py:function, "
                         f"or a run directory RUN_DIR[@STEP]")
    if at and not at.isdigit():
        raise JaxrlError(f"opponent {spec!r}: the checkpoint after @ must be a number")
    other = load_run_config(other_dir)
    other_algorithm = algos.of_config(other)
    if other.env != config.env or other_algorithm.make_actor is None:
        raise JaxrlError(f"opponent run {other_dir!r} plays {other.env} with {other_algorithm.name}; "
                         f"need a multi-agent policy for {config.env}")
    import jax

    step, policy = checkpoint.restore_policy(Path(other_dir) / "checkpoints", int(at) if at else None,
                                             flag=f"--opponent {other_dir}@{{}}")
    act = other_algorithm.make_actor(other, env, env.default_params)
    return {f"{other_dir}@{step}": arena.params_player(act, jax.tree.map(lambda x: x[0, 0], policy["params"]))}
