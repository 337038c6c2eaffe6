"""Population-based training: the exploit/explore step, the spec, and a short run's records."""

import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from jaxrl import api, checkpoint, pbt
from jaxrl.algos import ppo
from jaxrl.config import ConfigError


@struct.dataclass
class FakeState:
    params: jax.Array
    key: jax.Array
    hparams: dict


def test_exploit_copies_the_top_into_the_bottom_and_perturbs_within_bounds():
    settings = pbt.PBTSettings(population=4, ready=1, fraction=0.25, perturb=(0.5, 4.0))
    bounds = pbt.field_bounds(ppo.Config, ["lr", "gamma"])
    program = ppo.make_program(ppo.Config(total_timesteps=512))  # where the state keeps its hyperparameters
    step = pbt.make_exploit_explore(settings, 2, ["lr", "gamma"], bounds, program)
    n = 8
    state = FakeState(params=jnp.arange(n, dtype=jnp.float32)[:, None] * jnp.ones((n, 3)),
                      key=jnp.stack([jnp.array([i, i], jnp.uint32) for i in range(n)]),
                      hparams={"lr": jnp.full(n, 1e-3), "gamma": jnp.full(n, 0.9), "ent_coef": jnp.arange(n) * 0.1})
    # Population 0 scores 1, 4, 2, 3; population 1: member 5 diverged, the others score 5, 7, 6.
    returns = jnp.array([1.0, 4, 2, 3, 5, 100, 7, 6])
    metrics = {"episodes": jnp.full((n, 2), 2.0), "episode_return_sum": jnp.stack([returns, returns], 1) * 2}
    diverged_at = jnp.array([-1, -1, -1, -1, -1, 3, -1, -1])
    new, new_div, source = step(jax.random.PRNGKey(0), state, diverged_at, metrics)
    assert source.tolist() == [1, 1, 2, 3, 4, 6, 6, 7]  # worst of each replaced by the best (n = 1)
    np.testing.assert_array_equal(new.params[:, 0], [1, 1, 2, 3, 4, 6, 6, 7])
    np.testing.assert_array_equal(new.key, state.key)  # each member keeps its own randomness
    assert new_div.tolist() == [-1] * 8  # the diverged member was replaced by a healthy copy
    np.testing.assert_allclose(new.hparams["ent_coef"], np.array([1, 1, 2, 3, 4, 6, 6, 7]) * 0.1, rtol=1e-6)
    for i in (0, 5):  # perturbed: lr by 0.5 or 4; gamma too, but never above its bound of 1
        assert np.isclose(new.hparams["lr"][i], [5e-4, 4e-3], rtol=1e-6).any()
        assert np.isclose(new.hparams["gamma"][i], [0.45, 1.0], rtol=1e-6).any()
    kept = [1, 2, 3, 4, 6, 7]
    np.testing.assert_allclose(new.hparams["lr"][jnp.array(kept)], 1e-3)


@pytest.mark.parametrize("changes, message", [
    ({"pbt": None}, "needs a `pbt:` section"),
    ({"pbt": {"population": 4, "fraction": 0.1}}, "replaces no member"),
    ({"pbt": {"population": 8, "fraction": 0.75}}, "fraction=0.75 must be in \\(0, 0.5\\]"),
    ({"pbt": {"population": 8, "perturb": [0.8, -1]}}, "perturb=\\[0.8, -1\\] must be a list of positive factors"),
    ({"pbt": {"population": 8, "speed": 2}}, "unknown pbt key\\(s\\) 'speed'"),
    ({"space": {"num_envs": [4, 8]}}, "PBT explores dynamic hyperparameters only; num_envs changes the compiled"),
    ({"num_points": 3}, "num_points does not apply to PBT"),
])
def test_bad_pbt_specs(changes, message):
    data = {"algo": "ppo", "env": "gymnax:CartPole-v1", "base": {"total_timesteps": 4096}, "seeds": 1,
            "space": {"lr": {"dist": "log_uniform", "low": 1e-4, "high": 1e-2}}, "pbt": {"population": 8}}
    data.update(changes)
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        pbt.parse_spec(data)


def test_short_pbt_run_records_schedule_and_lineage(tmp_path):
    spec = {"algo": "ppo", "env": "gymnax:CartPole-v1", "base": {"total_timesteps": 6 * 512}, "seeds": 2,
            "space": {"lr": {"dist": "log_uniform", "low": 1e-4, "high": 1e-2}},
            "pbt": {"population": 4, "ready": 2, "fraction": 0.5}}
    result = pbt.run_pbt(spec, out=str(tmp_path / "pbt"), progress=False)
    out = result.out_dir
    rows = list(csv.DictReader(open(out / "schedule.csv")))
    assert len(rows) == 8 * 3  # the start and two exploit steps (none after the last chunk)
    assert [int(r["update"]) for r in rows[::8]] == [0, 2, 4]
    for update in ("2", "4"):
        step = [r for r in rows if r["update"] == update]
        for population in ("0", "1"):
            parents = [int(r["parent"]) for r in step if r["population"] == population]
            assert sum(p != m for m, p in enumerate(parents)) == 2  # half of each population replaced
    assert result.metrics["policy_loss"].shape == (8, 6)
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["best_final_return_per_population"]) == 2 and summary["best_final_return_mean"] > 0
    assert json.loads((out / "metadata.json").read_text())["status"] == "finished"
    assert (out / "schedules.png").stat().st_size > 10_000
    assert np.load(out / "curves.npz")["returns"].shape == (2, 4, 6)


def test_a_stopped_pbt_run_resumes_to_the_same_schedule_and_returns_and_evaluates(tmp_path):
    spec = {"algo": "ppo", "env": "gymnax:CartPole-v1", "base": {"total_timesteps": 6 * 512}, "seeds": 1,
            "space": {"lr": {"dist": "log_uniform", "low": 1e-4, "high": 1e-2}},
            "pbt": {"population": 4, "ready": 2, "fraction": 0.5}}
    whole = pbt.run_pbt(spec, out=str(tmp_path / "pbt"), progress=False, checkpoint_every=2)
    out = whole.out_dir
    assert checkpoint.steps(out / "checkpoints") == [4, 6]
    # As if stopped after update 4: its last checkpoint gone, the record not finished.
    import shutil
    shutil.rmtree(out / "checkpoints" / "6")
    meta = json.loads((out / "metadata.json").read_text())
    (out / "metadata.json").write_text(json.dumps({**meta, "status": "preempted"}))
    resumed = api.resume(out, progress=False)
    assert resumed.summary["resumed_from_update"] == 4
    assert resumed.schedule == whole.schedule  # the schedule before the stop came back from the checkpoint
    for name in ("episode_return_sum", "policy_loss"):
        np.testing.assert_array_equal(resumed.metrics[name], whole.metrics[name])
    result = api.evaluate(out, episodes=2)  # every member's policy
    assert len(result["return_per_seed"]) == 4 and result["checkpoint"] == 6
