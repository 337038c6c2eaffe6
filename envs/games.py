"""Two-player zero-sum games in pure JAX (ids `jaxrl:tictactoe`, `jaxrl:connect4`, `jaxrl:sumo`).

Multi-agent contract shared by the three (agents "player_0", "player_1"):
- obs [2, *obs_shape] float32, each seat's from its OWN perspective, so one
  policy can play either seat; action [2] int32, one per seat.
- reward [2]: +1 winner, -1 loser, 0 draw, only at the step the game ends.
  terminated / truncated [2] are equal for both seats.
- `action_mask(state)` [2, n] bool and `active(state)` [2] bool: whose action
  counts this step. Alternating games: only the mover's row / entry is set,
  the other seat's action is ignored whatever its value. All False once over.
- info: "illegal" [2] bool (the mover played an occupied cell / full column:
  the game ends at once as its loss, the move is not executed), "winner"
  (int32: 0 / 1, -1 for a draw or a running game), plus "agent_ids" and
  "action_mask" (of the returned state) like the jaxmarl adapter.
- Stepping a finished game returns it unchanged with zero reward.
- `render(state)` draws one unbatched state as text (host side).
- `scripted_opponents()`: {name: fn(key, obs, mask) -> int32 action} for ONE
  seat's observation and legal mask; pure JAX, unbatched, vmap-able. A seat
  whose mask is all False (not its turn) gets action 0.
- `sides = (0, 1)` and `zero_sum = True` mark them as games for self-play.

Board games (player_0 = X moves first): obs [rows, cols, 3] with channels
(my stones, opponent stones, all 1.0 when it is my move).
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxrl.envs.core import Environment
from jaxrl.envs.spaces import Box, Discrete

AGENTS = ["player_0", "player_1"]


def _pick(key, allowed):
    """Uniform choice among the True entries of `allowed` (0 when there are none)."""
    score = jnp.where(allowed, jax.random.uniform(key, allowed.shape), -1.0)
    return jnp.argmax(score).astype(jnp.int32)


def _random_opponent(key, obs, mask):
    return _pick(key, mask)


def _zero_sum(winner):
    """[2] rewards for a winner of 0 / 1 / -1 (draw or still running)."""
    return jnp.where(winner < 0, 0.0, jnp.where(jnp.arange(2) == winner, 1.0, -1.0)).astype(jnp.float32)


def _select(pred, on_true, on_false):
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


# ---------------------------------------------------------------------------
# Board games
# ---------------------------------------------------------------------------


def has_line(plane, k):
    """Whether the bool plane(s) [..., rows, cols] hold k in a row in any direction.

    Shifted ANDs over the whole board: a few dozen elementwise ops, no gathers,
    which vectorise better than walking lines from the last piece.
    """
    rows, cols = plane.shape[-2:]
    found = jnp.zeros(plane.shape[:-2], bool)
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        nr, nc = rows - (k - 1) * dr, cols - (k - 1) * abs(dc)
        if nr <= 0 or nc <= 0:
            continue
        acc = None
        for i in range(k):
            r0, c0 = i * dr, (k - 1) * (dc < 0) + i * dc
            cut = plane[..., r0:r0 + nr, c0:c0 + nc]
            acc = cut if acc is None else acc & cut
        found = found | acc.any((-2, -1))
    return found


@struct.dataclass
class BoardState:
    board: jax.Array  # [rows, cols] int8: 0 empty, 1 player_0 (X), 2 player_1 (O)
    turn: jax.Array  # int32 seat to move (kept as the last mover once the game is over)
    done: jax.Array  # bool
    winner: jax.Array  # int32: 0 / 1, -1 draw or running
    illegal: jax.Array  # bool: the game ended by an illegal move (of the loser)
    moves: jax.Array  # int32 stones placed


class _BoardGame(Environment):
    """Alternating k-in-a-row games on a rows x cols board; subclasses say where a move lands."""

    num_agents = 2
    agents = AGENTS
    sides = (0, 1)  # each seat is its own side (what self-play matches up)
    zero_sum = True
    rows: int
    cols: int
    k: int
    num_actions: int

    def __init__(self, name: str):
        self.env_id = f"jaxrl:{name}"

    # --- rules -----------------------------------------------------------
    def legal(self, board):
        """[n] bool: the legal actions on `board` (for whoever moves)."""
        raise NotImplementedError

    def target(self, board, action):
        """[rows, cols] bool one-hot of the cell `action` fills; all False if illegal or out of range."""
        raise NotImplementedError

    def state_from_board(self, board) -> BoardState:
        """A running state for a board of 0 / 1 (X) / 2 (O); X moves when the counts are equal."""
        board = jnp.asarray(board, jnp.int8).reshape(self.rows, self.cols)
        crosses, noughts = jnp.sum(board == 1), jnp.sum(board == 2)
        return BoardState(board, (crosses > noughts).astype(jnp.int32), jnp.bool_(False), jnp.int32(-1),
                          jnp.bool_(False), (crosses + noughts).astype(jnp.int32))

    # --- contract --------------------------------------------------------
    def reset(self, key, params):
        state = self.state_from_board(jnp.zeros((self.rows, self.cols), jnp.int8))
        return self._obs(state), state

    def active(self, state):
        return (jnp.arange(2) == state.turn) & ~state.done

    def action_mask(self, state):
        return self.active(state)[:, None] & self.legal(state.board)[None, :]

    def _obs(self, state):
        codes = jnp.array([1, 2], jnp.int8)
        mine = state.board[None] == codes[:, None, None]
        theirs = state.board[None] == codes[::-1, None, None]
        my_turn = jnp.broadcast_to(self.active(state)[:, None, None], mine.shape)
        return jnp.stack([mine, theirs, my_turn], -1).astype(jnp.float32)

    def step(self, key, state, action, params):
        mover = state.turn
        act = jnp.where(mover == 0, action[0], action[1])  # the other seat's action is never read
        cell = self.target(state.board, act)
        legal = cell.any()
        code = (mover + 1).astype(jnp.int8)
        board = jnp.where(cell, code, state.board)
        won = legal & has_line(board == code, self.k)
        full = jnp.all(board != 0)
        done = ~legal | won | full
        winner = jnp.where(~legal, 1 - mover, jnp.where(won, mover, -1)).astype(jnp.int32)
        new = BoardState(board, jnp.where(done, mover, 1 - mover).astype(jnp.int32), done, winner, ~legal,
                         state.moves + legal.astype(jnp.int32))
        over = state.done  # a finished game stays as it is
        new = _select(over, state, new)
        reward = jnp.where(over, 0.0, _zero_sum(new.winner))
        illegal = (jnp.arange(2) == mover) & ~legal & ~over
        terminated = jnp.broadcast_to(new.done, (2,))
        info = {"illegal": illegal, "winner": new.winner, "agent_ids": jnp.eye(2),
                "action_mask": self.action_mask(new)}
        return self._obs(new), new, reward, terminated, jnp.zeros(2, bool), info

    def observation_space(self, params):
        return Box.make(0.0, 1.0, (self.rows, self.cols, 3))

    def action_space(self, params):
        return Discrete(self.num_actions)

    # --- display ---------------------------------------------------------
    def _status(self, state) -> str:
        names = ["X (player_0)", "O (player_1)"]
        turn, winner = int(state.turn), int(state.winner)
        if not bool(state.done):
            return f"{names[turn]} to move"
        if winner < 0:
            return "draw"
        how = f" ({'XO'[1 - winner]} played an illegal move)" if bool(state.illegal) else ""
        return f"{names[winner]} wins{how}"

    def _grid(self, state) -> list[str]:
        board = np.asarray(state.board).reshape(self.rows, self.cols)
        return [" ".join(".XO"[v] for v in row) for row in board]

    # --- scripted opponents ------------------------------------------------
    def _from_obs(self, obs):
        """The board from one seat's view: 1 mine, 2 theirs."""
        return (obs[..., 0] > 0.5).astype(jnp.int8) + 2 * (obs[..., 1] > 0.5).astype(jnp.int8)

    def _heuristic(self, key, obs, mask):
        """Win now if possible, else block the opponent's immediate win, else random."""
        board = self._from_obs(obs)
        cells = jax.vmap(self.target, in_axes=(None, 0))(board, jnp.arange(self.num_actions))  # [n, rows, cols]
        wins = mask & has_line((board == 1) | cells, self.k)
        blocks = mask & has_line((board == 2) | cells, self.k)
        choice = jnp.where(wins.any(), wins, jnp.where(blocks.any(), blocks, mask))
        return _pick(key, choice)

    def scripted_opponents(self) -> dict:
        return {"random": _random_opponent, "heuristic": self._heuristic}


