"""Bad input to the `jaxrl` command: one line naming what is wrong, exit 2, before anything is compiled."""

import numpy as np
import pytest

from jaxrl import cli, loop
from jaxrl.algos import ppo
from jaxrl.config import hparams
from jaxrl.optim import make_optimizer
from jaxrl.session import run_keys

HUGE_ROLLOUT = ["--set", "num_envs=4194304", "--set", "num_steps=65536", "--total-timesteps", "274877906944"]


@pytest.fixture
def files(tmp_path):
    """Inputs the cases below name as {tmp}/...: a plain file, a binary file, YAML files and a run directory."""
    (tmp_path / "afile").write_text("not a directory\n")
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)))
    (tmp_path / "nan.yaml").write_text("algo: ppo\nlr: .nan\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("algo: ppo\nenv: gymnax:CartPole-v1\nlr: .nan\n")
    space = "space: {lr: {dist: log_uniform, low: 1.0e-4, high: 1.0e-2}}\n"
    (tmp_path / "sweep.yaml").write_text(f"base: {{total_timesteps: 4096}}\nnum_points: 2\n{space}"
                                         f"pbt: {{populaton: 8}}\n")
    (tmp_path / "pbt.yaml").write_text(f"base: {{total_timesteps: 40960}}\n{space}"
                                       f"pbt: {{population: 4, perturb: [.inf]}}\n")
    return tmp_path


@pytest.mark.parametrize("args,message", [
    (["train", "--set", "lr=nan"], "lr=nan: must be a finite number (Adam learning rate)"),
    (["train", "--set", "lr=inf"], "lr=inf: must be a finite number"),
    (["train", "--set", "max_grad_norm=.inf"], "max_grad_norm=inf: must be a finite number (global gradient-norm "
                                               "clip (0: no clipping))"),
    (["train", "--config", "{tmp}/nan.yaml"], "lr=nan: must be a finite number"),
    (["resume", "{tmp}/run"], "lr=nan: must be a finite number"),
    (["train", "--set", "hidden_sizes=[64.5]"], "hidden_sizes=[64.5]: expected a list of int"),
    (["train", "--config", "{tmp}/binary.yaml"], "config file '{tmp}/binary.yaml' is not a text file"),
    (["train", "--out", "{tmp}/afile/run"], "cannot create output directory '{tmp}/afile/run': Not a directory"),
    (["train", "--out", "{tmp}/afile"], "output directory '{tmp}/afile' is a file"),
    (["train", "--out", "/sys/jaxrl-run"], "cannot create output directory '/sys/jaxrl-run': Operation not permitted"),
    (["train", "--total-timesteps", "1e30"], "total_timesteps=1e+30 is 1.95e+27 updates of num_envs*num_steps=512; "
                                             "a run has at most 2147483647"),
    (["train", "--seed", "4294967296"], "seed=4294967296 with num_seeds=1 uses seeds up to 4294967296; seeds must "
                                        "be <= 4294967295"),
    (["train", "--seed", "4294967295", "--seeds", "2"], "uses seeds up to 4294967296"),
    (["sweep", "{tmp}/sweep.yaml"], "a `pbt:` section is for population-based training; run this spec with "
                                    "`jaxrl pbt`"),
    (["pbt", "{tmp}/pbt.yaml"], "pbt.perturb=[inf] must be a list of positive factors"),
    (["train", *HUGE_ROLLOUT], "GB for one update: rollout, minibatches, activations, gradients) but a device has"),
])
def test_bad_input_gives_one_line_before_compiling(args, message, files, capsys, monkeypatch):
    monkeypatch.setattr(loop, "compile_program", lambda *a, **k: pytest.fail("compiled"))
    args = [a.format(tmp=files) for a in args]
    if args[0] in ("train", "sweep", "pbt") and "--out" not in args:
        args += ["--out", str(files / "out")]
    code = cli.main(args + ["--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message.format(tmp=files) in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_memory_check_counts_the_rollout_not_just_the_state():
    """The HUGE_ROLLOUT case above: its state alone passed the check that counted only the state."""
    config = ppo.Config(num_envs=4194304, num_steps=65536, total_timesteps=274877906944)
    state, update = loop.memory_estimate(ppo.make_program(config), run_keys(config.seed, config.num_seeds)[1], hparams(config))
    assert 3 * state < 1e9
    assert update > 2**38 * 40  # obs, next obs, action, reward, value, log-prob, flags: > 40 bytes a step


@pytest.mark.timeout(120)
def test_memory_estimate_is_close_to_what_xla_allocates():
    """An ordinary config passes the check, and the estimate is within 2x of the compiled program's buffers."""
    config = ppo.Config(num_envs=256, num_steps=128, hidden_sizes=(32, 32), total_timesteps=256 * 128)
    program = ppo.make_program(config)
    keys, hp = run_keys(config.seed, config.num_seeds)[1], hparams(config)
    loop.check_memory(program, keys, hp)
    state, update = loop.memory_estimate(program, keys, hp)
    memory = loop.compile_program(program, keys, hp).chunk.memory_analysis()
    xla = memory.temp_size_in_bytes + memory.argument_size_in_bytes
    assert 0.5 < (2 * state + update) / xla < 2, (state, update, xla)


def test_max_grad_norm_zero_turns_clipping_off():
    params = {"w": np.zeros(2, np.float32)}
    big, small = {"w": np.array([30.0, 40.0], np.float32)}, {"w": np.array([0.3, 0.4], np.float32)}

    def two_steps(max_grad_norm):
        opt = make_optimizer(1e-3, max_grad_norm)
        state = opt.init(params)
        _, state = opt.update(big, state, params)
        return opt.update(small, state, params)[0]["w"]

    off, unclipped, clipped = two_steps(0.0), two_steps(1e30), two_steps(0.5)
    np.testing.assert_allclose(off, unclipped)
    assert not np.allclose(off, clipped)
