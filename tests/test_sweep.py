"""Sweeps: spec validation, per-run hyperparameters inside one program, failure isolation, records."""

import csv
import dataclasses
import json
import subprocess
import sys
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from jaxrl import api, loop
from jaxrl.algos import ppo
from jaxrl.config import ConfigError, hparams
from jaxrl.errors import JaxrlError
from jaxrl.stats import bootstrap_ci
from jaxrl.sweep import plan as sweep_plan
from jaxrl.sweep import run as sweep_run
from jaxrl.sweep import spec as sweep_spec

TINY = {"total_timesteps": 4 * 512, "updates_per_chunk": 2}  # 4 updates of 8 envs x 64 steps


def spec(**changes):
    data = {"algo": "ppo", "env": "gymnax:CartPole-v1", "base": dict(TINY), "num_points": 4, "seeds": 2,
            "space": {"lr": {"dist": "log_uniform", "low": 1e-4, "high": 1e-2}}}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}  # None removes a key


@pytest.mark.parametrize("changes, message", [
    ({"space": {"lrr": [1e-3]}}, "unknown config key 'lrr' in sweep spec space; did you mean lr"),
    ({"space": {}}, "space is empty"),
    ({"space": {"lr": []}}, "space.lr is empty"),
    ({"space": {"lr": {"dist": "log_uniform", "low": 0.0, "high": 1e-2}}}, "log_uniform needs low > 0"),
    ({"space": {"lr": {"dist": "uniform", "low": 1e-2, "high": 1e-3}}}, "low=0.01 must be < high=0.001"),
    ({"space": {"lr": {"dist": "normal", "low": 1, "high": 2}}}, "dist='normal' must be one of"),
    ({"space": {"activation": {"dist": "uniform", "low": 0, "high": 1}}}, "only numbers take a uniform range"),
    ({"method": "grid", "num_points": None}, "a grid needs lists of values; lr is a range"),
    ({"num_points": None, "budget": 5000}, "budget=5000 env steps does not divide into points of "
                                            "seeds\\*total_timesteps=2\\*2048=4096 steps"),
    ({"space": {"seed": [1, 2]}}, "seed is set by the sweep"),
    ({"seeds": 0}, "seeds=0 must be an integer >= 1"),
    ({"frobnicate": 1}, "unknown key\\(s\\) 'frobnicate'"),
])
def test_bad_specs_fail_with_one_clear_error(changes, message):
    with pytest.raises(ConfigError, match=message):
        sweep_spec.parse_spec(spec(**changes))


def test_a_static_field_with_a_distribution_asks_for_allow_many_compiles():
    s = sweep_spec.parse_spec(spec(num_points=40, base={"total_timesteps": 10**6},
                              space={"num_envs": {"dist": "uniform", "low": 1, "high": 64}}))
    with pytest.raises(ConfigError, match=r"this sweep needs \d\d compilations \(static fields vary: num_envs\)"
                                          r".*--allow-many-compiles"):
        sweep_run.run_sweep(s, record=False, progress=False)


def test_budget_sets_the_number_of_points_and_a_point_config_is_validated():
    s = sweep_spec.parse_spec(spec(num_points=None, budget=3 * 2 * 2048))
    assert s.num_points == 3
    bad = sweep_spec.parse_spec(spec(space={"gamma": {"dist": "uniform", "low": 0.5, "high": 1.5}}))
    with pytest.raises(ConfigError, match=r"sweep point \d \(gamma=1\.\d+\): gamma=.* must be <= 1"):
        [sweep_spec.point_config(bad, i, p) for i, p in enumerate(sweep_spec.sample_points(bad))]


def test_sampling_grid_and_random():
    grid = sweep_spec.parse_spec(spec(method="grid", num_points=None,
                                 space={"lr": [1e-3, 1e-2], "num_envs": [4, 8, 16]}))
    points = sweep_spec.sample_points(grid)
    assert len(points) == 6 and {(p["lr"], p["num_envs"]) for p in points} == {
        (a, b) for a in (1e-3, 1e-2) for b in (4, 8, 16)}
    configs = [sweep_spec.point_config(grid, i, p) for i, p in enumerate(points)]
    assert [len(g) for g in sweep_plan.group_points(configs)] == [2, 2, 2]  # num_envs is static, lr is not
    rand = sweep_spec.parse_spec(spec(num_points=2000, space={
        "lr": {"dist": "log_uniform", "low": 1e-5, "high": 1e-1},
        "num_steps": {"dist": "uniform", "low": 16, "high": 64}, "clip_eps": [0.1, 0.2]}))
    points = sweep_spec.sample_points(rand)
    lr = np.log10([p["lr"] for p in points])
    assert lr.min() >= -5 and lr.max() <= -1 and abs(np.mean(lr < -3) - 0.5) < 0.05  # uniform in log space
    assert all(isinstance(p["num_steps"], int) for p in points)
    assert sweep_spec.sample_points(rand) == points  # seeded