class TicTacToe(_BoardGame):
    """3x3 tic-tac-toe; actions 0..8 are cells row-major. obs [3, 3, 3]."""

    rows = cols = k = 3
    num_actions = 9

    def __init__(self, name: str = "tictactoe"):
        super().__init__(name)

    def legal(self, board):
        return board.reshape(-1) == 0

    def target(self, board, action):
        return ((jnp.arange(9) == action) & (board.reshape(-1) == 0)).reshape(3, 3)

    def render(self, state) -> str:
        cells = [" ".join(str(3 * r + c) for c in range(3)) for r in range(3)]
        lines = [f"{g}    {i}" for g, i in zip(self._grid(state), cells)]
        return "\n".join(lines + [self._status(state)])

    def _minimax(self, key, obs, mask):
        """A perfect player: uniform among the game-theoretically optimal moves."""
        table = jnp.asarray(minimax_table())
        index = jnp.sum(self._from_obs(obs).reshape(-1).astype(jnp.int32) * (3 ** jnp.arange(9)))
        best = table[index] & mask
        return _pick(key, jnp.where(best.any(), best, mask))  # unreachable positions: any legal move

    def scripted_opponents(self) -> dict:
        return {**super().scripted_opponents(), "minimax": self._minimax}


class ConnectFour(_BoardGame):
    """6 rows x 7 columns, four in a row; actions 0..6 drop a piece in a column. obs [6, 7, 3]."""

    rows, cols, k = 6, 7, 4
    num_actions = 7

    def __init__(self, name: str = "connect4"):
        super().__init__(name)

    def legal(self, board):
        return board[0] == 0  # row 0 is the top

    def target(self, board, action):
        landing = jnp.sum(board == 0, axis=0) - 1  # [cols]: lowest empty row, -1 when full
        column = jnp.arange(self.cols) == action
        return (jnp.arange(self.rows)[:, None] == landing[None, :]) & column[None, :]

    def render(self, state) -> str:
        footer = " ".join(str(c) for c in range(self.cols))
        return "\n".join(self._grid(state) + [footer, self._status(state)])


