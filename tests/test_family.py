"""MDP families: the spec parser, training over a family (a new context at every episode start), `jaxrl eval
--family` (files, exactness against the point-MDP evaluation), the ranking statistics and the k-means estimate."""

import json

import jax
import numpy as np
import pytest
import scipy.stats

from jaxrl import envs
from jaxrl.algos import ALGOS, get, resolve_config
from jaxrl.algos.base import make_env
from jaxrl.cli import main
from jaxrl.errors import JaxrlError
from jaxrl.evaluate import play_episodes
from jaxrl.family_eval import kendall_tau, kmeans_contexts, ranking_stability, score_summary
from jaxrl.session import load_run_config

CARTPOLE_FAMILY = "length=uniform(0.25,2.5),masspole=uniform(0.05,0.5)"


@pytest.fixture(scope="module")
def family_run(tmp_path_factory):
    """A tiny PPO run on CartPole trained over a family of pole lengths (config field env_family)."""
    out = tmp_path_factory.mktemp("family") / "run"
    sets = {"num_envs": 4, "num_steps": 64, "num_minibatches": 2, "update_epochs": 1,
            "env_family": "length=uniform(0.25,2.5)"}
    assert main(["train", "--total-timesteps", "1024", *[f"--set={k}={v}" for k, v in sets.items()],
                 "--out", str(out), "--no-progress", "--eval-episodes", "0"]) == 0
    return out


def test_spec_errors_name_the_valid_fields():
    env = envs.make("gymnax:CartPole-v1")
    with pytest.raises(JaxrlError, match="no parameter 'lenght'; valid: max_steps_in_episode, gravity, masscart, "
                                         "masspole, length, force_mag"):
        envs.parse_family("lenght=uniform(0.25,2.5)", env)
    with pytest.raises(JaxrlError, match="total_mass is derived from masscart, masspole; vary those"):
        envs.parse_family("total_mass=uniform(1,2)", env)
    for spec, message in [("length=uniform(2,1)", "low must be < high"), ("length=gauss(0,1)", "unknown distribution"),
                          ("length=uniform(1)", "takes 2 numbers"), ("length=loguniform(0,1)", "low must be > 0"),
                          ("length=uniform(0,1),length=choice(1)", "given twice"), ("length=0.5", "cannot read")]:
        with pytest.raises(JaxrlError, match=message):
            envs.parse_family(spec, env)
    bare = envs.Environment()  # no params, as brax's adapter and the board games
    bare.env_id = "mylab:bare"
    with pytest.raises(JaxrlError, match="mylab:bare has no parameters a family can vary"):
        envs.parse_family("x=uniform(0,1)", bare)
    # A training config's family is checked where its env is built, before anything compiles.
    with pytest.raises(JaxrlError, match="no parameter 'lenght'"):
        make_env(resolve_config("ppo", overrides={"env_family": "lenght=uniform(0.25,2.5)"}))


@pytest.mark.parametrize("algo", list(ALGOS))
def test_every_algorithm_builds_its_training_env_over_the_family(algo):
    # The field exists for every algorithm and its make_program builds the env through make_env (the spec
    # error comes from there, before anything compiles). Multi-agent defaults: an own game, not jaxmarl's import.
    env = "jaxrl:tictactoe" if get(algo).Config.env.startswith("jaxmarl:") else get(algo).Config.env
    config = resolve_config(algo, overrides={"env": env, "env_family": "bogus=uniform(0,1)"})
    with pytest.raises(JaxrlError, match=f"family 'bogus=uniform\\(0,1\\)': {env} has no"):
        get(algo).make_program(config)


def test_family_samples_derive_and_relative_forms():
    env = envs.make("gymnax:CartPole-v1")
    family = envs.parse_family("masspole=loguniform(0.05,0.5),force_mag=uniform(0.5,2)*default,"
                               "max_steps_in_episode=choice(200,300)", env)
    contexts = jax.device_get(family.sample_many(jax.random.PRNGKey(0), 512))
    assert 0.05 <= contexts["masspole"].min() and contexts["masspole"].max() <= 0.5
    assert 5.0 <= contexts["force_mag"].min() and contexts["force_mag"].max() <= 20.0
    assert set(np.unique(contexts["max_steps_in_episode"]).tolist()) == {200, 300}
    params = family.params(env.default_params, {k: v[0] for k, v in contexts.items()})
    assert params.total_mass == pytest.approx(1.0 + float(contexts["masspole"][0]))
    assert params.polemass_length == pytest.approx(0.5 * float(contexts["masspole"][0]))


