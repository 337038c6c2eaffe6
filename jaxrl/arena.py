"""Matches, win/draw/loss tables and Elo ratings for two-sided games (self-play runs).

A *player* is an unbatched function `(key, obs, mask) -> action` for one agent: a trained
policy, a game's scripted opponent (`env.scripted_opponents()`), another run's checkpoint, or
a plain Python function of (observation, legal-action mask) loaded from `file.py:function`.
`play` runs many games at once inside one compiled program; every game is decided by the
env's rules, and an illegal action is never executed: the env ends the game as a loss for the
side that played it, and `play` counts it.
"""

from __future__ import annotations

import importlib.util
import json
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


def match(env, act, params_list: list, opponent: Player, games: int, seed: int = 0, opening: int = 0) -> dict:
    """Each policy in `params_list` (e.g. one per seed) plays `games` games in each seat against
    `opponent`, deterministically (mode of its masked policy) after `opening` random moves (see `play`).
    Results summed over the policies: {"side_0": results, "side_1": results}."""
    run = jax.jit(lambda p, key, side: play(env, params_player(act, p), opponent, key, side, opening=opening))
    out = {}
    for side in (0, 1):
        parts = []
        for i, params in enumerate(params_list):
            key = jax.random.fold_in(jax.random.PRNGKey(seed + i), side)
            parts.append(jax.device_get(run(params, key, jnp.full(games, side))))
            raise_failures(opponent)
        out[f"side_{side}"] = results({k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]})
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


