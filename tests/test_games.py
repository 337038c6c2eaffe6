"""The two-player games (jaxrl:tictactoe, jaxrl:connect4, jaxrl:sumo): rules, contract, scripted opponents.

Compilation dominates: each env's step is jitted once and shared (`stepper`),
and scripted-opponent matches run through one jitted vmapped arena per env
whose policies are picked by a traced index (`arena`).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import envs
from jaxrl.envs import Box, Discrete, make_vec_env
from jaxrl.envs import own
from jaxrl.envs.games import ConnectFour, Sumo, SumoParams, SumoState, TicTacToe, minimax_table

TTT, C4, SUMO = "jaxrl:tictactoe", "jaxrl:connect4", "jaxrl:sumo"
GAMES = 256  # games per arena match
MAX_MOVES = {TTT: 9, C4: 42}


@functools.lru_cache(maxsize=None)
def make(env_id):
    return envs.make(env_id)


@functools.lru_cache(maxsize=None)
def stepper(env_id):
    return jax.jit(make(env_id).step)


def step(env_id, state, action, params=None):
    out = stepper(env_id)(jax.random.PRNGKey(0), state, jnp.asarray(action, jnp.int32), params)
    return jax.device_get(out)


def play(env_id, moves, state=None, idle=0):
    """Play the mover's moves in turn (the other seat sends `idle`); returns every step's output."""
    env = make(env_id)
    if state is None:
        _, state = env.reset(jax.random.PRNGKey(0), None)
    outs = []
    for move in moves:
        action = [move, idle] if int(state.turn) == 0 else [idle, move]
        outs.append(step(env_id, state, action))
        state = outs[-1][1]
    return outs


def board_from(rows):
    """Board array from strings of 'X', 'O', '.' (row 0 first; connect-four's row 0 is the top)."""
    return np.array([[".XO".index(ch) for ch in row.replace(" ", "")] for row in rows], np.int8)


def assert_result(out, winner):
    obs, state, reward, terminated, truncated, info = out
    expected = [0.0, 0.0] if winner < 0 else ([1.0, -1.0] if winner == 0 else [-1.0, 1.0])
    np.testing.assert_array_equal(reward, expected)
    assert reward.dtype == np.float32
    np.testing.assert_array_equal(terminated, [True, True])
    np.testing.assert_array_equal(truncated, [False, False])
    assert int(info["winner"]) == winner == int(state.winner) and bool(state.done)
    assert not info["action_mask"].any()  # nobody moves in a finished game


def assert_running(out):
    _, state, reward, terminated, truncated, info = out
    np.testing.assert_array_equal(reward, [0.0, 0.0])
    assert not terminated.any() and not truncated.any() and not info["illegal"].any()
    assert int(info["winner"]) == -1 and not bool(state.done)


# --- registry and spaces ------------------------------------------------------


@pytest.mark.timeout(60)
def test_games_are_registered_with_their_spaces():
    assert {"tictactoe", "connect4", "sumo"} <= set(own.ids())
    for env_id, cls, obs_shape, n in [(TTT, TicTacToe, (3, 3, 3), 9), (C4, ConnectFour, (6, 7, 3), 7),
                                      (SUMO, Sumo, (11,), 9)]:
        env = make(env_id)
        assert isinstance(env, cls) and env.env_id == env_id
        assert env.num_agents == 2 and env.agents == ["player_0", "player_1"]
        params = env.default_params
        assert env.observation_space(params) == Box.make(env.observation_space(params).low,
                                                         env.observation_space(params).high, obs_shape)
        assert env.action_space(params) == Discrete(n)
        obs, _ = env.reset(jax.random.PRNGKey(1), params)
        assert obs.shape == (2,) + obs_shape and obs.dtype == jnp.float32
        assert set(env.scripted_opponents()) >= {"random", "heuristic"}
    assert "minimax" in make(TTT).scripted_opponents()


# --- tic-tac-toe ----------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("moves, winner", [
    ([0, 3, 1, 4, 2], 0),  # X: top row
    ([0, 1, 3, 2, 6], 0),  # X: left column
    ([0, 1, 4, 2, 8], 0),  # X: main diagonal
    ([2, 0, 4, 1, 6], 0),  # X: anti-diagonal
    ([0, 3, 1, 4, 8, 5], 1),  # O: middle row
])
def test_tictactoe_lines_win(moves, winner):
    outs = play(TTT, moves)
    for out in outs[:-1]:
        assert_running(out)
    assert_result(outs[-1], winner)
    assert not outs[-1][5]["illegal"].any()