_LINES = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6)]


@functools.lru_cache(maxsize=None)
def minimax_table() -> np.ndarray:
    """[3**9, 9] bool: the optimal moves of every tic-tac-toe position, from the mover's view.

    A position's index is sum(cell_i * 3**i), cell 0 empty, 1 mover's, 2 opponent's
    (row-major cells). Finished positions (a line or a full board) have no moves.
    Solved once per process by memoised negamax over all 3**9 boards (~0.3 s).
    """

    @functools.lru_cache(maxsize=None)
    def value(b):  # b: tuple from the mover's view; value for the mover
        lines = [any(all(b[i] == who for i in line) for line in _LINES) for who in (1, 2)]
        if lines[0] or lines[1] or 0 not in b:
            return int(lines[0]) - int(lines[1])
        return max(-value(_child(b, i)) for i in range(9) if b[i] == 0)

    table = np.zeros((3**9, 9), bool)
    for index, b in enumerate(itertools.product(range(3), repeat=9)):
        b = b[::-1]  # product runs the last cell fastest; cell 0 is the lowest digit
        lines = any(all(b[i] == who for i in line) for line in _LINES for who in (1, 2))
        if lines or 0 not in b:
            continue
        vals = {i: -value(_child(b, i)) for i in range(9) if b[i] == 0}
        best = max(vals.values())
        for i, v in vals.items():
            table[index, i] = v == best
    return table


