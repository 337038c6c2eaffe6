"""The algorithm contract (jaxrl.algos.base) and what the loop and session do with a Program."""

import ast
import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import algos, loop
from jaxrl.algos import base, ppo
from jaxrl.errors import JaxrlError

ROOT = Path(__file__).resolve().parents[1]
EPISODES = dict.fromkeys(base.EPISODE_METRICS, jnp.float32(0))


def module_imports() -> dict[str, set[str]]:
    """Project module -> the project modules it imports anywhere (lazy imports in functions included)."""
    modules = {}
    for folder, package in (("jaxrl", "jaxrl"), ("envs", "jaxrl.envs")):
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            modules[name] = path
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        graph[name] = {m for m in found if m in modules and m != name and not name.startswith(m + ".")}
    return graph


def test_the_module_import_graph_has_no_cycle_and_flows_one_way():
    graph = module_imports()
    state, path = {}, []

    def visit(module):
        state[module] = "open"
        path.append(module)
        for dep in sorted(graph[module]):
            assert state.get(dep) != "open", "import cycle: " + " -> ".join(path[path.index(dep):] + [dep])
            if dep not in state:
                visit(dep)
        path.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    # Lower layers never reach up: the session knows no driver, algorithms no session, envs nothing above.
    above = {"jaxrl.cli", "jaxrl.api", "jaxrl.trainer", "jaxrl.pbt", "jaxrl.meta", "jaxrl.evaluate"} | {
        m for m in graph if m.startswith("jaxrl.sweep")}
    for lower in ("jaxrl.session", "jaxrl.loop", "jaxrl.algos.ppo", "jaxrl.algos.ippo"):
        assert not graph[lower] & above, (lower, graph[lower] & above)
    assert not {m for m in graph if m.startswith("jaxrl.envs")} & set().union(
        *(graph[m] for m in graph if m.startswith("jaxrl.envs"))) - {m for m in graph if m.startswith("jaxrl.envs")}


@pytest.mark.parametrize("name", list(algos.ALGOS))
def test_every_registered_algorithm_declares_the_contract_and_its_update_reports_episodes(name):
    algorithm = algos.get(name)
    assert isinstance(algorithm, base.Algorithm) and algorithm.name == name and algorithm.description
    one_update = {"total_timesteps": algorithm.Config().num_envs * algorithm.Config().num_steps}
    if "learning_starts" in {f.name for f in dataclasses.fields(algorithm.Config)}:  # replay: learn at once
        one_update["learning_starts"] = 0
    config = algorithm.Config(**one_update)
    assert algos.of_config(config) is algorithm
    program = algorithm.make_program(config)
    assert isinstance(program, base.Program) and program.num_updates == 1
    state = jax.eval_shape(program.init, jax.random.PRNGKey(0), {k: 0.1 for k in program.get_hparams(
        jax.eval_shape(program.init, jax.random.PRNGKey(0), dict(ppo_like_hparams(config))))})
    program.check_metrics(jax.eval_shape(program.update, state)[1], name)


def ppo_like_hparams(config):
    from jaxrl.config import hparams

    return hparams(config)


def counter_program(log_every=1, updates_per_chunk=4, num_updates=10, poison_at=None, guarded=None):
    """A Program whose update adds 1 to `x`, finishes one episode of return x, and (at `poison_at`) puts NaN
    into `buffer`."""

    def init(key, hp):
        return {"x": jnp.float32(0), "buffer": jnp.zeros(3), "scale": hp["scale"]}

    def update(state):
        x = state["x"] + 1
        buffer = jnp.where(x == poison_at, jnp.nan, state["buffer"] + 1) if poison_at else state["buffer"] + 1
        metrics = {"episodes": jnp.int32(1), "episode_return_sum": x, "episode_length_sum": jnp.float32(2),
                   "loss": x * state["scale"]}
        return {**state, "x": x, "buffer": buffer}, metrics

    return base.Program(init, update, num_updates, 5, updates_per_chunk, guarded=guarded, log_every=log_every,
                        get_hparams=lambda s: {"scale": s["scale"]})


def run(program, runs=1, scale=1.0):
    keys = jax.random.split(jax.random.PRNGKey(0), runs)
    return loop.run(program, keys, {"scale": np.full(runs, scale, np.float32)})


def test_log_every_aggregates_metrics_on_the_device_sums_episodes_and_averages_the_rest():
    state, metrics, diverged, _ = run(counter_program(log_every=3, updates_per_chunk=6, num_updates=10), scale=2.0)
    # Rows end at updates 3, 6, 9, 10: episode statistics add up, other metrics are means of their updates.
    np.testing.assert_array_equal(metrics["episodes"][0], [3, 3, 3, 1])
    np.testing.assert_allclose(metrics["episode_return_sum"][0], [1 + 2 + 3, 4 + 5 + 6, 7 + 8 + 9, 10])
    np.testing.assert_allclose(metrics["loss"][0], [4.0, 10.0, 16.0, 20.0])
    np.testing.assert_array_equal(loop.logged_updates(counter_program(3, 6, 10)), [3, 6, 9, 10])
    assert float(state["x"][0]) == 10 and diverged.tolist() == [-1]
    with pytest.raises(JaxrlError, match="updates_per_chunk=4 must be a multiple of log_every=3"):
        counter_program(log_every=3, updates_per_chunk=4)