@pytest.mark.timeout(60)
def test_tictactoe_full_board_without_a_line_is_a_draw():
    outs = play(TTT, [0, 1, 2, 4, 3, 5, 7, 6, 8])
    for out in outs[:-1]:
        assert_running(out)
    assert_result(outs[-1], -1)
    assert int(outs[-1][1].moves) == 9
    assert "draw" in make(TTT).render(outs[-1][1])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("bad", [4, 9, -1])  # occupied, out of range both ways
def test_tictactoe_illegal_move_loses_and_is_not_played(bad):
    before = play(TTT, [4])[-1][1]  # X in the centre, O to move
    out = step(TTT, before, [0, bad])
    assert_result(out, 0)
    np.testing.assert_array_equal(out[5]["illegal"], [False, True])
    np.testing.assert_array_equal(out[1].board, before.board)
    assert bool(out[1].illegal) and "illegal" in make(TTT).render(out[1])


@pytest.mark.timeout(60)
def test_tictactoe_non_mover_action_is_ignored():
    env = make(TTT)
    _, state = env.reset(jax.random.PRNGKey(0), None)
    outs = [step(TTT, state, [4, other]) for other in (0, 4, 99, -7)]  # X moves; O's value is irrelevant
    for out in outs[1:]:
        jax.tree.map(np.testing.assert_array_equal, out, outs[0])
    state = outs[0][1]
    outs = [step(TTT, state, [other, 0]) for other in (0, 4, 123)]  # O moves; even X's "illegal" 4 is ignored
    for out in outs:
        assert_running(out)
        jax.tree.map(np.testing.assert_array_equal, out, outs[0])


@pytest.mark.timeout(60)
def test_tictactoe_masks_active_and_perspective_alternate():
    env = make(TTT)
    obs, state = env.reset(jax.random.PRNGKey(0), None)
    np.testing.assert_array_equal(env.active(state), [True, False])
    np.testing.assert_array_equal(env.action_mask(state), [[True] * 9, [False] * 9])
    np.testing.assert_array_equal(obs[:, :, :, 2].reshape(2, -1), [[1.0] * 9, [0.0] * 9])
    (obs, state, *_), = play(TTT, [4], state)
    np.testing.assert_array_equal(env.active(state), [False, True])
    mask = env.action_mask(state)
    assert not mask[0].any() and mask[1].sum() == 8 and not mask[1, 4]
    (obs, state, *_, info), = play(TTT, [0], state)
    np.testing.assert_array_equal(info["action_mask"], env.action_mask(state))
    # X (seat 0) sees its centre stone in channel 0; O (seat 1) sees its corner in channel 0
    np.testing.assert_array_equal(obs[0, :, :, 0].reshape(-1), np.eye(9)[4])
    np.testing.assert_array_equal(obs[0, :, :, 1].reshape(-1), np.eye(9)[0])
    np.testing.assert_array_equal(obs[1, :, :, 0].reshape(-1), np.eye(9)[0])
    np.testing.assert_array_equal(obs[1, :, :, 1].reshape(-1), np.eye(9)[4])
    np.testing.assert_array_equal(obs[:, 0, 0, 2], [1.0, 0.0])  # X to move again
    np.testing.assert_array_equal(env.active(state), [True, False])


@pytest.mark.timeout(60)
def test_stepping_a_finished_game_changes_nothing():
    last = play(TTT, [0, 3, 1, 4, 2])[-1]
    again = step(TTT, last[1], [5, 5])
    jax.tree.map(np.testing.assert_array_equal, again[1], last[1])
    np.testing.assert_array_equal(again[2], [0.0, 0.0])
    np.testing.assert_array_equal(again[3], [True, True])
    assert not again[5]["illegal"].any() and int(again[5]["winner"]) == 0


