"""Players and matches for two-sided games (self-play runs): win/draw/loss tables of one player
against another (round robins and Elo ratings: `jaxrl.league.ratings`).

A *player* is an unbatched function `(key, obs, mask) -> action` for one agent: a trained
policy, a game's scripted opponent (`env.scripted_opponents()`), another run's checkpoint, or
a plain Python function of (observation, legal-action mask) loaded from `file.py:function`.
`play` runs many games at once inside one compiled program; every game is decided by the
env's rules, and an illegal action is never executed: the env ends the game as a loss for the
side that played it, and `play` counts it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import envs
from jaxrl.errors import JaxrlError

Player = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def play(env, player_a: Player, player_b: Player, key, a_side, max_moves: int = 10_000, opening: int = 0):
    """Games between two players; `a_side` [G] is the side player a takes in each game. The first
    `opening` moves of every game are uniformly random legal moves for both sides, so that
    deterministic players meet varied positions instead of replaying one game.

    Returns a dict of [G] arrays: "outcome" from a's view (1 win, 0 draw, -1 loss; 0 also for an
    unfinished game), "illegal_a" / "illegal_b" (the side lost by an illegal action), "moves",
    "fingerprint" (a hash of the moves played: equal games, equal fingerprints).
    """
    view_env = envs.AgentView(env)
    params = env.default_params
    sides = jnp.asarray(env.unwrapped.sides, jnp.int32)

    def one(key, side):
        key, reset_key = jax.random.split(key)
        view, state = view_env.reset(reset_key, params)
        mine = sides == side
        zeros = jnp.zeros((), jnp.float32)
        carry = (key, view, state, jnp.bool_(False), zeros, zeros, jnp.bool_(False), jnp.bool_(False), 0,
                 _FNV_OFFSET)

        def running(c):
            return ~c[3] & (c[8] < max_moves)

        def move(c):
            key, view, state, _, ours, theirs, ill_a, ill_b, t, fingerprint = c
            key, ka, kb, step_key = jax.random.split(key, 4)
            mask = view.get("action_mask", jnp.ones(view["obs"].shape[:1] + (1,), bool))
            action = joint_action(player_a, player_b, mine, ka, kb, view["obs"], mask)
            if opening:  # the players' own moves are not used there, so their keys can be
                random = joint_action(random_player, random_player, mine, ka, kb, view["obs"], mask)
                action = jnp.where(t < opening, random, action)
            fingerprint = _hash_moves(fingerprint, action, view.get("active", jnp.ones(sides.shape, bool)))
            view, state, reward, terminated, truncated, info = view_env.step(step_key, state, action, params)
            illegal = info.get("illegal", jnp.zeros(sides.shape, bool))
            done = jnp.all(terminated | truncated)
            return (key, view, state, done, ours + (reward * mine).sum(), theirs + (reward * ~mine).sum(),
                    ill_a | jnp.any(illegal & mine), ill_b | jnp.any(illegal & ~mine), t + 1, fingerprint)

        _, _, _, done, ours, theirs, ill_a, ill_b, t, fingerprint = jax.lax.while_loop(running, move, carry)
        outcome = jnp.where(done, jnp.sign(ours - theirs), 0.0)
        return {"outcome": outcome, "illegal_a": ill_a, "illegal_b": ill_b, "moves": t, "fingerprint": fingerprint}

    a_side = jnp.asarray(a_side, jnp.int32)
    return jax.vmap(one)(jax.random.split(key, a_side.shape[0]), a_side)


_FNV_OFFSET, _FNV_PRIME = np.uint32(2166136261), np.uint32(16777619)


def _hash_moves(fingerprint, action, active):
    """FNV-1a over the actions of the agents that moved (the others' are ignored by the env)."""
    for i in range(action.shape[0]):
        mixed = (fingerprint ^ (action[i].astype(jnp.uint32) + 1)) * _FNV_PRIME
        fingerprint = jnp.where(active[i], mixed, fingerprint)
    return fingerprint


def joint_action(player_a: Player, player_b: Player, mine, key_a, key_b, obs, mask):
    """Every agent's action [A]: player a's on its side (`mine` [A]), player b's elsewhere."""
    n = obs.shape[0]
    act_a = jax.vmap(player_a)(jax.random.split(key_a, n), obs, mask)
    act_b = jax.vmap(player_b)(jax.random.split(key_b, n), obs, mask)
    return jnp.where(mine, act_a, act_b).astype(jnp.int32)


def switch_player(players: list[Player], index) -> Player:
    """`players[index]` for a traced `index`: the opponents of a match (or a league) share one compiled
    program instead of one each. An unbatched index keeps it a conditional: only that player runs."""
    branches = [lambda key, obs, mask, p=p: p(key, obs, mask).astype(jnp.int32) for p in players]
    return lambda key, obs, mask: jax.lax.switch(index, branches, key, obs, mask)


def params_player(act, params, stochastic: bool = False) -> Player:
    """A trained policy as a player: `act(params, view, key)` from `ippo.make_actor`."""

    def player(key, obs, mask):
        view = {"obs": obs[None], "action_mask": mask[None]}
        return act(params, view, key)[0] if stochastic else act(params, view)[0]

    return player


class ExternalPlayer:
    """A plain Python function (observation, legal mask) -> action as a player, called on the host for
    each move of each game. An exception cannot cross `jax.pure_callback` (JAX reports an internal error
    with a traceback), so the first failure inside compiled games is kept, the games go on with
    placeholder moves, and `raise_failure()` raises it once they are over."""

    def __init__(self, spec: str, fn: Callable):
        self.spec = spec
        self.fn = fn
        self.failure: JaxrlError | None = None

    def move(self, obs: np.ndarray, mask: np.ndarray) -> np.int32:
        """The function's action for one agent; a JaxrlError if it raises or returns no action index."""
        try:
            action = self.fn(obs, mask)
        except Exception as err:
            raise JaxrlError(f"opponent {self.spec} raised {type(err).__name__}: {_one_line(str(err))} (it is "
                             f"called as function(observation, legal_mask))") from None
        index = np.asarray(action)
        if index.shape != () or not np.issubdtype(index.dtype, np.integer) or not 0 <= index < mask.shape[-1]:
            raise JaxrlError(f"opponent {self.spec} returned {_one_line(repr(action))}; expected an action index "
                             f"(an int) in 0..{mask.shape[-1] - 1}")
        return np.int32(index)

    def host(self, obs, mask) -> np.int32:
        if self.failure is not None or not mask.any():  # not this agent's move: the env ignores its action
            return np.int32(0)
        try:
            return self.move(np.asarray(obs), np.asarray(mask))
        except JaxrlError as err:
            self.failure = err
            return np.int32(0)

    def __call__(self, key, obs, mask):
        return jax.pure_callback(self.host, jax.ShapeDtypeStruct((), jnp.int32), obs, mask, vmap_method="sequential")

    def raise_failure(self) -> None:
        failure, self.failure = self.failure, None
        if failure is not None:
            raise failure


def _one_line(text: str) -> str:
    return " ".join(text.split())


def raise_failures(*players: Player) -> None:
    """After games: raise what went wrong inside an external player (see `ExternalPlayer`)."""
    for player in players:
        if isinstance(player, ExternalPlayer):
            player.raise_failure()


def external_player(spec: str, env) -> ExternalPlayer:
    """`path/to/file.py:function`: the function as a player, tried once on the env's first position so
    a broken one fails here, before any game is compiled."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path.endswith(".py"):
        raise JaxrlError(f"opponent {spec!r}: expected path/to/file.py:function")
    if not Path(path).is_file():
        raise JaxrlError(f"opponent file {path!r} does not exist")
    module_spec = importlib.util.spec_from_file_location(f"jaxrl_opponent_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:
        raise JaxrlError(f"opponent file {path!r} failed to import: {type(err).__name__}: {err}") from err
    fn = getattr(module, name, None)
    if not callable(fn):
        raise JaxrlError(f"opponent file {path!r} has no function {name!r}")
    player = ExternalPlayer(spec, fn)
    view, _ = envs.AgentView(env).reset(jax.random.PRNGKey(0), env.default_params)
    obs, mask = np.asarray(view["obs"]), np.asarray(view["action_mask"])
    mover = int(np.argmax(mask.any(-1)))
    player.move(obs[mover], mask[mover])
    return player


def show_game(env, player_a: Player, player_b: Player, a_side: int, seed: int = 0, max_moves: int = 500,
              opening: int = 0) -> str:
    """One game, move by move, as text: the env's render after every move (the first `opening` moves
    random, as in `play`)."""
    render = getattr(env.unwrapped, "render", None)
    if render is None:
        raise JaxrlError(f"{env.env_id} has no text render")
    view_env = envs.AgentView(env)
    params = env.default_params
    mine = np.asarray(env.unwrapped.sides) == a_side

    @jax.jit
    def move(key, view, state, random_move):
        ka, kb, step_key = jax.random.split(key, 3)
        action = joint_action(player_a, player_b, jnp.asarray(mine), ka, kb, view["obs"], view["action_mask"])
        random = joint_action(random_player, random_player, jnp.asarray(mine), ka, kb, view["obs"], view["action_mask"])
        action = jnp.where(random_move, random, action)
        return action, view_env.step(step_key, state, action, params)

    key = jax.random.PRNGKey(seed)
    key, reset_key = jax.random.split(key)
    view, state = view_env.reset(reset_key, params)
    lines = [f"player on side {a_side}, opponent on side {1 - a_side}", render(state)]
    for t in range(max_moves):
        key, move_key = jax.random.split(key)
        active = np.asarray(view["active"])
        action, (view, state, reward, terminated, truncated, info) = move(move_key, view, state, t < opening)
        raise_failures(player_a, player_b)
        who = ", ".join(f"{'player' if mine[i] else 'opponent'} (side {env.unwrapped.sides[i]}) plays {int(a)}"
                        for i, a in enumerate(np.asarray(action)) if active[i])
        lines += [f"move {t + 1}{' (random opening)' if t < opening else ''}: {who}", render(state)]
        if bool(np.all(np.asarray(terminated) | np.asarray(truncated))):
            ours = float((np.asarray(reward) * mine).sum())
            lines.append("result: " + ("player wins" if ours > 0 else "opponent wins" if ours < 0 else "draw"))
            break
    return "\n".join(lines)


def random_player(key, obs, mask):
    """A uniformly random legal action."""
    return jax.random.categorical(key, jnp.where(mask, 0.0, -jnp.inf)).astype(jnp.int32)


def scripted_players(env) -> dict[str, Player]:
    """The game's scripted opponents (`env.scripted_opponents()`), at least a random player."""
    return {"random": random_player} | dict(getattr(env.unwrapped, "scripted_opponents", dict)())