def test_bootstrap_ci_brackets_the_mean():
    rng = np.random.default_rng(0)
    values = rng.normal(10.0, 2.0, size=30)
    low, high = bootstrap_ci(values)
    assert low < values.mean() < high and high - low < 2.5
    assert bootstrap_ci([3.0]) == (3.0, 3.0)
    assert bootstrap_ci([np.nan, 4.0]) == (4.0, 4.0)


def run_lanes(config, lrs, compiled=None):
    """loop.run of `config` with one lane per learning rate, all from PRNGKey(config.seed)."""
    program = ppo.make_program(config)
    keys = jax.vmap(jax.random.PRNGKey)(jnp.full(len(lrs), config.seed))
    hp = {k: np.full(len(lrs), v, np.float32) for k, v in hparams(config).items()}
    hp["lr"] = np.asarray(lrs, np.float32)
    compiled = compiled or loop.compile_program(program, keys, hp)
    init_params = compiled.init(keys, hp).params
    state, metrics, diverged_at, _ = loop.run(program, keys, hp, compiled=compiled)
    return compiled, init_params, state, metrics, diverged_at


def test_a_sweep_lane_is_the_single_run_and_a_diverging_lane_freezes_alone():
    config = ppo.Config(**TINY, lr=3e-3)
    _, init1, _, single, div1 = run_lanes(config, [3e-3])
    compiled, init3, state3, lanes, div3 = run_lanes(config, [1e-3, 1e30, 3e-3])
    # Same key derivation and initial parameters (bitwise) as a single run.
    for a, b in zip(jax.tree.leaves(init1), jax.tree.leaves(init3)):
        np.testing.assert_array_equal(np.asarray(a)[0], np.asarray(b)[2])
    for name in ("policy_loss", "value_loss", "entropy", "approx_kl"):
        np.testing.assert_allclose(lanes[name][2, 0], single[name][0, 0], rtol=1e-5, atol=1e-7)
    # lr=1e30 blows the parameters up at the first update: that lane freezes, the others finish.
    assert div1.tolist() == [-1] and div3.tolist() == [-1, 1, -1]
    assert np.all(np.isnan(lanes["policy_loss"][1])) and np.all(np.isfinite(lanes["policy_loss"][[0, 2]]))
    assert all(np.all(np.isfinite(np.asarray(x)[1])) for x in jax.tree.leaves(state3.params))
    # The healthy lanes are what they would have been without the diverging one.
    *_, healthy, _ = run_lanes(config, [1e-3, 1e-3, 3e-3], compiled)
    for name in lanes:
        np.testing.assert_array_equal(lanes[name][[0, 2]], healthy[name][[0, 2]])


@pytest.mark.parametrize("blocked", [False, True])
def test_runs_whose_keys_repeat_draw_each_key_once_with_the_same_results(blocked, monkeypatch):
    key = [jax.random.PRNGKey(s) for s in range(3)]
    pattern = lambda *ks: loop.key_pattern(SimpleNamespace(key=0), np.stack(ks), loop.SINGLE)
    k0, k1, k2 = key
    assert [pattern(k0, k0, k0), pattern(k0, k1, k0, k1), pattern(k0, k0, k1, k1), pattern(k0, k1, k2),
            pattern(k0, k1, k1, k2)] == [(1, False), (2, False), (2, True), None, None]
    # 4 runs: 2 learning rates x 2 seeds, point-major as a sweep lays them out (keys k0, k1, k0, k1), or
    # seed-major as a meta-learning population on shared seeds (k0, k0, k1, k1).
    config = ppo.Config(**TINY)
    program = ppo.make_program(config)
    keys = jnp.stack([k0, k0, k1, k1] if blocked else [k0, k1] * 2)
    hp = {k: np.full(4, v, np.float32) for k, v in hparams(config).items()}
    hp["lr"] = np.asarray([1e-3, 1e-2] * 2 if blocked else [1e-3, 1e-3, 1e-2, 1e-2], np.float32)
    compiled = loop.compile_program(program, keys, hp)
    assert compiled.key_pattern == (2, blocked)
    shared_state, shared, _, _ = loop.run(program, keys, hp, compiled=compiled)
    with monkeypatch.context() as m:
        m.setattr(loop, "key_pattern", lambda *args: None)
        state, per_run, _, _ = loop.run(program, keys, hp)
    for name in per_run:
        np.testing.assert_array_equal(shared[name], per_run[name])
    for a, b in zip(jax.tree.leaves(shared_state), jax.tree.leaves(state)):
        np.testing.assert_array_equal(a, b)
    if blocked:
        return
    # Runs whose keys do not follow the compiled pattern are compiled again, one key per run.
    state, _, _, _ = loop.run(program, jnp.stack(key + key[:1]), hp, compiled=compiled)
    final_keys = [tuple(k) for k in np.asarray(state.key)]
    assert final_keys[0] == final_keys[3] and len(set(final_keys)) == 3  # k0, k1, k2, k0 moved on
    # A program whose key comes to depend on the run keeps one key per run.
    def update(state):
        state, metrics = program.update(state)
        return state.replace(key=jax.random.fold_in(state.key, (state.hparams["lr"] * 1e4).astype(jnp.int32))), metrics

    state, metrics, _, _ = loop.run(dataclasses.replace(program, update=update), keys, hp)
    assert len({tuple(k) for k in np.asarray(state.key)}) == 4 and np.all(np.isfinite(metrics["policy_loss"]))