def _child(b, i):
    """Play cell i for the mover, then flip to the next mover's view."""
    return tuple(2 if j == i else (0 if v == 0 else 3 - v) for j, v in enumerate(b))


# ---------------------------------------------------------------------------
# Sumo
# ---------------------------------------------------------------------------


@struct.dataclass
class SumoParams:
    max_steps: int = 200
    ring_radius: float = 1.0
    disc_radius: float = 0.1
    accel: float = 1.0  # per unit of time, along the chosen direction
    damping: float = 0.5  # fraction of velocity lost per unit of time
    dt: float = 0.1
    restitution: float = 1.0  # 1: elastic collisions


@struct.dataclass
class SumoState:
    pos: jax.Array  # [2, 2] disc centres
    vel: jax.Array  # [2, 2]
    time: jax.Array  # int32 steps taken
    terminated: jax.Array  # bool: a disc left the ring
    truncated: jax.Array  # bool: the time limit ended the game
    winner: jax.Array  # int32: 0 / 1, -1 draw or running


_S = float(np.sqrt(0.5))
# action 0 no-op, then N, NE, E, SE, S, SW, W, NW (unit vectors, y up)
SUMO_DIRECTIONS = np.array(
    [[0, 0], [0, 1], [_S, _S], [1, 0], [_S, -_S], [0, -1], [-_S, -_S], [-1, 0], [-_S, _S]], np.float32)