@pytest.mark.timeout(60)
def test_param_family_draws_a_new_context_at_each_episode_start():
    env = envs.make("gymnax:CartPole-v1")
    venv = envs.make_vec_env(envs.ParamFamily(env, envs.parse_family("length=uniform(0.25,2.5)", env)), 4)

    def step(state, key):
        _, next_state, _, _, _, info = venv.step(key, state, jax.random.randint(key, (4,), 0, 2), env.default_params)
        return next_state, (state.env_state.context["length"], next_state.env_state.context["length"],
                            info["episode_done"])

    @jax.jit
    def play(key):
        _, state = venv.reset(key, env.default_params)
        return jax.lax.scan(step, state, jax.random.split(key, 100))[1]

    before, after, done = jax.device_get(play(jax.random.PRNGKey(0)))
    assert done.sum() >= 8  # random CartPole episodes are short
    np.testing.assert_array_equal(before != after, done)  # new draws exactly at episode starts
    # A multi-agent env's state hooks (legal moves, whose turn) read the wrapped state.
    sumo = envs.make("jaxrl:sumo")
    venv = envs.make_vec_env(envs.ParamFamily(sumo, envs.parse_family("accel=uniform(0.5,2)", sumo)), 2)
    obs, _ = jax.eval_shape(lambda key: venv.reset(key, sumo.default_params), jax.random.PRNGKey(0))
    assert obs["action_mask"].shape == (2, 2, 9) and obs["active"].shape == (2, 2)


