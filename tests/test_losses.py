import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl.losses import ValueHead, gae, ppo_loss, ppo_policy_loss, value_loss


def gae_reference(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Plain loop over time, per env; episodes end at terminated or truncated."""
    T, N = rewards.shape
    adv = np.zeros((T, N))
    for n in range(N):
        running = 0.0
        for t in reversed(range(T)):
            bootstrap = 0.0 if terminated[t, n] else gamma * next_values[t, n]
            delta = rewards[t, n] + bootstrap - values[t, n]
            if terminated[t, n] or truncated[t, n]:
                running = delta
            else:
                running = delta + gamma * lam * running
            adv[t, n] = running
    return adv, adv + values


@pytest.mark.parametrize("gamma,lam", [(0.99, 0.95), (0.9, 1.0), (0.5, 0.0)])
def test_gae_matches_numpy_reference_with_terminations_and_truncations(gamma, lam, random_episodes):
    rewards, values, next_values, terminated, truncated = random_episodes.values()
    adv, targets = gae(jnp.asarray(rewards), jnp.asarray(values), jnp.asarray(next_values),
                       jnp.asarray(terminated), jnp.asarray(terminated | truncated), gamma, lam)
    ref_adv, ref_targets = gae_reference(rewards, values, next_values, terminated, truncated, gamma, lam)
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(targets, ref_targets, rtol=1e-5, atol=1e-5)


def test_gae_bootstraps_at_truncation_but_not_at_termination():
    one = jnp.ones((1, 1))
    zero = jnp.zeros((1, 1))
    done = jnp.ones((1, 1), bool)
    truncated_adv, _ = gae(one, zero, 10 * one, jnp.zeros((1, 1), bool), done, 0.9, 0.95)
    terminated_adv, _ = gae(one, zero, 10 * one, done, done, 0.9, 0.95)
    assert float(truncated_adv[0, 0]) == pytest.approx(1 + 0.9 * 10)
    assert float(terminated_adv[0, 0]) == pytest.approx(1.0)


def test_ppo_surrogate_clips_large_ratios():
    adv = jnp.array([1.0, 1.0])
    old = jnp.log(jnp.array([0.5, 0.5]))
    new = jnp.log(jnp.array([1.0, 0.5]))  # ratio 2 (clipped to 1.2) and 1
    loss, clip_frac, _ = ppo_policy_loss(new, old, adv, 0.2)
    assert float(loss) == pytest.approx(-(1.2 + 1.0) / 2)
    assert float(clip_frac) == pytest.approx(0.5)


def test_value_clipping_takes_the_pessimistic_loss():
    values, old, targets = jnp.array([2.0]), jnp.array([0.0]), jnp.array([2.0])
    assert float(value_loss(values, old, targets, 0.2, clip=False)) == pytest.approx(0.0)
    assert float(value_loss(values, old, targets, 0.2, clip=True)) == pytest.approx(0.5 * 1.8**2)



def ppo_loss_reference(log_prob, entropy, values, old_log_prob, old_values, advantages, targets, hp, clip_value,
                       normalize_advantages, acts, learns):
    """PPO's objective over the samples that count: those that act (policy, entropy, advantage statistics)
    and the learner's (value loss)."""
    a, v = acts.astype(bool), learns.astype(bool)
    adv = advantages[a]
    if normalize_advantages:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    ratio = np.exp(log_prob[a] - old_log_prob[a])
    eps = hp["clip_eps"]
    policy = -np.minimum(ratio * adv, np.clip(ratio, 1 - eps, 1 + eps) * adv).mean()
    value_error = (values[v] - targets[v]) ** 2
    if clip_value:
        clipped = old_values[v] + np.clip(values[v] - old_values[v], -eps, eps)
        value_error = np.maximum(value_error, (clipped - targets[v]) ** 2)
    value = 0.5 * value_error.mean()
    ent = entropy[a].mean()
    stats = {"policy_loss": policy, "value_loss": value, "entropy": ent,
             "approx_kl": (ratio - 1 - np.log(ratio)).mean(), "clip_frac": (np.abs(ratio - 1) > eps).mean()}
    return policy + hp["vf_coef"] * value - hp["ent_coef"] * ent, stats


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("clip_value,normalize_advantages", [(True, True), (False, False)])
def test_ppo_loss_matches_numpy_reference(weighted, clip_value, normalize_advantages):
    rng = np.random.default_rng(1)
    n = 200
    old_log_prob = rng.normal(-1.0, 0.3, n)
    log_prob = old_log_prob + rng.normal(0.0, 0.3, n)  # ratios on both sides of the clip range
    entropy, values, old_values, advantages = rng.random(n), rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    targets = rng.normal(size=n)
    acts = (rng.random(n) < 0.7 if weighted else np.ones(n)).astype(np.float32)
    learns = (rng.random(n) < 0.8 if weighted else np.ones(n)).astype(np.float32)
    hp = {"clip_eps": 0.2, "vf_coef": 0.5, "ent_coef": 0.01}
    arrays = (log_prob, entropy, values, old_log_prob, old_values, advantages, targets)
    weights = (jnp.asarray(acts), jnp.asarray(learns)) if weighted else ()
    inputs = (log_prob, entropy, values[:, None], old_log_prob, old_values, advantages, targets)  # a scalar critic
    total, stats = ppo_loss(*map(jnp.asarray, inputs), hp, ValueHead(), clip_value, normalize_advantages, *weights)
    ref_total, ref_stats = ppo_loss_reference(*arrays, hp, clip_value, normalize_advantages, acts, learns)
    assert 0 < ref_stats["clip_frac"] < 1
    np.testing.assert_allclose(float(total), ref_total, rtol=1e-5, atol=1e-6)
    assert stats.keys() == ref_stats.keys()
    for k, v in ref_stats.items():
        np.testing.assert_allclose(float(stats[k]), v, rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("clip_value", [True, False])
def test_ppo_loss_of_a_categorical_critic_is_its_unclipped_cross_entropy(clip_value):
    """The value loss of an HL-Gauss critic: the mean cross-entropy over the learner's samples, whatever the
    old values (PPO's value clipping is for a scalar critic); the policy terms are the scalar critic's."""
    rng = np.random.default_rng(2)
    n, head = 64, ValueHead("hl_gauss", 11, 0.0, 10.0)
    log_prob, entropy, advantages = rng.normal(size=n), rng.random(n), rng.normal(size=n)
    logits, targets = rng.normal(size=(n, head.bins)), rng.uniform(0.0, 10.0, n)
    learns = jnp.asarray(rng.random(n) < 0.8, jnp.float32)
    acts = jnp.ones(n)
    hp = {"clip_eps": 0.2, "vf_coef": 0.5, "ent_coef": 0.01}
    common = (jnp.asarray(log_prob), jnp.asarray(entropy), jnp.asarray(logits), jnp.asarray(log_prob + 0.1))
    rest = (jnp.asarray(advantages), jnp.asarray(targets), hp, head, clip_value, True, acts, learns)
    total, stats = ppo_loss(*common, jnp.asarray(rng.normal(size=n)), *rest)
    far_old_values = ppo_loss(*common, jnp.full(n, 1e3), *rest)[1]
    probs = np.asarray(head.project(jnp.asarray(targets)))
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = (-(probs * log_softmax).sum(-1) * learns).sum() / learns.sum()
    np.testing.assert_allclose(float(stats["value_loss"]), expected, rtol=1e-5)
    np.testing.assert_allclose(float(far_old_values["value_loss"]), expected, rtol=1e-5)
    exact = jnp.asarray(targets)  # a scalar critic and its old values right on the targets: no value loss
    scalar = ppo_loss(*common[:2], exact[:, None], *common[3:], exact, *rest[:3], ValueHead(), *rest[4:])[1]
    assert float(scalar["value_loss"]) == 0.0
    for k in ("policy_loss", "entropy", "approx_kl", "clip_frac"):
        assert float(stats[k]) == float(scalar[k]), k
    np.testing.assert_allclose(float(total), float(stats["policy_loss"] + 0.5 * stats["value_loss"]
                                                   - 0.01 * stats["entropy"]), rtol=1e-6)


@pytest.mark.parametrize("shape", [(4, 64), (64, 64), (64, 2), (3, 5, 7)])
def test_orthogonal_init_is_orthogonal(shape):
    import jax

    from jaxrl.networks import orthogonal

    w = np.asarray(orthogonal(2.0)(jax.random.PRNGKey(0), shape)).reshape(-1, shape[-1])
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    np.testing.assert_allclose(gram, 4.0 * np.eye(len(gram)), atol=1e-5)


def test_conv_torso_is_a_valid_convolution_and_keeps_trailing_features():
    """MLP's conv torso (dense layer on k x k patches) equals lax's VALID convolution, then the dense layers."""
    import jax

    from jaxrl.networks import MLP

    image_shape, extra = (4, 5, 2), 3
    net = MLP((6,), 2, "relu", 1.0, conv_channels=(3,), conv_kernel=2, image_shape=image_shape)
    x = jax.random.normal(jax.random.PRNGKey(0), (7, int(np.prod(image_shape)) + extra))
    params = net.init(jax.random.PRNGKey(1), x)["params"]
    conv, hidden, head = params["Dense_0"], params["Dense_1"], params["Dense_2"]
    kernel = conv["kernel"].reshape(2, 2, 2, 3)  # patch features are ordered (row offset, column offset, channel)
    images = x[:, :40].reshape((7,) + image_shape)
    maps = jax.lax.conv_general_dilated(images, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    features = jnp.concatenate([jax.nn.relu(maps + conv["bias"]).reshape(7, -1), x[:, 40:]], -1)
    expected = jax.nn.relu(features @ hidden["kernel"] + hidden["bias"]) @ head["kernel"] + head["bias"]
    np.testing.assert_allclose(net.apply({"params": params}, x), expected, rtol=1e-5, atol=1e-5)
    assert hidden["kernel"].shape == (3 * 4 * 3 + extra, 6)