class Sumo(Environment):
    """Two discs in a ring push each other; simultaneous moves, Discrete(9) force directions.

    A disc whose centre leaves the ring loses (both at once: draw); the time
    limit `max_steps` ends the game as a truncated draw. obs [11] per seat, in
    ring radii: own pos, own vel, opponent pos, opponent vel, own and opponent
    distance to the edge, fraction of time left. Starts are point-symmetric
    through the centre, so the seats are equivalent. Out-of-range actions act
    as no-ops.
    """

    num_agents = 2
    agents = AGENTS
    sides = (0, 1)
    zero_sum = True
    num_actions = 9

    def __init__(self, name: str = "sumo"):
        self.env_id = f"jaxrl:{name}"

    @property
    def default_params(self):
        return SumoParams()

    def reset(self, key, params):
        angle_key, radius_key = jax.random.split(key)
        angle = jax.random.uniform(angle_key, (), minval=0.0, maxval=2 * jnp.pi)
        radius = jax.random.uniform(radius_key, (), minval=0.3, maxval=0.6) * params.ring_radius
        p0 = radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)])
        state = SumoState(jnp.stack([p0, -p0]), jnp.zeros((2, 2)), jnp.int32(0), jnp.bool_(False),
                          jnp.bool_(False), jnp.int32(-1))
        return self._obs(state, params), state

    def _obs(self, state, params):
        pos, vel = state.pos / params.ring_radius, state.vel / params.ring_radius
        edge = 1.0 - jnp.linalg.norm(pos, axis=-1)
        left = jnp.clip(1.0 - state.time / params.max_steps, 0.0, 1.0)

        def seat(me):
            you = 1 - me
            return jnp.concatenate([pos[me], vel[me], pos[you], vel[you], edge[me, None], edge[you, None], left[None]])

        return jnp.stack([seat(0), seat(1)]).astype(jnp.float32)

    def active(self, state):
        return jnp.broadcast_to(~(state.terminated | state.truncated), (2,))

    def action_mask(self, state):
        return jnp.broadcast_to(self.active(state)[:, None], (2, self.num_actions))

    def step(self, key, state, action, params):
        action = jnp.where((action >= 0) & (action < self.num_actions), action, 0)
        force = jnp.asarray(SUMO_DIRECTIONS)[action] * params.accel
        vel = (state.vel + force * params.dt) * (1.0 - params.damping * params.dt)
        pos = state.pos + vel * params.dt
        # collision: separate the overlap and exchange the normal velocities (equal masses)
        delta = pos[1] - pos[0]
        dist = jnp.linalg.norm(delta)
        normal = jnp.where(dist > 1e-6, delta / jnp.maximum(dist, 1e-6), jnp.array([1.0, 0.0]))
        overlap = jnp.maximum(2 * params.disc_radius - dist, 0.0)
        pos = pos + jnp.stack([-normal, normal]) * overlap / 2
        closing = jnp.dot(vel[1] - vel[0], normal)
        impulse = jnp.where((overlap > 0) & (closing < 0), -(1 + params.restitution) * closing / 2, 0.0)
        vel = vel + jnp.stack([-normal, normal]) * impulse

        out = jnp.linalg.norm(pos, axis=-1) > params.ring_radius
        terminated = out.any()
        truncated = (state.time + 1 >= params.max_steps) & ~terminated
        winner = jnp.where(out[1] & ~out[0], 0, jnp.where(out[0] & ~out[1], 1, -1)).astype(jnp.int32)
        new = SumoState(pos, vel, state.time + 1, terminated, truncated, winner)
        over = state.terminated | state.truncated
        new = _select(over, state, new)
        reward = jnp.where(over, 0.0, _zero_sum(new.winner))
        info = {"illegal": jnp.zeros(2, bool), "winner": new.winner, "agent_ids": jnp.eye(2),
                "action_mask": self.action_mask(new)}
        return (self._obs(new, params), new, reward, jnp.broadcast_to(new.terminated, (2,)),
                jnp.broadcast_to(new.truncated, (2,)), info)

    def observation_space(self, params):
        return Box.make(-np.inf, np.inf, (11,))

    def action_space(self, params):
        return Discrete(self.num_actions)

    def render(self, state, params=None, height: int = 11) -> str:
        params = self.default_params if params is None else params
        radius = float(params.ring_radius)
        pos, vel = np.asarray(state.pos, np.float64), np.asarray(state.vel, np.float64)
        width = 2 * height - 1  # characters are about twice as tall as wide
        span = 1.2 * radius
        xs = np.linspace(-span, span, width)
        ys = np.linspace(span, -span, height)
        grid = [["." if x * x + y * y <= radius * radius else " " for x in xs] for y in ys]
        for seat in (0, 1):
            c = int(np.clip(np.rint((pos[seat, 0] + span) / (2 * span) * (width - 1)), 0, width - 1))
            r = int(np.clip(np.rint((span - pos[seat, 1]) / (2 * span) * (height - 1)), 0, height - 1))
            grid[r][c] = str(seat + 1)
        lines = ["".join(row).rstrip() for row in grid]
        for seat in (0, 1):
            lines.append(f"{seat + 1} player_{seat}: pos ({pos[seat, 0]:+.2f}, {pos[seat, 1]:+.2f}) "
                         f"vel ({vel[seat, 0]:+.2f}, {vel[seat, 1]:+.2f})")
        time, winner = int(state.time), int(state.winner)
        if bool(state.terminated):
            status = "draw (both out)" if winner < 0 else f"player_{winner} wins"
        elif bool(state.truncated):
            status = "draw (time limit)"
        else:
            status = "running"
        lines.append(f"step {time}/{int(params.max_steps)}: {status}")
        return "\n".join(lines)

    def _heuristic(self, key, obs, mask):
        """Accelerate toward the opponent; near the edge, toward the centre."""
        own, opp, edge = obs[0:2], obs[4:6], obs[8]
        goal = jnp.where(edge < 0.25, -own, opp - own)
        score = jnp.asarray(SUMO_DIRECTIONS[1:]) @ goal
        return jnp.where(mask.any(), jnp.argmax(score) + 1, 0).astype(jnp.int32)

    def scripted_opponents(self) -> dict:
        return {"random": _random_opponent, "heuristic": self._heuristic}