def test_chunks_sized_by_wall_time_start_small_grow_and_log_every_update(monkeypatch):
    program = counter_program(updates_per_chunk=0, num_updates=100)
    assert program.chunk_capacity == 100
    sizes = []
    keys = jax.random.split(jax.random.PRNGKey(0), 1)
    _, metrics, _, _ = loop.run(program, keys, {"scale": np.ones(1, np.float32)},
                                on_chunk=lambda report: sizes.append(report.num_updates))
    # Each about CHUNK_SECONDS long, at most 4x the last and a tenth of the run (these are fast).
    assert sizes == [1, 4] + [10] * 9 + [5]
    np.testing.assert_array_equal(metrics["episode_return_sum"][0], np.arange(1, 101))
    monkeypatch.setattr(loop, "CHUNK_SECONDS", 0.0)  # a slow program: every chunk is one update
    sizes.clear()
    loop.run(program, keys, {"scale": np.ones(1, np.float32)}, on_chunk=lambda report: sizes.append(report.num_updates))
    assert sizes == [1] * 100


def test_a_diverged_chunk_is_rolled_back_whole_and_guarded_says_what_counts():
    # NaN enters `buffer` at update 6, in the second chunk (updates 5-8): that chunk is discarded.
    state, metrics, diverged, _ = run(counter_program(poison_at=6), runs=2)
    assert diverged.tolist() == [5, 5]  # the first update of the discarded chunk
    np.testing.assert_array_equal(state["x"], [4, 4])  # frozen where the last good chunk left it
    assert np.all(np.isfinite(state["buffer"]))
    assert np.all(np.isnan(metrics["loss"][:, 4:])) and np.all(np.isfinite(metrics["loss"][:, :4]))
    # An algorithm that declares only `x` guarded (a replay buffer is not checked every chunk) keeps going.
    only_x = lambda s: {"x": True, "buffer": False, "scale": False}
    state, metrics, diverged, _ = run(counter_program(poison_at=6, guarded=only_x))
    assert diverged.tolist() == [-1] and float(state["x"][0]) == 10


def test_the_update_is_traced_once_for_the_memory_check_and_the_chunk_even_with_weakly_typed_state():
    traces = []

    def init(key, hp):  # a counter from a Python int is weakly typed, as gymnax's env time is
        return {"t": jnp.asarray(0), "x": jnp.float32(0), "scale": hp["scale"]}

    def update(state):
        traces.append(1)
        metrics = {"episodes": jnp.int32(1), "episode_return_sum": state["x"], "episode_length_sum": jnp.float32(1)}
        return {**state, "t": state["t"] + 1, "x": state["x"] + state["scale"]}, metrics

    program = base.Program(init, update, 4, 1, 2)
    keys, hp = jax.random.split(jax.random.PRNGKey(0), 1), {"scale": np.ones(1, np.float32)}
    assert jax.eval_shape(init, keys[0], {"scale": jnp.float32(1)})["t"].weak_type
    loop.check_memory(program, keys, hp)
    loop.compile_program(program, keys, hp)
    assert len(traces) == 1


def test_an_update_without_episode_statistics_is_refused_before_compiling():
    program = base.Program(lambda k, hp: jnp.float32(0), lambda s: (s + 1, {"loss": s}), 4, 1, 2)
    with pytest.raises(JaxrlError, match="returns no episodes, episode_return_sum, episode_length_sum metric"):
        loop.compile_program(program, jax.random.split(jax.random.PRNGKey(0), 1), {})


@pytest.mark.timeout(240)
def test_train_vmaps_whole_runs_over_keys_and_a_pytree_of_hyperparameters():
    config = ppo.Config(num_envs=4, num_steps=16, num_minibatches=2, update_epochs=1, hidden_sizes=(8,),
                        total_timesteps=2 * 64)
    train = ppo.make_train(config)
    hp = ppo_like_hparams(config)
    lrs = jnp.asarray([1e-3, 1e-1])
    batched = {k: jnp.full(2, v, jnp.float32) for k, v in hp.items()} | {"lr": lrs}
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    states, metrics = jax.jit(jax.vmap(train))(keys, batched)
    assert metrics["policy_loss"].shape == (2, 2)
    for i in range(2):  # each lane is the run of its own key and hyperparameters
        one, one_metrics = jax.jit(train)(keys[i], {**hp, "lr": lrs[i]})
        np.testing.assert_allclose(one_metrics["value_loss"], metrics["value_loss"][i], rtol=2e-4, atol=1e-6)
    kernel = lambda p: jax.tree.leaves(p)[0]
    assert not np.allclose(kernel(states.params)[0], kernel(states.params)[1])  # the lr reached the update