@pytest.mark.timeout(60)
def test_tictactoe_render():
    env = make(TTT)
    state = play(TTT, [0, 4, 8])[-1][1]
    text = env.render(state)
    assert "X . .    0 1 2\n. O .    3 4 5\n. . X    6 7 8" in text
    assert text.endswith("O (player_1) to move")
    assert env.render(play(TTT, [0, 3, 1, 4, 2])[-1][1]).endswith("X (player_0) wins")


# --- connect four -----------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("moves", [
    [0, 0, 1, 1, 2, 2, 3],  # horizontal along the bottom
    [0, 1, 0, 1, 0, 1, 0],  # vertical
    [0, 1, 1, 2, 2, 3, 2, 3, 3, 6, 3],  # diagonal rising to the right
    [6, 5, 5, 4, 4, 3, 4, 3, 3, 0, 3],  # diagonal rising to the left
])
def test_connect4_fours_win(moves):
    outs = play(C4, moves)
    for out in outs[:-1]:
        assert_running(out)
    assert_result(outs[-1], 0)


@pytest.mark.timeout(60)
def test_connect4_pieces_stack_and_a_full_column_is_illegal():
    env = make(C4)
    outs = play(C4, [3, 3, 3])
    board = np.asarray(outs[-1][1].board)
    np.testing.assert_array_equal(board[:, 3], [0, 0, 0, 1, 2, 1])  # row 0 is the top
    assert board.sum() == 4 and int(outs[-1][1].moves) == 3
    obs = outs[-1][0]
    np.testing.assert_array_equal(obs[1, 3:, 3, 0], [0, 1, 0])  # O's own stone, seen by O
    outs = play(C4, [3, 3, 3], outs[-1][1])  # column 3 is now full (no four: X O X O X O)
    for out in outs:
        assert_running(out)
    state = outs[-1][1]
    np.testing.assert_array_equal(env.action_mask(state)[0], [True, True, True, False, True, True, True])
    assert not env.action_mask(state)[1].any()
    out = step(C4, state, [3, 3])
    assert_result(out, 1)  # X played the full column: X loses
    np.testing.assert_array_equal(out[5]["illegal"], [True, False])
    np.testing.assert_array_equal(out[1].board, state.board)


DRAW_BOARD = ["OOXOXXX", "XOXOOOX", "XXOOXXO", "OXXXOOX", "OXOOOXO", "XOXXXOO"]  # full, no four
WIN_BOARD = ["XXOXOOO", "OOOXOOO", "OXXOOXO", "XOXOXXX", "XXXOXOX", "XXOXOXO"]  # O's four ends at (0, 6)


def _fours(board, who):
    """Independent brute-force count of fours of `who` on a board."""
    count = 0
    for r in range(6):
        for c in range(7):
            for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                cells = [(r + i * dr, c + i * dc) for i in range(4)]
                count += all(0 <= y < 6 and 0 <= x < 7 and board[y, x] == who for y, x in cells)
    return count


@pytest.mark.timeout(60)
@pytest.mark.parametrize("rows, column, winner", [(DRAW_BOARD, 0, -1), (WIN_BOARD, 6, 1)])
def test_connect4_last_move_fills_the_board(rows, column, winner):
    env = make(C4)
    full = board_from(rows)
    assert (full == 1).sum() == (full == 2).sum() == 21 and full[0, column] == 2
    assert _fours(full, 1) == 0 and _fours(full, 2) == (0 if winner < 0 else 1)
    board = full.copy()
    board[0, column] = 0
    state = env.state_from_board(board)
    assert int(state.turn) == 1 and int(state.moves) == 41
    np.testing.assert_array_equal(env.action_mask(state)[1], np.arange(7) == column)
    out = step(C4, state, [0, column])
    np.testing.assert_array_equal(out[1].board, full)
    assert_result(out, winner)  # a win on the board's last cell is a win, not a draw


@pytest.mark.timeout(60)
def test_connect4_render():
    env = make(C4)
    text = env.render(play(C4, [3, 3, 4])[-1][1])
    empty = ". . . . . . ."
    assert text == "\n".join([empty] * 4 + [". . . O . . .", ". . . X X . .", "0 1 2 3 4 5 6", "O (player_1) to move"])