def results(out: dict) -> dict:
    """Win/draw/loss counts and rates of player a from `play`'s output, and how many of the games
    differ in their moves ("distinct_games": 1 means every game was the same one)."""
    outcome = np.asarray(out["outcome"])
    n = len(outcome)
    won, lost = int((outcome > 0).sum()), int((outcome < 0).sum())
    drawn = n - won - lost
    distinct = {"distinct_games": len(np.unique(out["fingerprint"]))} if "fingerprint" in out else {}
    return {"games": n, "wins": won, "draws": drawn, "losses": lost, "win_rate": round(won / n, 4),
            "draw_rate": round(drawn / n, 4), "loss_rate": round(lost / n, 4),
            "illegal_moves": int(np.asarray(out["illegal_a"]).sum()),
            "opponent_illegal_moves": int(np.asarray(out["illegal_b"]).sum()), **distinct}


def match(env, act, params_list: list, opponents: dict[str, Player], games: int, seed: int = 0,
          opening: int = 0) -> dict[str, dict]:
    """Each policy in `params_list` (e.g. one per seed) plays `games` games in each seat against each of
    `opponents` (name -> player), deterministically (mode of its masked policy) after `opening` random
    moves (see `play`); one compiled program for all of them. Results summed over the policies, per
    opponent: {name: {"side_0": results, "side_1": results}}."""
    players = list(opponents.values())
    run = jax.jit(lambda p, key, side, index: play(env, params_player(act, p), switch_player(players, index), key,
                                                   side, opening=opening))
    out = {}
    for index, (name, opponent) in enumerate(opponents.items()):
        out[name] = {}
        for side in (0, 1):
            parts = []
            for i, params in enumerate(params_list):
                key = jax.random.fold_in(jax.random.PRNGKey(seed + i), side)
                parts.append(jax.device_get(run(params, key, jnp.full(games, side), index)))
                raise_failures(opponent)
            out[name][f"side_{side}"] = results({k: np.concatenate([np.asarray(p[k]) for p in parts])
                                                 for k in parts[0]})
    return out


def fixed_match(env, act, params_list: list, games: int, seed: int = 0) -> dict:
    """Side 0 of `env`, an env whose other side is built in (SMAX's heuristic enemy, from the
    game's `fixed_opponents`): each policy plays `games` games deterministically. The env's
    rewards are zero-sum, so the sign of side 0's return is the outcome; {"side_0": results}."""
    from jaxrl.rollout import evaluate_policy

    run = jax.jit(lambda p, key: evaluate_policy(env, env.default_params, act, p, key, games))
    outcome = []
    for i, params in enumerate(params_list):
        returns, _, finished = jax.device_get(run(params, jax.random.PRNGKey(seed + i)))
        outcome.append(np.where(finished, np.sign(returns), 0.0))
    outcome = np.concatenate(outcome)
    no_illegal = np.zeros(outcome.shape, bool)  # the env masks illegal actions to no-ops
    return {"side_0": results({"outcome": outcome, "illegal_a": no_illegal, "illegal_b": no_illegal})}