def jaxrl(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "jaxrl.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_cli_sweep_writes_the_record_and_best_yaml_retrains_to_the_same_return(tmp_path):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump({
        "algo": "ppo", "env": "gymnax:CartPole-v1", "method": "grid", "seeds": 2,
        "base": {"total_timesteps": 8 * 512},
        "space": {"lr": [3e-3, 1e30, 1e-3]}}))
    out = tmp_path / "sweep"
    result = jaxrl("sweep", str(spec_file), "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "1 compilation(s)" in result.stdout and "2 diverged" in result.stdout
    for name in ("spec.yaml", "points.yaml", "metadata.json", "runs.csv", "curves.npz", "ranking.csv", "best.yaml",
                 "summary.json", "hparams.png", "top_curves.png"):
        assert (out / name).is_file(), name
    runs = list(csv.DictReader(open(out / "runs.csv")))
    assert [(r["point"], r["seed"]) for r in runs] == [(str(p), str(s)) for p in range(3) for s in range(2)]
    assert [r["status"] for r in runs] == ["finished", "finished", "diverged", "diverged", "finished", "finished"]
    ranking = list(csv.DictReader(open(out / "ranking.csv")))
    assert ranking[-1]["point"] == "1" and ranking[-1]["diverged"] == "2"  # the diverging point is last
    curves = np.load(out / "curves.npz")
    assert curves["group0_returns"].shape == (6, 8)
    assert json.loads((out / "metadata.json").read_text())["status"] == "finished"
    # best.yaml is a config `jaxrl train --config` takes; retrained, it gives the sweep's returns.
    best_point = int(ranking[0]["point"])
    config = api.resolve_config("ppo", str(out / "best.yaml"))
    assert config.lr == pytest.approx([3e-3, 1e30, 1e-3][best_point]) and config.num_seeds == 2
    trained = api.train(config, record=False, progress=False, eval_episodes=0)
    sweep_finals = [float(r["final_return"]) for r in runs if r["point"] == str(best_point)]
    np.testing.assert_allclose(trained.summary["final_return_per_seed"], sweep_finals, rtol=0.05)


def test_cli_sweep_bad_spec_is_one_line_and_writes_nothing(tmp_path):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec(space={"lr": {"dist": "log_uniform", "low": -1, "high": 1}})))
    result = jaxrl("sweep", str(spec_file), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"jaxrl sweep: error: sweep spec {str(spec_file)!r}: space.lr: log_uniform needs low > 0, got low=-1"]
    assert not (tmp_path / "out").exists()


def test_interrupting_a_sweep_keeps_the_finished_groups_and_resume_runs_only_the_rest(tmp_path, monkeypatch):
    s = sweep_spec.parse_spec(spec(method="grid", num_points=None, seeds=1, space={"num_envs": [8, 4]}))
    real_compile, calls = loop.compile_program, []

    def compile_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_compile(*args, **kwargs)

    monkeypatch.setattr(loop, "compile_program", compile_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        sweep_run.run_sweep(s, out=str(tmp_path / "sweep"), progress=False)
    runs = list(csv.DictReader(open(tmp_path / "sweep" / "runs.csv")))
    assert [(r["num_envs"], r["status"]) for r in runs] == [("8", "finished")]
    assert np.load(tmp_path / "sweep" / "curves.npz")["group0_returns"].shape == (1, 4)
    assert json.loads((tmp_path / "sweep" / "metadata.json").read_text())["status"] == "interrupted"
    kept = np.load(tmp_path / "sweep" / "curves.npz")["group0_returns"]

    calls.clear()
    monkeypatch.setattr(loop, "compile_program", lambda *a, **k: calls.append(1) or real_compile(*a, **k))
    result = api.resume(tmp_path / "sweep", progress=False)  # `jaxrl resume SWEEP_DIR`
    assert len(calls) == 1 and result.summary["resumed_groups"] == 1  # only the unfinished group ran
    runs = list(csv.DictReader(open(tmp_path / "sweep" / "runs.csv")))
    assert [(r["num_envs"], r["status"]) for r in runs] == [("8", "finished"), ("4", "finished")]
    curves = np.load(tmp_path / "sweep" / "curves.npz")
    np.testing.assert_array_equal(curves["group0_returns"], kept)
    assert curves["group1_returns"].shape == (1, 8) and len(result.ranking) == 2
    meta = json.loads((tmp_path / "sweep" / "metadata.json").read_text())
    assert meta["status"] == "finished" and meta["resumes"][0]["kept_groups"] == [0]
    with pytest.raises(JaxrlError, match="has finished; nothing to resume"):
        api.resume(tmp_path / "sweep", progress=False)