# --- scripted opponents ------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def arena(env_id):
    """play(seed, name0, name1) -> final states, summed rewards [GAMES, 2], any illegal flag [GAMES, 2]."""
    env = make(env_id)
    params = env.default_params
    names = list(env.scripted_opponents())
    policies = list(env.scripted_opponents().values())
    steps = MAX_MOVES.get(env_id) or params.max_steps

    def game(key, p0, p1):
        reset_key, key = jax.random.split(key)
        obs, state = env.reset(reset_key, params)

        def body(carry, key):
            obs, state, total, illegal = carry
            k0, k1, k_step = jax.random.split(key, 3)
            mask = env.action_mask(state)
            action = jnp.stack([jax.lax.switch(p0, policies, k0, obs[0], mask[0]),
                                jax.lax.switch(p1, policies, k1, obs[1], mask[1])])
            obs, state, reward, terminated, truncated, info = env.step(k_step, state, action, params)
            assert terminated.shape == truncated.shape == reward.shape == (2,)
            return (obs, state, total + reward, illegal | info["illegal"]), None

        carry = (obs, state, jnp.zeros(2), jnp.zeros(2, bool))
        (_, state, total, illegal), _ = jax.lax.scan(body, carry, jax.random.split(key, steps))
        return state, total, illegal

    run = jax.jit(jax.vmap(game, in_axes=(0, None, None)))

    def match(seed, name0, name1):
        keys = jax.random.split(jax.random.PRNGKey(seed), GAMES)
        return jax.device_get(run(keys, names.index(name0), names.index(name1)))

    return match


def score(state, total):
    """Fractions of games won by seat 0, won by seat 1, drawn; checks rewards agree with the winner."""
    winner = np.asarray(state.winner)
    np.testing.assert_array_equal(total[:, 0], np.select([winner == 0, winner == 1], [1.0, -1.0], 0.0))
    np.testing.assert_array_equal(total.sum(1), 0.0)
    return (winner == 0).mean(), (winner == 1).mean(), (winner == -1).mean()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("env_id", [TTT, C4])
def test_random_playouts_stay_legal_and_end_by_the_board_size(env_id):
    state, total, illegal = arena(env_id)(0, "random", "random")
    assert not illegal.any()
    assert np.all(state.done) and not np.any(state.illegal)
    shortest = 7 if env_id == C4 else 5  # the first player's fourth / third stone
    assert np.all(state.moves <= MAX_MOVES[env_id]) and np.all(state.moves >= shortest)
    full = state.moves == MAX_MOVES[env_id]
    np.testing.assert_array_equal(np.asarray(state.board != 0).sum((1, 2)), state.moves)
    won0, won1, drawn = score(state, total)
    assert won0 > 0.3 and won1 > 0.2 and np.all(full[state.winner == -1])  # a draw needs a full board
    if env_id == TTT:
        assert drawn > 0.02


@pytest.mark.timeout(120)
def test_minimax_never_loses():
    match = arena(TTT)
    won0, won1, _ = score(*match(1, "minimax", "random")[:2])
    assert won1 == 0.0 and won0 > 0.85
    won0, won1, _ = score(*match(2, "random", "minimax")[:2])
    assert won0 == 0.0 and won1 > 0.6
    state, total, _ = match(3, "minimax", "minimax")
    assert score(state, total)[2] == 1.0
    assert len(np.unique(np.asarray(state.board).reshape(GAMES, -1), axis=0)) > 8  # random tie-breaking varies games
    won0, won1, _ = score(*match(4, "minimax", "heuristic")[:2])
    assert won1 == 0.0


@pytest.mark.timeout(120)
def test_heuristic_beats_random():
    match = arena(C4)
    won0, _, _ = score(*match(5, "heuristic", "random")[:2])
    _, won1, _ = score(*match(6, "random", "heuristic")[:2])
    assert won0 > 0.8 and won1 > 0.8
    won0, won1, _ = score(*arena(TTT)(7, "heuristic", "random")[:2])
    assert won0 > 0.75 and won1 < 0.05


