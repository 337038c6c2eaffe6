"""Ratings of a self-play run's policies: round robins between them, Elo ratings fitted to the score
table, and the league report (league.json, ratings.png, winrate.png) that `jaxrl eval` writes."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import plots
from jaxrl.league.arena import params_player, play, scripted_players, switch_player
from jaxrl.records import atomic_write


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


def league_report(env, act, snapshots, snapshot_steps, members, run_dir: Path, title: str, games: int = 32,
                  seed: int = 0) -> dict:
    """Rate the pool snapshots (and population members) against each other and the scripted players;
    write league.json, ratings.png (Elo vs env steps) and winrate.png (score matrix)."""
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

    def vs(params, key, index):  # one compiled program for every scripted player
        opponent = switch_player(list(scripted.values()), index)
        return (play(env, params_player(act, params, True), opponent, key, sides)["outcome"] + 1.0).sum() / 2.0

    vs_pool = jax.jit(jax.vmap(vs, in_axes=(0, 0, None)))
    for e, name in enumerate(extra):
        pts = np.asarray(vs_pool(pool, jax.random.split(jax.random.fold_in(key, e + 1), k), e))
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
    plots.plot_ratings(run_dir / "ratings.png", np.asarray(snapshot_steps), ratings[:n_snap],
                       {name: float(ratings[names.index(name)]) for name in extra}, f"{title}: Elo of snapshots",
                       direct)
    plots.plot_matrix(run_dir / "winrate.png", names, rate, f"{title}: round robin")
    return {"elo_first_snapshot": round(float(ratings[0]), 1), "elo_last_snapshot": round(float(ratings[n_snap - 1]), 1),
            "elo_scripted": {name: round(float(ratings[names.index(name)]), 1) for name in extra},
            "last_snapshot_score": {name: round(float(r[-1]), 3) for name, r in direct.items()}}