@pytest.mark.timeout(120)
def test_a_family_of_the_default_context_reproduces_the_point_evaluation_exactly(family_run, capsys):
    # Common random numbers: every context of a seed plays with the same keys, so contexts with the default
    # parameters reproduce the point-MDP row of the program episode for episode, and another context differs.
    config = load_run_config(family_run)
    from jaxrl.checkpoint import restore_policy

    _, policy = restore_policy(family_run / "checkpoints", None)
    family = envs.parse_family("length=choice(0.5),masspole=choice(0.1)", envs.make(config.env))
    # (four contexts: the shape of the program `jaxrl eval --family` compiles below, three contexts and the point)
    contexts = {"length": np.float32([0.5, 2.0, 0.5, 0.5]), "masspole": np.float32([0.1, 0.1, 0.1, 0.1])}
    (returns, lengths, _), _ = play_episodes(config, policy, 6, 3, family, contexts)
    assert returns.shape == (1, 4, 6) and np.ptp(returns[:, 0]) > 0  # episodes of different lengths
    np.testing.assert_array_equal(returns[:, 0], returns[:, 2])
    np.testing.assert_array_equal(lengths[:, 0], lengths[:, 2])
    assert not np.array_equal(returns[:, 0], returns[:, 1])
    # The same through `jaxrl eval --family` (the point MDP is the batch's last row).
    assert main(["eval", str(family_run), "--family", "length=choice(0.5),masspole=choice(0.1)", "--contexts", "3",
                 "--episodes", "6", "--seed", "3", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["runs"][0]
    f, point = summary["family_scores"], summary["point"]
    assert f["mean"] == f["p10"] == f["p90"] == f["worst_decile_mean"] == point["return_mean"]
    assert f["return_per_seed"] == point["return_per_seed"] and f["std"] == 0
    assert point["return_mean"] == round(float(returns[:, 0].mean()), 4)


@pytest.mark.timeout(120)
def test_cli_family_eval_writes_its_files_and_nothing_else(family_run, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in family_run.rglob("*") if not p.name.startswith("family_")}
    assert main(["eval", str(family_run), str(family_run), "--family", CARTPOLE_FAMILY, "--contexts", "40",
                 "--episodes", "2", "--kmeans", "5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    summary = json.loads((family_run / "family_eval.json").read_text())
    timeless = [{k: v for k, v in r.items() if k != "seconds"} for r in (summary, *result["runs"])]
    assert timeless[0] == timeless[1] == timeless[2]
    f = summary["family_scores"]
    assert f["worst_decile_mean"] <= f["p10"] <= f["p50"] <= f["p90"]
    assert summary["kmeans"]["k"] <= 5 and sum(c["mass"] for c in summary["kmeans"]["centroids"]) == pytest.approx(1)
    # One run twice: equal point scores, so no pair to flip and no Kendall tau.
    assert result["ranking"]["kendall_tau"] is None and result["ranking"]["pairs_tied_on_point_mdp"] == 1
    rows = (family_run / "family_contexts.csv").read_text().splitlines()
    assert rows[0] == "context,length,masspole,return_mean,return_std,length_mean" and len(rows) == 41
    assert (family_run / "family_eval.png").stat().st_size > 10_000
    after = {p.name: p.stat().st_mtime_ns for p in family_run.rglob("*")}
    assert {k: v for k, v in after.items() if not k.startswith("family_")} == before

    assert main(["eval", str(family_run), "--family", "lenght=uniform(0.25,2.5)"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("jaxrl eval: error: family 'lenght=uniform(0.25,2.5)': gymnax:CartPole-v1 has no "
                          "parameter 'lenght'; valid: ") and "\n" not in err
    assert main(["eval", str(family_run), str(family_run)]) == 2
    assert "several runs are compared over a family only" in capsys.readouterr().err


def test_kendall_tau_of_methods_whose_scores_cross():
    # Per-context scores linear in a context parameter x in [0, 1]; the point MDP is x = 0. A is flat at 1,
    # B starts at 0.5 and rises to 2.5: A wins the point MDP, B the family (mean 1.5): the ranking reverses.
    x = np.linspace(0, 1, 200)
    scores = np.stack([np.ones_like(x), 0.5 + 2 * x])
    stability = ranking_stability(scores[:, 0], scores, reps=500)
    assert stability["kendall_tau"] == -1.0
    assert stability["flip_probability"] == 1.0 and stability["pairs"][0]["point_diff"] == 0.5
    # Four methods, point order 4 > 3 > 2 > 1; over the family the last two swap: 5 concordant pairs of 6,
    # tau = (5 - 1) / 6.
    slopes = np.array([0.0, 0.0, 0.0, 3.0])
    scores = np.array([4.0, 3.0, 2.0, 1.0])[:, None] + slopes[:, None] * x  # method 4: mean 2.5, beats method 3
    stability = ranking_stability(scores[:, 0], scores, reps=200)
    assert stability["kendall_tau"] == pytest.approx(2 / 3)
    assert stability["flip_probability"] == 1.0
    assert [p["flip_probability"] for p in stability["pairs"]] == [0, 0, 0, 0, 0, 1]
    # tau-b with ties, as scipy computes it.
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4, 12).astype(float), rng.integers(0, 4, 12).astype(float)
    assert kendall_tau(a, b) == pytest.approx(scipy.stats.kendalltau(a, b).statistic, abs=1e-12)


def test_ranking_flip_probability_reflects_overlap():
    # Two methods whose family means differ by much less than the spread over contexts flip about half the time.
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(2, 256))
    scores[1] = scores[0][rng.permutation(256)]  # same distribution of scores, different contexts
    stability = ranking_stability(np.array([1.0, 0.0]), scores, reps=1000, seed=2)
    assert 0.2 < stability["flip_probability"] < 0.8


def test_score_summary_worst_decile():
    s = score_summary(np.arange(1, 101, dtype=float))
    assert s["mean"] == 50.5 and s["worst_decile_mean"] == 5.5 and s["p50"] == 50.5


def test_kmeans_estimate_is_within_its_second_order_bound_on_a_smooth_family():
    # For a separable f(x) = sum_d g_d(x_d), a cluster's mean of f minus f at its centroid (the cluster mean) has no
    # first-order term, so |error| <= sum_d 1/2 sup|g_d''| E[(x_d - c_d)^2] summed with the cluster masses: the
    # tolerance below is that bound (plus float32 rounding of the centroids), computed from the clustering itself.
    env = envs.make("gymnax:CartPole-v1")
    family = envs.parse_family(CARTPOLE_FAMILY, env)
    contexts = {k: np.asarray(v, np.float64) for k, v in family.sample_many(jax.random.PRNGKey(0), 256).items()}
    g = {"length": (lambda v: np.sin(2 * v), 4.0), "masspole": (lambda v: 3 * v ** 2, 6.0)}  # g and sup|g''|
    f = lambda c: sum(fn(np.asarray(c[k], np.float64)) for k, (fn, _) in g.items())
    full, errors = f(contexts).mean(), []
    for k in (4, 16, 64):
        clusters = kmeans_contexts(family, contexts, k, seed=0)
        estimate = np.dot(clusters["mass"], f(clusters["centroids"]))
        labels = clusters["labels"]
        bound = sum(0.5 * h * np.mean((contexts[d] - clusters["centroids"][d][labels]) ** 2)
                    for d, (_, h) in g.items())
        assert abs(estimate - full) <= bound + 1e-5, (k, estimate, full, bound)
        errors.append(abs(estimate - full))
    assert errors[-1] < 0.01 * abs(full) and errors[-1] < errors[0] / 4  # finer clusters, closer estimates