def round_robin(env, act, pool, key, games: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of the K policies in `pool` (params [K, ...]) plays `games` games in each seat
    (policies sample their moves). Returns (score [K, K]: row's points, win 1 and draw 1/2; games [K, K])."""
    k = jax.tree.leaves(pool)[0].shape[0]
    rows, cols = np.triu_indices(k, 1)
    sides = jnp.arange(2 * games) % 2

    def points_of(pool, rows, cols, keys):
        def pair(args):
            i, j, pair_key = args
            pick = lambda n: jax.tree.map(lambda x: x[n], pool)
            out = play(env, params_player(act, pick(i), True), params_player(act, pick(j), True), pair_key, sides)
            return (out["outcome"] + 1.0).sum() / 2.0

        return jax.lax.map(pair, (rows, cols, keys))

    points = np.asarray(jax.jit(points_of)(pool, rows, cols, jax.random.split(key, len(rows))))
    score, count = np.zeros((k, k)), np.zeros((k, k))
    score[rows, cols], score[cols, rows] = points, 2 * games - points
    count[rows, cols] = count[cols, rows] = 2 * games
    return score, count


def elo(score: np.ndarray, games: np.ndarray, anchor: int = 0, iterations: int = 3000) -> np.ndarray:
    """Elo ratings that best explain a score table (Bradley-Terry maximum likelihood), `anchor` at 0.

    One virtual draw per pair keeps perfect scores finite.
    """
    s = score + 0.5 * (games > 0)
    n = games + 1.0 * (games > 0)
    r = np.zeros(len(score))
    scale = np.log(10) / 400
    for _ in range(iterations):
        expected = 1.0 / (1.0 + np.exp(-scale * (r[:, None] - r[None, :])))
        grad = (s - n * expected).sum(1)
        r += 40.0 * grad / np.maximum(n.sum(1), 1.0)
        r -= r[anchor]
    return r


def plot_ratings(path: Path, steps: np.ndarray, ratings: np.ndarray, anchors: dict[str, float], title: str,
                 direct: dict[str, np.ndarray]):
    """Elo of the snapshots (left) beside their direct score against each scripted player (right).

    Elo fits one number per player to the whole table, so snapshots that only beat each other
    can out-rate a scripted player they lose to; the direct scores show that.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxrl.records import save_figure

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax.plot(steps, ratings, "o-", label="policy snapshots")
    for (name, value), style in zip(anchors.items(), ("--", ":", "-.")):
        ax.axhline(value, linestyle=style, color="grey", label=name)
    ax.set_xlabel("env steps")
    ax.set_ylabel("Elo (random player = 0)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    for name, rate in direct.items():
        bx.plot(steps, rate, "o-", label=f"vs {name}")
    bx.axhline(0.5, color="grey", linewidth=0.8)
    bx.set_ylim(-0.02, 1.02)
    bx.set_xlabel("env steps")
    bx.set_ylabel("score (win 1, draw 1/2), both seats")
    bx.set_title("snapshots against the scripted players")
    bx.grid(alpha=0.3)
    bx.legend()
    save_figure(fig, path)


def plot_matrix(path: Path, names: list[str], rate: np.ndarray, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxrl.records import save_figure

    size = max(5.0, 0.45 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(rate, vmin=0, vmax=1, cmap="RdBu")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("opponent")
    ax.set_ylabel("player")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="score of row vs column (win 1, draw 1/2)")
    save_figure(fig, path)


def league_report(env, act, snapshots, snapshot_steps, members, run_dir: Path, title: str, games: int = 32,
                  seed: int = 0) -> dict:
    """Rate the pool snapshots (and population members) against each other and the scripted players;
    write league.json, ratings.png (Elo vs env steps) and winrate.png (score matrix)."""
    from jaxrl.records import atomic_write

    names = [f"step {s:,}" for s in snapshot_steps]
    pool = snapshots
    if members is not None:
        names += [f"member {i}" for i in range(jax.tree.leaves(members)[0].shape[0])]
        pool = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), snapshots, members)
    key = jax.random.PRNGKey(seed)
    score, count = round_robin(env, act, pool, key, games)
    scripted = scripted_players(env)
    k = len(names)
    # Scripted players join as extra rows/columns (they play every policy, not each other).
    extra = list(scripted)
    size = k + len(extra)
    full_s, full_n = np.zeros((size, size)), np.zeros((size, size))
    full_s[:k, :k], full_n[:k, :k] = score, count
    sides = jnp.arange(2 * games) % 2
    for e, name in enumerate(extra):
        def vs(params, key, opponent=scripted[name]):
            return (play(env, params_player(act, params, True), opponent, key, sides)["outcome"] + 1.0).sum() / 2.0

        pts = np.asarray(jax.jit(jax.vmap(vs))(pool, jax.random.split(jax.random.fold_in(key, e + 1), k)))
        full_s[:k, k + e], full_s[k + e, :k] = pts, 2 * games - pts
        full_n[:k, k + e] = full_n[k + e, :k] = 2 * games
    names += extra
    anchor = names.index("random") if "random" in names else 0
    ratings = elo(full_s, full_n, anchor)
    rate = np.where(full_n > 0, full_s / np.maximum(full_n, 1), np.nan)
    record = {"players": names, "env_steps": [int(s) for s in snapshot_steps], "games_per_pair": int(2 * games),
              "score": full_s.tolist(), "games": full_n.tolist(), "elo": [round(float(r), 1) for r in ratings]}
    atomic_write(run_dir / "league.json", json.dumps(record, indent=1))
    n_snap = len(snapshot_steps)
    direct = {name: rate[:n_snap, k + e] for e, name in enumerate(extra)}
    plot_ratings(run_dir / "ratings.png", np.asarray(snapshot_steps), ratings[:n_snap],
                 {name: float(ratings[names.index(name)]) for name in extra}, f"{title}: Elo of snapshots", direct)
    plot_matrix(run_dir / "winrate.png", names, rate, f"{title}: round robin")
    return {"elo_first_snapshot": round(float(ratings[0]), 1), "elo_last_snapshot": round(float(ratings[n_snap - 1]), 1),
            "elo_scripted": {name: round(float(ratings[names.index(name)]), 1) for name in extra},
            "last_snapshot_score": {name: round(float(r[-1]), 3) for name, r in direct.items()}}
