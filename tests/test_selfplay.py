"""Self-play on two-player games: leagues, opponents, matches and ratings; SMAX both teams. Mechanics in
seconds, learning marked slow. (Multi-agent PPO itself: test_multiagent.py.)"""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import api, envs
from jaxrl.algos import ippo
from jaxrl.config import hparams
from jaxrl.errors import JaxrlError
from jaxrl.league import arena, ratings, selfplay

pytestmark = pytest.mark.timeout(300)


def jaxrl(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "jaxrl.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=280)


# --- the pieces -----------------------------------------------------------------------------------------

def test_league_snapshots_wrap_and_pfsp_prefers_hard_opponents():
    params = {"w": jnp.zeros(3)}
    league = selfplay.init_league(params, pool_size=4, members=1)
    for update in range(1, 6):  # slot 0 holds the initial policy; 5 more wrap the ring of 4
        league = selfplay.snapshot(league, {"w": jnp.full(3, float(update))}, update)
    np.testing.assert_array_equal(league.pool_update, [4, 5, 2, 3])
    np.testing.assert_array_equal(league.pool["w"][:, 0], [4, 5, 2, 3])
    # The learner beats slots 0-1 in both sides, slot 2 only in side 0, and loses to slot 3: pfsp
    # draws slots 2 and 3 (its weaker side decides).
    score = jnp.asarray([[50.0, 50], [50, 50], [50, 0], [0, 0]])
    league = selfplay.record(league, jnp.arange(4), score, jnp.full((4, 2), 50.0))
    _, index = selfplay.pick_opponents(league, None, jax.random.PRNGKey(0), "pfsp", 1, 1000, 2.0)
    counts = np.bincount(np.asarray(index), minlength=4)
    assert counts[2] > 400 and counts[3] > 400 and counts[:2].sum() < 20, counts
    _, index = selfplay.pick_opponents(league, None, jax.random.PRNGKey(0), "pool", 1, 1000, 2.0)
    assert np.bincount(np.asarray(index), minlength=4).min() > 200  # uniform
    members = {"w": jnp.arange(5.0)[:, None]}
    opp, index = selfplay.pick_opponents(league, members, jax.random.PRNGKey(1), "population", 5, 50, 2.0)
    own = np.repeat(np.arange(5), 50)
    assert np.all(np.asarray(index) - 4 != own) and np.all(np.asarray(opp["w"][:, 0]) == np.asarray(index) - 4)
    # With 2 scripted players, population draws them too: index 4 + 5 + k, uniformly beside the 4 other members.
    league = selfplay.init_league(params, pool_size=4, members=5, scripted=2)
    opp, index = selfplay.pick_opponents(league, members, jax.random.PRNGKey(1), "population", 5, 600, 2.0)
    index, own = np.asarray(index), np.repeat(np.arange(5), 600)
    counts = np.bincount(index, minlength=11)
    assert np.all(index - 4 != own) and counts[:4].sum() == 0 and np.all(counts[4:] > 0.1 * 3000 / 6)
    assert abs(counts[9:].sum() / 3000 - 2 / 6) < 0.04
    is_member = index < 9
    assert np.all(np.asarray(opp["w"][:, 0])[is_member] == index[is_member] - 4)


def test_scripted_share_reserves_that_share_of_the_draws():
    league = selfplay.init_league({"w": jnp.zeros(3)}, pool_size=4, members=1, scripted=2)
    league = selfplay.snapshot(league, {"w": jnp.ones(3)}, 1)  # slots 0-1 filled, 2-3 empty
    # The learner beats the scripted players (rows 5-6) and loses to snapshot 1: by weight alone pfsp
    # would almost never draw the scripted players.
    league = selfplay.record(league, jnp.asarray([0, 1, 5, 6]), jnp.asarray([[20.0, 20], [0, 0], [20, 20], [20, 20]]),
                             jnp.full((4, 2), 20.0))
    _, index = selfplay.pick_opponents(league, None, jax.random.PRNGKey(0), "pfsp", 1, 4000, 2.0)
    assert np.mean(np.asarray(index) >= 5) < 0.02
    for mode in ("pfsp", "pool"):
        _, index = selfplay.pick_opponents(league, None, jax.random.PRNGKey(0), mode, 1, 4000, 2.0, 0.75)
        counts = np.bincount(np.asarray(index), minlength=7)
        assert counts[2:5].sum() == 0, counts  # empty slots and the (absent) member row are never drawn
        assert abs(counts[5:].sum() / 4000 - 0.75) < 0.03, counts
        assert abs(counts[5] - counts[6]) < 0.1 * 3000, counts  # equal scores: equal shares
    league = selfplay.init_league({"w": jnp.zeros(3)}, pool_size=4, members=5, scripted=2)
    members = {"w": jnp.arange(5.0)[:, None]}
    opp, index = selfplay.pick_opponents(league, members, jax.random.PRNGKey(1), "population", 5, 800, 2.0, 0.75)
    index, own = np.asarray(index), np.repeat(np.arange(5), 800)
    assert np.all(index - 4 != own) and abs(np.mean(index >= 9) - 0.75) < 0.03
    assert np.all(np.asarray(opp["w"][:, 0])[index < 9] == index[index < 9] - 4)


def test_pfsp_draws_a_scripted_player_the_learner_cannot_beat():
    """Minimax joins the league; with every snapshot beaten, pfsp sends all env groups to it, and the
    untrained learner then wins no game (against its snapshots it wins about half)."""
    config = api.resolve_config("ippo", None, {"env": "jaxrl:tictactoe", "selfplay": "pfsp", "pool_size": 2,
                                               "scripted_opponents": ["minimax"], "num_envs": 32, "num_steps": 24,
                                               "hidden_sizes": [16], "total_timesteps": 32 * 24 * 2})
    program = ippo.make_program(config)
    state = program.init(jax.random.PRNGKey(0), hparams(config))
    assert state.league.score.shape == (2 + 1 + 1, 2)  # snapshots, the learner's member slot, minimax; x sides
    table = jnp.asarray([[1e3, 1e3], [1e3, 1e3], [0.0, 0.0], [0.0, 0.0]])
    beaten = state.league.replace(score=table, games=table)
    state, metrics = jax.jit(program.update)(state.replace(league=beaten))
    assert metrics["episodes"] >= 32 and metrics["win_rate"] == 0.0
    np.testing.assert_allclose(state.league.games[0], [980, 980])  # decayed, nothing new (slot 1: a new snapshot)
    assert state.league.games[3].min() >= 16  # both sides played minimax


def test_minimax_never_loses_and_elo_orders_players():
    env = envs.make("jaxrl:tictactoe")
    players = arena.scripted_players(env)
    sides = jnp.arange(200) % 2
    out = jax.jit(lambda k: arena.play(env, players["minimax"], players["random"], k, sides))(jax.random.PRNGKey(0))
    assert (np.asarray(out["outcome"]) >= 0).all() and (np.asarray(out["outcome"]) > 0).mean() > 0.8
    # Elo recovers the order and rough gaps of players with known strengths.
    true = np.array([0.0, 200.0, 400.0])
    p = 1 / (1 + 10 ** (-(true[:, None] - true[None, :]) / 400))
    games = np.full((3, 3), 1000.0) - 1000 * np.eye(3)
    r = ratings.elo(p * games, games)
    np.testing.assert_allclose(r, true, atol=15)


def test_external_opponent_is_called_and_its_illegal_moves_are_reported(tmp_path):
    env = envs.make("jaxrl:tictactoe")
    (tmp_path / "mine.py").write_text(
        "import numpy as np\n"
        "calls = []\n"
        "def first_legal(obs, mask):\n"
        "    assert obs.shape == (3, 3, 3) and mask.shape == (9,)\n"
        "    return int(np.argmax(mask))\n"
        "def always_zero(obs, mask):\n"
        "    return 0\n")
    random = arena.scripted_players(env)["random"]
    good = arena.external_player(f"{tmp_path}/mine.py:first_legal", env)
    out = jax.jit(lambda k: arena.play(env, good, random, k, jnp.arange(8) % 2))(jax.random.PRNGKey(0))
    assert not np.asarray(out["illegal_a"]).any() and (np.asarray(out["moves"]) >= 5).all()
    bad = arena.external_player(f"{tmp_path}/mine.py:always_zero", env)
    out = jax.jit(lambda k: arena.play(env, bad, random, k, jnp.ones(8, jnp.int32)))(jax.random.PRNGKey(0))
    # Moving second, cell 0 is sometimes taken: that move is reported and loses, never executed.
    illegal = np.asarray(out["illegal_a"])
    assert illegal.any() and (np.asarray(out["outcome"])[illegal] == -1).all()
    with pytest.raises(JaxrlError, match="has no function 'nope'"):
        arena.external_player(f"{tmp_path}/mine.py:nope", env)


# --- whole runs -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def selfplay_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ttt"
    result = jaxrl("selfplay", "--env", "jaxrl:tictactoe", "--mode", "pfsp", "--total-timesteps", "40960",
                   "--set", "pool_size=4", "--out", str(out), "--no-progress", "--eval-episodes", "100")
    assert result.returncode == 0, result.stderr
    return out, result


def test_selfplay_run_writes_ratings_plots_and_game_results(selfplay_run):
    out, result = selfplay_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algo"] == "ippo" and summary["eval"]["games_per_side"] == 100
    assert set(summary["eval"]["vs"]) == {"random", "heuristic", "minimax"}
    for side in ("side_0", "side_1"):
        r = summary["eval"]["vs"]["minimax"][side]
        assert r["wins"] + r["draws"] + r["losses"] == 100 and r["illegal_moves"] == 0
    league = json.loads((out / "league.json").read_text())
    assert league["players"][:4] == [f"step {s:,}" for s in league["env_steps"]] and len(league["env_steps"]) == 4
    assert league["players"][4:] == ["random", "heuristic", "minimax"]
    score, games = np.array(league["score"]), np.array(league["games"])
    np.testing.assert_allclose(score + score.T, games)  # every game's point is shared out
    assert league["elo"][league["players"].index("random")] == 0.0
    last = summary["league"]["last_snapshot_score"]  # direct games, beside the Elo fit
    for name in ("random", "heuristic", "minimax"):
        column = league["players"].index(name)
        assert last[name] == pytest.approx(score[3, column] / games[3, column], abs=1e-3)
    for name in ("ratings.png", "winrate.png", "curves.png"):
        assert (out / name).stat().st_size > 10_000
    header = (out / "metrics.csv").read_text().splitlines()[0]
    assert "win_rate" in header and "draw_rate" in header
    assert "Elo (random = 0)" in result.stdout and "minimax" in result.stdout


def test_eval_plays_a_chosen_opponent_and_shows_a_game(selfplay_run, tmp_path):
    out, _ = selfplay_run
    (tmp_path / "engine.py").write_text("import numpy as np\ndef play(obs, mask):\n    return int(np.argmax(mask))\n")
    result = jaxrl("eval", str(out), "--opponent", f"{tmp_path}/engine.py:play", "--episodes", "100", "--show")
    assert result.returncode == 0, result.stderr
    assert "engine.py:play" in result.stdout and "100 games per seat" in result.stdout
    assert "move 1: player (side 0) plays" in result.stdout and "move 1: opponent (side 0) plays" in result.stdout
    assert result.stdout.count("result: ") == 2
    bad = jaxrl("eval", str(out), "--opponent", "stockfish")
    assert bad.returncode == 2 and "unknown opponent 'stockfish'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


BROKEN_OPPONENTS = {  # function name -> (body, what the error says after "opponent .../engine.py:NAME")
    "one_arg": ("def one_arg(obs):\n    return 0\n", "raised TypeError: one_arg() takes 1 positional argument but "
                "2 were given (it is called as function(observation, legal_mask))"),
    "fails": ("def fails(obs, mask):\n    raise ValueError('no move')\n", "raised ValueError: no move"),
    "nothing": ("def nothing(obs, mask):\n    pass\n", "returned None; expected an action index (an int) in 0..8"),
    "text": ("def text(obs, mask):\n    return '4'\n", "returned '4'; expected an action index"),
    # Fine on the first position (tried before compiling), fails inside the compiled games.
    "later": ("def later(obs, mask):\n    if mask.sum() < 8:\n        raise RuntimeError('lost\\ntrack')\n"
              "    return int(mask.argmax())\n", "raised RuntimeError: lost track"),
}


@pytest.mark.parametrize("name", BROKEN_OPPONENTS)
def test_eval_against_a_broken_opponent_function_gives_one_line(selfplay_run, name, tmp_path, capsys):
    from jaxrl import cli

    body, message = BROKEN_OPPONENTS[name]
    (tmp_path / "engine.py").write_text(body)
    code = cli.main(["eval", str(selfplay_run[0]), "--opponent", f"{tmp_path}/engine.py:{name}"])
    err = capsys.readouterr().err
    assert code == 2 and f"engine.py:{name} {message}" in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_population_selfplay_trains_members_apart():
    config = api.resolve_config("ippo", None, {"env": "jaxrl:connect4", "selfplay": "population",
                                               "population_size": 3, "num_envs": 24, "num_steps": 8,
                                               "opponent_groups": 2, "hidden_sizes": [32],
                                               "total_timesteps": 24 * 8 * 4})
    result = api.train(config, record=False, progress=False, eval_episodes=0)
    params = result.state.params["params"]
    kernel = jax.tree.leaves(params)[0]
    assert kernel.shape[:2] == (1, 3)  # seeds x members
    assert not np.allclose(kernel[0, 0], kernel[0, 1])
    assert np.isfinite(result.metrics["policy_loss"]).all() and np.nansum(result.metrics["episodes"]) > 0


def test_smax_both_teams_env_is_zero_sum():
    env = envs.make("jaxmarl:SMAX/3m")
    assert env.sides == (0, 0, 0, 1, 1, 1) and env.zero_sum
    venv = envs.make_vec_env(env, 8)
    view, state = venv.reset(jax.random.PRNGKey(0), env.default_params)

    def step(carry, key):
        state, view = carry
        act_key, step_key = jax.random.split(key)
        action = jax.random.categorical(act_key, jnp.where(view["action_mask"], 0.0, -1e9))
        view, state, reward, *_ = venv.step(step_key, state, action, env.default_params)
        return (state, view), reward

    rewards = jax.jit(lambda: jax.lax.scan(step, (state, view), jax.random.split(jax.random.PRNGKey(1), 150))[1])()
    team = np.asarray(rewards).reshape(150, 8, 2, 3)
    assert np.abs(team).sum() > 0 and np.allclose(team[..., 0, :], -team[..., 1, :])  # zero-sum, per team
    assert np.allclose(team, team[..., :1])  # every agent gets its team's reward


@pytest.mark.slow  # SMAX compiles for minutes on 2 cores: training and its evaluations run with -m slow
def test_smax_selfplay_rates_against_the_heuristic_enemy(tmp_path):
    config = api.resolve_config("ippo", None, {"env": "jaxmarl:SMAX/3m", "selfplay": "latest", "num_envs": 8,
                                               "num_steps": 16, "hidden_sizes": [32], "total_timesteps": 8 * 16})
    result = api.train(config, out=str(tmp_path / "smax"), progress=False, eval_episodes=4)
    heuristic = result.summary["eval"]["vs"]["heuristic"]
    assert list(heuristic) == ["side_0"] and heuristic["side_0"]["games"] == 4  # eval_episodes games per seat
    assert sum(heuristic["side_0"][k] for k in ("wins", "draws", "losses")) == 4
    # `jaxrl eval` plays the built-in enemy too, by default or by name; it cannot print its games
    assert set(api.evaluate(result.run_dir, episodes=1)["vs"]) == {"random", "heuristic"}
    assert list(api.evaluate(result.run_dir, episodes=1, opponent="heuristic")["vs"]) == ["heuristic"]
    with pytest.raises(JaxrlError, match="--show: heuristic is built into another env"):
        api.evaluate(result.run_dir, opponent="heuristic", show=True)


# --- learning -------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(900)
def test_tictactoe_selfplay_never_loses_to_minimax():
    config = api.resolve_config("ippo", None, {"env": "jaxrl:tictactoe"})  # the preset: 5e6 steps of mirror play
    result = api.train(config, record=False, progress=False, eval_episodes=1000)
    vs_minimax = result.summary["eval"]["vs"]["minimax"]
    for side in ("side_0", "side_1"):
        assert vs_minimax[side]["games"] == 1000 and vs_minimax[side]["losses"] == 0, vs_minimax


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_connect4_preset_beats_random_and_the_heuristic_in_each_seat():
    config = api.resolve_config("ippo", None, {"env": "jaxrl:connect4"})  # the preset: 2e7 steps, ~13 min
    result = api.train(config, record=False, progress=False, eval_episodes=1000)
    vs = result.summary["eval"]["vs"]
    for side in ("side_0", "side_1"):
        assert vs["random"][side]["wins"] >= 990 and vs["heuristic"][side]["wins"] >= 900, vs