@pytest.mark.timeout(60)
def test_board_heuristic_wins_first_then_blocks():
    env = make(TTT)
    heuristic = env.scripted_opponents()["heuristic"]
    key = jax.random.PRNGKey(0)
    # X (to move) has 0, 1 and O has 3, 4: X completes the top row rather than block
    obs, state, *_ = play(TTT, [0, 3, 1, 4])[-1]
    mask = env.action_mask(state)
    assert [int(heuristic(k, obs[0], mask[0])) for k in jax.random.split(key, 5)] == [2] * 5
    # O (to move) must block X's top row at 2
    obs, state, *_ = play(TTT, [0, 3, 1])[-1]
    mask = env.action_mask(state)
    assert [int(heuristic(k, obs[1], mask[1])) for k in jax.random.split(key, 5)] == [2] * 5
    assert int(heuristic(key, obs[0], mask[0])) == 0  # not X's turn
    # minimax: after X in a corner, O must take the centre
    assert np.flatnonzero(minimax_table()[2]).tolist() == [4]
    obs, state, *_ = play(TTT, [0])[-1]
    minimax = env.scripted_opponents()["minimax"]
    assert int(minimax(key, obs[1], env.action_mask(state)[1])) == 4


# --- sumo ------------------------------------------------------------------------------


def sumo_state(pos, vel=((0, 0), (0, 0)), time=0):
    return SumoState(jnp.asarray(pos, jnp.float32), jnp.asarray(vel, jnp.float32), jnp.int32(time),
                     jnp.bool_(False), jnp.bool_(False), jnp.int32(-1))


def sumo_run(state, action, params, steps):
    """Steps with a fixed action pair until the game ends; returns every output."""
    outs = []
    for _ in range(steps):
        outs.append(step(SUMO, state, action, params))
        state = outs[-1][1]
        if outs[-1][3].any() or outs[-1][4].any():
            break
    return outs


@pytest.mark.timeout(60)
def test_sumo_pushing_out_wins():
    params = SumoParams()
    outs = sumo_run(sumo_state([[0.4, 0.0], [0.7, 0.0]]), [3, 0], params, 100)  # player_0 pushes east
    *running, (obs, state, reward, terminated, truncated, info) = outs
    assert all(not o[3].any() and not o[2].any() for o in running)
    assert np.linalg.norm(state.pos[1]) > 1.0 > np.linalg.norm(state.pos[0])
    np.testing.assert_array_equal(reward, [1.0, -1.0])
    np.testing.assert_array_equal(terminated, [True, True])
    np.testing.assert_array_equal(truncated, [False, False])
    assert int(info["winner"]) == 0 and not make(SUMO).active(state).any()
    assert not make(SUMO).action_mask(state).any()
    assert "player_0 wins" in make(SUMO).render(state)
    # walking out alone loses
    *_, out = sumo_run(sumo_state([[-0.2, 0.0], [0.8, 0.0]]), [0, 3], params, 100)
    np.testing.assert_array_equal(out[2], [1.0, -1.0])
    # both out in the same step: a draw
    out = step(SUMO, sumo_state([[-0.99, 0.0], [0.99, 0.0]], [[-1.0, 0.0], [1.0, 0.0]]), [7, 3], params)
    np.testing.assert_array_equal(out[2], [0.0, 0.0])
    np.testing.assert_array_equal(out[3], [True, True])
    assert int(out[5]["winner"]) == -1


@pytest.mark.timeout(60)
def test_sumo_time_limit_truncates_as_a_draw():
    env = make(SUMO)
    params = SumoParams(max_steps=5)
    obs, state = env.reset(jax.random.PRNGKey(3), params)
    assert float(obs[0, 10]) == 1.0 and env.active(state).all() and env.action_mask(state).all()
    outs = sumo_run(state, [0, 0], params, 10)
    assert len(outs) == 5
    obs, state, reward, terminated, truncated, info = outs[-1]
    np.testing.assert_array_equal(truncated, [True, True])
    np.testing.assert_array_equal(terminated, [False, False])
    np.testing.assert_array_equal(reward, [0.0, 0.0])
    assert int(info["winner"]) == -1 and float(obs[0, 10]) == 0.0
    assert "time limit" in env.render(state, params)
    again = step(SUMO, state, [3, 3], params)  # stepping past the end keeps it
    np.testing.assert_array_equal(again[4], [True, True])
    np.testing.assert_array_equal(again[1].pos, state.pos)


