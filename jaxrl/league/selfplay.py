"""Self-play on two-sided zero-sum games: who plays whom, inside the compiled program.

Modes (`selfplay` in the ippo/mappo config):
- latest: the learner plays itself (mirror); every seat's experience trains it.
- pool: each env group faces a snapshot drawn uniformly from the pool of past policies.
- pfsp: prioritised fictitious self-play: snapshot i is drawn with weight (1 - w_i)^p,
  w_i the learner's recent score against it (win 1, draw 1/2) in its weaker side, so hard
  opponents come back, also those that beat the learner in one side only.
- population: N policies train together (vmapped); each env group of member p faces another
  member drawn uniformly.
The pool (ring buffer of `pool_size` snapshots of policy 0) and the score table live in the
runner state as a `League`, so snapshots, sampling and matchmaking never leave the device.
The league may also hold K of the game's scripted players (fixed anchors that keep punishing
blunders past selves share): pool and pfsp draw them like snapshots, by the same weights;
population draws them uniformly beside the other members; `scripted_share` > 0 reserves that
share of the draws for them instead.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.errors import JaxrlError

MODES = ("off", "latest", "pool", "pfsp", "population")
SCORE_DECAY = 0.98  # per update: the score table follows the learner as it improves


@struct.dataclass
class League:
    pool: Any  # params snapshots [S, ...] of policy 0
    pool_update: jax.Array  # [S] update after which each snapshot was taken (-1: empty slot)
    count: jax.Array  # snapshots taken so far (slot = count % S)
    score: jax.Array  # [S + P + K, 2] decayed learner score against each snapshot, member, scripted
    # player, by the learner's side
    games: jax.Array  # [S + P + K, 2] decayed games behind `score`


def sides_of(env, env_id: str) -> jax.Array:
    """[num_agents] side (0/1) of each agent; a clear error for games self-play cannot use."""
    sides = getattr(env.unwrapped, "sides", None)
    if env.num_agents is None or sides is None or not getattr(env.unwrapped, "zero_sum", False):
        raise JaxrlError(f"self-play needs a two-sided zero-sum game; {env_id} declares no competing sides "
                         f"(games: jaxrl:tictactoe, jaxrl:connect4, jaxrl:sumo)")
    sides = tuple(int(s) for s in sides)
    if sorted(set(sides)) != [0, 1] or sides.count(0) != sides.count(1):
        raise JaxrlError(f"self-play needs two sides of equal size; {env_id} has sides {sides}")
    return jnp.asarray(sides, jnp.int32)


def init_league(params, pool_size: int, members: int, scripted: int = 0) -> League:
    """A pool holding the initial policy (params of policy 0) in slot 0."""
    pool = jax.tree.map(lambda x: jnp.zeros((pool_size,) + x.shape, x.dtype).at[0].set(x), params)
    pool_update = jnp.full((pool_size,), -1, jnp.int32).at[0].set(0)
    zeros = jnp.zeros((pool_size + members + scripted, 2), jnp.float32)
    return League(pool, pool_update, jnp.int32(1), zeros, zeros)


def snapshot(league: League, params, update) -> League:
    """Put `params` (one policy) into the next pool slot, forgetting the scores against the old one."""
    size = league.pool_update.shape[0]
    slot = league.count % size
    pool = jax.tree.map(lambda p, x: p.at[slot].set(x), league.pool, params)
    return League(pool, league.pool_update.at[slot].set(update), league.count + 1,
                  league.score.at[slot].set(0.0), league.games.at[slot].set(0.0))


def pick_opponents(league: League, params, key, mode: str, members: int, groups: int, power, scripted_share=0.0):
    """Opponents of the P*G env blocks of one update (member-major): (params [P*G, ...], index [P*G]).

    index < S names a pool slot, index S + j population member j, index S + P + k scripted player k
    (its params row is a placeholder). `scripted_share` > 0 reserves that share of the draws for the
    scripted players (weighed among themselves as the mode weighs snapshots or members).
    """
    size = league.pool_update.shape[0]
    scripted = league.score.shape[0] - size - members
    if mode == "population":  # another member, or a scripted player (uniform over all unless a share is set)
        shape = (members * groups,)
        shift = jax.random.randint(key, shape, 1, members)
        if scripted > 0:
            share = jnp.where(scripted_share > 0, scripted_share, scripted / (members - 1 + scripted))
            k_share, k_player = jax.random.split(jax.random.fold_in(key, 1))
            shift = jnp.where(jax.random.uniform(k_share, shape) < share,
                              members + jax.random.randint(k_player, shape, 0, scripted), shift)
        member = (jnp.repeat(jnp.arange(members), groups) + shift) % members
        is_member = shift < members
        index = jnp.where(is_member, size + member, size + shift)
        return jax.tree.map(lambda x: x[jnp.where(is_member, member, 0)], params), index
    candidates = jnp.concatenate([jnp.arange(size), size + members + jnp.arange(scripted)])
    filled = jnp.concatenate([league.pool_update >= 0, jnp.ones(scripted, bool)])
    weight = jnp.ones(size + scripted)
    if mode == "pfsp":
        rate = (league.score[candidates] + 0.5) / (league.games[candidates] + 1.0)  # prior: one drawn game
        rate = rate.min(-1)  # the learner's weaker side
        weight = jnp.power(1.0 - rate, power) + 1e-3  # every opponent keeps a small chance
    if scripted > 0:  # the scripted players' share: by weight, unless one is reserved
        weight = jnp.where(filled, weight, 0.0)
        snapshots, players = weight[:size], weight[size:]
        share = jnp.where(scripted_share > 0, scripted_share, players.sum() / weight.sum())
        weight = jnp.concatenate([snapshots / jnp.maximum(snapshots.sum(), 1e-9) * (1.0 - share),
                                  players / players.sum() * share])
    logits = jnp.where(filled & (weight > 0), jnp.log(weight), -jnp.inf)
    pick = jax.random.categorical(key, logits, shape=(members * groups,))
    return jax.tree.map(lambda x: x[jnp.where(pick < size, pick, 0)], league.pool), candidates[pick]


def record(league: League, index, score, games) -> League:
    """Add the learner's results of one update (score and games [P*G, 2 sides] against opponents `index`)."""
    new_score = (league.score * SCORE_DECAY).at[index].add(score)
    new_games = (league.games * SCORE_DECAY).at[index].add(games)
    return league.replace(score=new_score, games=new_games)
