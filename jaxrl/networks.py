"""Flax networks shared by the algorithms."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.config import ConfigError

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "gelu": nn.gelu, "silu": nn.silu}


def orthogonal(scale: float = 1.0):
    """Orthogonal initializer (Saxe et al. 2014) without LAPACK.

    Flax's `initializers.orthogonal` calls LAPACK's QR, which on XLA:CPU
    intermittently left vmapped init programs waiting forever (all threads
    idle in block_until_ready; 5 of 8 stress processes hung, 0 of 6 without
    QR). Gram-Schmidt applied twice ("CGS2") is orthogonal to float32
    precision for these small matrices and gives the same distribution: the
    Q factor of a Gaussian matrix with a positive-diagonal R.
    """

    def init(key, shape, dtype=jnp.float32):
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        n, m = max(rows, cols), min(rows, cols)
        a = jax.random.normal(key, (n, m), jnp.float32)

        def next_column(q, k):
            v = a[:, k]
            for _ in range(2):  # re-orthogonalise once: classical Gram-Schmidt alone loses orthogonality
                v = v - q @ (q.T @ v)
            return q.at[:, k].set(v / jnp.linalg.norm(v)), None

        q, _ = jax.lax.scan(next_column, jnp.zeros((n, m), jnp.float32), jnp.arange(m))
        q = q if rows >= cols else q.T
        return (scale * q).reshape(shape).astype(dtype)

    return init


# Weight initialisations: orthogonal (gain sqrt(2) hidden, a given scale for heads; PPO's), or flax's default
# LeCun-normal kernels with zero biases (PureJaxRL's and CleanRL's DQN).
INITS = ("orthogonal", "lecun")


def dense(features: int, scale: float, weight_init: str = "orthogonal") -> nn.Dense:
    if weight_init == "lecun":
        return nn.Dense(features)
    return nn.Dense(features, kernel_init=orthogonal(scale), bias_init=nn.initializers.zeros)


def check_conv(conv_channels: Sequence[int], conv_kernel: int, obs_shape: Sequence[int], env_id: str) -> tuple:
    """The image shape a conv torso reads, or () without one; ConfigError when the observation cannot take it."""
    if not conv_channels:
        return ()
    if len(obs_shape) != 3:
        raise ConfigError(f"conv_channels={list(conv_channels)} needs image observations [height, width, channels]; "
                          f"{env_id} gives shape {list(obs_shape)}")
    trimmed = len(conv_channels) * (conv_kernel - 1)  # each VALID convolution trims kernel - 1 rows and columns
    if min(obs_shape[0], obs_shape[1]) - trimmed < 1:
        raise ConfigError(f"{len(conv_channels)} convolutions of {conv_kernel}x{conv_kernel} do not fit {env_id}'s "
                          f"{obs_shape[0]}x{obs_shape[1]} observation (each trims {conv_kernel - 1} rows and columns)")
    return tuple(int(d) for d in obs_shape)


def patches(image, kernel: int):
    """[..., H, W, C] -> [..., H-k+1, W-k+1, k*k*C]: each VALID k x k window as one feature vector.

    A dense layer on these is a VALID stride-1 convolution. XLA:CPU runs that matmul much
    faster than its convolution on small boards: a connect-four self-play run with 16 4x4
    filters trained at 7.8k env steps/s this way, 2.7k with nn.Conv.
    """
    h, w = image.shape[-3] - kernel + 1, image.shape[-2] - kernel + 1
    return jnp.concatenate([image[..., i:i + h, j:j + w, :] for i in range(kernel) for j in range(kernel)], -1)


class MLP(nn.Module):
    """Hidden layers then a linear head; orthogonal init (sqrt(2) hidden, `out_scale` head) or another of `INITS`.

    With `conv_channels`, the first prod(image_shape) input features are an image [H, W, C]
    that passes VALID convolutions (stride 1) first; any features after it (agent ids) join
    the flattened feature maps. `layer_norm` normalises each hidden layer before its activation (a
    convolution's: over the channels at each position); `out_features=0` returns the last hidden features
    (a torso for several heads).
    """

    hidden_sizes: Sequence[int]
    out_features: int
    activation: str = "tanh"
    out_scale: float = 1.0
    conv_channels: Sequence[int] = ()
    conv_kernel: int = 3
    image_shape: Sequence[int] = ()
    layer_norm: bool = False
    weight_init: str = "orthogonal"

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        if self.conv_channels:
            size, lead = int(np.prod(self.image_shape)), x.shape[:-1]
            image = x[..., :size].reshape(lead + tuple(self.image_shape))
            for channels in self.conv_channels:
                image = dense(channels, np.sqrt(2), self.weight_init)(patches(image, self.conv_kernel))
                image = act(nn.LayerNorm()(image) if self.layer_norm else image)
            x = jnp.concatenate([image.reshape(lead + (-1,)), x[..., size:]], -1)
        for size in self.hidden_sizes:
            x = dense(size, np.sqrt(2), self.weight_init)(x)
            x = act(nn.LayerNorm()(x) if self.layer_norm else x)
        return dense(self.out_features, self.out_scale, self.weight_init)(x) if self.out_features else x


def flatten_obs(obs: jax.Array, obs_ndim: int) -> jax.Array:
    """[..., *obs_shape] -> [..., prod(obs_shape)] float32 (obs_shape has `obs_ndim` axes)."""
    return obs.reshape(obs.shape[: obs.ndim - obs_ndim] + (-1,)).astype(jnp.float32)


class QNetwork(nn.Module):
    """Action values of the flattened observation: [..., *obs_shape] -> [..., action_dim, outputs].

    `outputs` numbers per action feed a value head (jaxrl.losses.ValueHead: 1 for a scalar Q-value,
    logits over bins for a categorical one). `dueling` splits a state value and mean-centred action
    advantages after a shared torso (Wang et al. 2016); `layer_norm` normalises every hidden layer (PQN);
    `weight_init` is one of `INITS`.
    """

    action_dim: int
    obs_ndim: int = 1
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "relu"
    layer_norm: bool = False
    dueling: bool = False
    outputs: int = 1
    conv_channels: Sequence[int] = ()
    conv_kernel: int = 3
    image_shape: Sequence[int] = ()
    weight_init: str = "orthogonal"

    @nn.compact
    def __call__(self, obs):
        x = flatten_obs(obs, self.obs_ndim)
        lead = x.shape[:-1]
        conv = (self.conv_channels, self.conv_kernel, self.image_shape)
        if not self.dueling:
            out = MLP(self.hidden_sizes, self.action_dim * self.outputs, self.activation, 1.0, *conv,
                      layer_norm=self.layer_norm, weight_init=self.weight_init)(x)
            return out.reshape(lead + (self.action_dim, self.outputs))
        features = MLP(self.hidden_sizes, 0, self.activation, 1.0, *conv, layer_norm=self.layer_norm,
                       weight_init=self.weight_init)(x)
        value = dense(self.outputs, 1.0, self.weight_init)(features).reshape(lead + (1, self.outputs))
        advantage = dense(self.action_dim * self.outputs, 1.0, self.weight_init)(features).reshape(
            lead + (self.action_dim, self.outputs))
        return value + advantage - advantage.mean(-2, keepdims=True)


class SquashedGaussianActor(nn.Module):
    """SAC's actor: [..., *obs_shape] -> (mean, log_std) [..., action_dim] of a Gaussian to be squashed by tanh
    (jaxrl.distributions.tanh_gaussian_sample); log_std depends on the state and is clipped to `log_std_range`
    (Rejax's (-10, 2)) so that exp(log_std) neither vanishes nor explodes."""

    action_dim: int
    obs_ndim: int = 1
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    weight_init: str = "lecun"
    log_std_range: tuple[float, float] = (-10.0, 2.0)

    @nn.compact
    def __call__(self, obs):
        features = MLP(self.hidden_sizes, 0, self.activation, weight_init=self.weight_init)(
            flatten_obs(obs, self.obs_ndim))
        mean = dense(self.action_dim, 1.0, self.weight_init)(features)
        log_std = dense(self.action_dim, 1.0, self.weight_init)(features)
        return mean, jnp.clip(log_std, *self.log_std_range)


class DeterministicActor(nn.Module):
    """TD3's actor: [..., *obs_shape] -> tanh of an MLP, an action in [-1, 1]^action_dim
    (jaxrl.distributions.to_bounds maps it into the env's box)."""

    action_dim: int
    obs_ndim: int = 1
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    weight_init: str = "lecun"

    @nn.compact
    def __call__(self, obs):
        out = MLP(self.hidden_sizes, self.action_dim, self.activation, weight_init=self.weight_init)(
            flatten_obs(obs, self.obs_ndim))
        return jnp.tanh(out)


class QEnsemble(nn.Module):
    """`num_critics` independent Q-networks of (observation, action): (obs [..., *obs_shape], action
    [..., action_dim]) -> Q [num_critics, ...]. One parameter tree whose leaves carry a leading critic axis
    (nn.vmap), so the critics are evaluated in one batched call (SAC's and TD3's twin critics)."""

    num_critics: int = 2
    obs_ndim: int = 1
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    weight_init: str = "lecun"

    @nn.compact
    def __call__(self, obs, action):
        x = jnp.concatenate([flatten_obs(obs, self.obs_ndim), action.astype(jnp.float32)], -1)
        critics = nn.vmap(MLP, variable_axes={"params": 0}, split_rngs={"params": True}, in_axes=None, out_axes=0,
                          axis_size=self.num_critics)
        return critics(self.hidden_sizes, 1, self.activation, weight_init=self.weight_init)(x)[..., 0]


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs on the flattened observation.

    `obs` is [..., *obs_shape] with `obs_ndim = len(obs_shape)`. Discrete:
    returns (logits [.., n], critic outputs [.., value_outputs]); continuous: ((mean, log_std), critic outputs).
    The algorithm decodes the critic outputs into values with its jaxrl.losses.ValueHead (`value_outputs` =
    its `outputs`: 1 for a scalar value, logits over bins for a categorical one).
    `critic_obs` (same leading axes, already flat) feeds the critic instead of `obs`:
    a centralised critic on the world state (MAPPO).
    """

    action_dim: int
    discrete: bool
    obs_ndim: int = 1
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    conv_channels: Sequence[int] = ()  # a conv torso on image observations (see MLP); not for a world-state critic
    conv_kernel: int = 3
    image_shape: Sequence[int] = ()
    central_critic: bool = False
    value_outputs: int = 1

    def setup(self):
        conv = (self.conv_channels, self.conv_kernel, self.image_shape)
        self.actor = MLP(self.hidden_sizes, self.action_dim, self.activation, 0.01, *conv)
        self.critic = MLP(self.hidden_sizes, self.value_outputs, self.activation, 1.0,
                          *(((), 3, ()) if self.central_critic else conv))
        if not self.discrete:
            self.log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))

    def _flat(self, obs):
        return flatten_obs(obs, self.obs_ndim)

    def __call__(self, obs, critic_obs=None):
        x = self._flat(obs)
        head = self.actor(x)
        dist = head if self.discrete else (head, jnp.broadcast_to(self.log_std, head.shape))
        return dist, self.critic(x if critic_obs is None else critic_obs.astype(jnp.float32))

    def policy(self, obs):
        """The action distribution alone (an opponent's move needs no value)."""
        head = self.actor(self._flat(obs))
        return head if self.discrete else (head, jnp.broadcast_to(self.log_std, head.shape))

    def critic_outputs(self, obs, critic_obs=None):
        """The critic alone: [..., value_outputs]."""
        return self.critic(self._flat(obs) if critic_obs is None else critic_obs.astype(jnp.float32))


class RecurrentActorCritic(nn.Module):
    """Actor and critic, each a dense embedding -> GRU -> MLP head, stepped one time step at a time.

    `memory` is the pair of hidden states (actor, critic), leaves [..., gru_size]. Where
    `reset` is true (the step starts an episode) both are zeroed before the step, so a
    sequence replayed from its first memory with the rollout's resets reproduces the
    rollout exactly. `critic_obs` feeds the critic instead of `obs` (MAPPO). The critic's
    `value_outputs` are decoded like ActorCritic's.
    """

    action_dim: int
    discrete: bool
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    gru_size: int = 64
    value_outputs: int = 1

    def setup(self):
        def torso():
            # Flax's GRU default orthogonal init calls LAPACK QR (see `orthogonal` above).
            return (dense(self.hidden_sizes[0], np.sqrt(2)),
                    nn.GRUCell(self.gru_size, kernel_init=orthogonal(1.0), recurrent_kernel_init=orthogonal(1.0)))

        self.actor_embed, self.actor_gru = torso()
        self.critic_embed, self.critic_gru = torso()
        self.actor = MLP(self.hidden_sizes[1:], self.action_dim, self.activation, 0.01)
        self.critic = MLP(self.hidden_sizes[1:], self.value_outputs, self.activation, 1.0)
        if not self.discrete:
            self.log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))

    def _step(self, embed, gru, h, x, reset):
        h = jnp.where(reset[..., None], 0.0, h)
        return gru(h, ACTIVATIONS[self.activation](embed(x.astype(jnp.float32))))

    def _dist(self, h):
        head = self.actor(h)
        return head if self.discrete else (head, jnp.broadcast_to(self.log_std, head.shape))

    def __call__(self, memory, obs, reset, critic_obs=None):
        """One step: (memory, obs [..., F], reset [...]) -> (memory, dist, critic outputs [..., value_outputs])."""
        h_actor, h_critic = memory
        h_actor, out = self._step(self.actor_embed, self.actor_gru, h_actor, obs, reset)
        critic_in = obs if critic_obs is None else critic_obs
        h_critic, critic_out = self._step(self.critic_embed, self.critic_gru, h_critic, critic_in, reset)
        return (h_actor, h_critic), self._dist(out), self.critic(critic_out)

    def policy(self, memory, obs, reset):
        """The actor alone: (memory, obs, reset) -> (memory with the critic's untouched, dist)."""
        h_actor, h_critic = memory
        h_actor, out = self._step(self.actor_embed, self.actor_gru, h_actor, obs, reset)
        return (h_actor, h_critic), self._dist(out)