@pytest.mark.timeout(60)
def test_sumo_seats_are_symmetric():
    env = make(SUMO)
    params = env.default_params
    rng = np.random.default_rng(0)
    pos, vel = rng.uniform(-0.6, 0.6, (2, 2)), rng.uniform(-0.5, 0.5, (2, 2))
    state, swapped = sumo_state(pos, vel, 7), sumo_state(pos[::-1], vel[::-1], 7)
    a = step(SUMO, state, [2, 6], params)
    b = step(SUMO, swapped, [6, 2], params)
    np.testing.assert_allclose(a[0], b[0][::-1], atol=1e-6)  # each seat sees the mirror of the other
    np.testing.assert_allclose(a[1].pos, b[1].pos[::-1], atol=1e-6)
    np.testing.assert_array_equal(a[2], b[2][::-1])
    obs, state = env.reset(jax.random.PRNGKey(5), params)
    np.testing.assert_allclose(state.pos[0], -state.pos[1])  # fair starts: opposite sides
    np.testing.assert_allclose(obs[0, :8], np.concatenate([obs[1, 4:8], obs[1, :4]]))
    np.testing.assert_allclose(obs[0, 8], obs[1, 8], rtol=1e-6)
    text = env.render(state)
    picture = "".join(text.splitlines()[:11])
    assert picture.count("1") == picture.count("2") == 1 and "." in picture
    assert "1 player_0: pos" in text and text.endswith("step 0/200: running")


@pytest.mark.timeout(60)
def test_sumo_heuristic_directions():
    heuristic = make(SUMO).scripted_opponents()["heuristic"]
    key, mask = jax.random.PRNGKey(0), jnp.ones(9, bool)
    obs = np.zeros(11, np.float32)
    obs[0:2], obs[4:6], obs[8] = [0.0, 0.0], [0.5, 0.5], 1.0
    assert int(heuristic(key, obs, mask)) == 2  # NE toward the opponent
    obs[0:2], obs[4:6], obs[8] = [0.9, 0.0], [0.95, 0.1], 0.1
    assert int(heuristic(key, obs, mask)) == 7  # near the edge: west, back to the centre
    assert int(heuristic(key, obs, jnp.zeros(9, bool))) == 0


@pytest.mark.timeout(120)
def test_sumo_heuristic_beats_random():
    match = arena(SUMO)
    state, total, illegal = match(8, "heuristic", "random")
    won0, won1, _ = score(state, total)
    assert not illegal.any() and np.all(state.terminated | state.truncated)
    assert won0 > 0.75 and won1 < 0.2


# --- batched under the training stack ------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("env_id", [TTT, C4, SUMO])
def test_vmap_jit_under_the_vec_env_stack(env_id):
    env = make(env_id)
    params = env.default_params
    vec = make_vec_env(env, 8)
    n = env.action_space(params).n

    def split(obs, state):
        """(obs array, mask): the stack may hand multi-agent obs as an AgentView dict."""
        if isinstance(obs, dict):
            return obs["obs"], obs["action_mask"]
        return obs, jax.vmap(env.action_mask)(state.env_state)

    @jax.jit
    def run(key):
        obs, state = vec.reset(key, params)

        def body(carry, key):
            obs, state = carry
            _, mask = split(obs, state)
            logits = jnp.where(mask, 0.0, -jnp.inf)
            action = jnp.where(mask.any(-1), jax.random.categorical(key, logits), 0).astype(jnp.int32)
            obs, state, reward, terminated, truncated, info = vec.step(key, state, action, params)
            return (obs, state), (split(obs, state)[0], reward, terminated, truncated, info)

        return split(obs, state)[0], jax.lax.scan(body, (obs, state), jax.random.split(key, 12))[1]

    obs, (obs_t, reward, terminated, truncated, info) = jax.device_get(run(jax.random.PRNGKey(0)))
    shape = env.observation_space(params).shape
    assert obs.shape == (8, 2) + shape and obs_t.shape == (12, 8, 2) + shape
    assert reward.shape == terminated.shape == truncated.shape == (12, 8, 2)
    np.testing.assert_array_equal(reward.sum(-1), 0.0)  # zero-sum
    np.testing.assert_array_equal(terminated[..., 0], terminated[..., 1])
    assert not info["illegal"].any() and info["action_mask"].shape == (12, 8, 2, n)
    if env_id == TTT:  # 12 steps cross at least one game end: auto-reset starts a new one
        assert info["episode_done"].any() and (info["episode_length"][info["episode_done"]] <= 9).all()
