"""Flax networks shared by the algorithms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.config import ConfigError, SharedFields, static

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


MEMORIES = ("gru", "s5")


@dataclass(frozen=True)
class ConvTorso(SharedFields):
    """The static fields of an optional convolutional torso on image observations (PPO, IPPO/MAPPO, DQN, PQN)."""

    conv_channels: tuple[int, ...] = static((), "channels of VALID stride-1 convolutions applied first to image "
                                                "observations [H, W, C] (empty: none)", low=1)
    conv_kernel: int = static(3, "square kernel size of those convolutions", low=1)


@dataclass(frozen=True)
class RecurrentConfig:
    """The static fields choosing a recurrent policy and its memory (PPO and multi-agent PPO)."""

    recurrent: bool = static(False, "recurrent actor and critic (embedding, memory, then the remaining hidden "
                                    "layers); memories reset at episode starts, sequences replayed whole")
    memory: str = static("gru", "the recurrent layer: gru, or s5 (a diagonal state-space layer applied by "
                                "an associative scan with resets; Lu et al. 2023)", choices=MEMORIES)
    memory_size: int = static(128, "GRU hidden units, or S5 complex state size per layer (recurrent)", low=1)
    memory_layers: int = static(1, "stacked S5 layers, each added to its input through the activation (s5)", low=1)

    def check_memory(self):
        """ConfigError for memory fields that would be ignored."""
        if self.memory_layers > 1 and self.memory != "s5":
            raise ConfigError(f"memory_layers={self.memory_layers} stacks S5 layers; memory={self.memory} has one "
                              f"layer (set memory=s5 or memory_layers=1)")


def hippo_n_eigenvalues(size: int) -> np.ndarray:
    """Eigenvalues of the normal part of the HiPPO-LegS matrix (S5's "HiPPO-N" init; Smith et al. 2023, 4.2):
    real parts -1/2, imaginary parts in +- pairs growing with the index (to about +-size^2/3). Computed on the
    host, once; all `size` of them are used (S5 keeps one of each conjugate pair)."""
    p = np.sqrt(1 + 2 * np.arange(size))
    legs = -(np.tril(p[:, None] * p[None, :]) - np.diag(np.arange(size)))
    normal = legs + np.sqrt(np.arange(size) + 0.5)[:, None] * np.sqrt(np.arange(size) + 0.5)[None, :]
    return -0.5 + 1j * np.linalg.eigvalsh(-1j * normal)


def s5_scan_operator(earlier, later):
    """The associative operator of a linear recurrence x_t = a_t x_{t-1} + b_t whose state is zeroed where
    `reset` (Lu et al. 2023, eq. 4): elements (a, b, reset), `later` applied after `earlier`."""
    a_i, b_i, reset_i = earlier
    a_j, b_j, reset_j = later
    return (jnp.where(reset_j, a_j, a_j * a_i), jnp.where(reset_j, b_j, a_j * b_i + b_j), reset_i | reset_j)


class S5(nn.Module):
    """One S5 layer (Smith et al. 2023) with resets: a diagonal complex state x [..., size] driven by u
    [..., features], y = Re(C x) + D u. Lambda starts at the HiPPO-N eigenvalues, B and C are drawn directly in
    that eigenbasis (S5's diagonal variant), discretised by zero-order hold with a learned log step per state.
    The state travels as float32 [..., 2 * size] (real parts, then imaginary), like any other memory."""

    size: int
    features: int

    def setup(self):
        eigenvalues = hippo_n_eigenvalues(self.size)
        self.log_neg_real = self.param("log_neg_real", lambda k: jnp.log(-jnp.asarray(eigenvalues.real, jnp.float32)))
        self.imag = self.param("imag", lambda k: jnp.asarray(eigenvalues.imag, jnp.float32))
        self.log_step = self.param("log_step", nn.initializers.uniform(np.log(1e2)), (self.size,))
        self.b = self.param("B", nn.initializers.normal(np.sqrt(0.5 / self.features)), (2, self.size, self.features))
        self.c = self.param("C", nn.initializers.normal(np.sqrt(0.5 / self.size)), (2, self.features, self.size))
        self.d = self.param("D", nn.initializers.normal(1.0), (self.features,))

    def _discrete(self):
        """(Lambda_bar [size], B_bar [size, features]): zero-order hold at step 1e-3 * exp(log_step), 1e-3 to 0.1
        at init."""
        lam = -jnp.exp(self.log_neg_real) + 1j * self.imag
        lam_bar = jnp.exp(lam * jnp.exp(self.log_step + np.log(1e-3)))
        return lam_bar, ((lam_bar - 1) / lam)[:, None] * (self.b[0] + 1j * self.b[1])

    def _complex(self, state):
        return state[..., :self.size] + 1j * state[..., self.size:]

    def _output(self, x, u):
        state = jnp.concatenate([x.real, x.imag], -1)
        return state, (x @ (self.c[0] + 1j * self.c[1]).T).real + self.d * u

    def __call__(self, state, u, reset):
        """One step: state [..., 2 * size], u [..., features], reset [...] -> (state, y [..., features])."""
        lam_bar, b_bar = self._discrete()
        x = jnp.where(reset[..., None], 0.0, self._complex(state))
        return self._output(lam_bar * x + u @ b_bar.T, u)

    def sequence(self, state, u, reset):
        """All steps at once by an associative scan: state [..., 2 * size] before the first step, u [T, ...,
        features], reset [T, ...] -> (state after the last step, y [T, ..., features])."""
        lam_bar, b_bar = self._discrete()
        first = self._complex(state)[None]
        a = jnp.concatenate([jnp.ones_like(first), jnp.broadcast_to(lam_bar, u.shape[:-1] + (self.size,))])
        b = jnp.concatenate([first, u @ b_bar.T])
        resets = jnp.concatenate([jnp.zeros_like(reset[:1]), reset])[..., None]
        x = jax.lax.associative_scan(s5_scan_operator, (a, b, resets))[1][1:]
        states, y = self._output(x, u)
        return states[-1], y


class S5Stack(nn.Module):
    """S5 layers in sequence, each adding activation(its output) to its input (a residual stream): the state is
    the layers' states side by side, [..., layers * 2 * size]. A stack of layers composes nonlinear functions of
    the past that one linear recurrence cannot (Lu et al. stack four)."""

    size: int
    features: int
    layers: int
    activation: str

    def setup(self):
        self.cells = [S5(self.size, self.features) for _ in range(self.layers)]

    def _apply(self, state, u, reset, sequence: bool):
        act, states = ACTIVATIONS[self.activation], jnp.split(state, self.layers, -1)
        for i, cell in enumerate(self.cells):
            states[i], y = cell.sequence(states[i], u, reset) if sequence else cell(states[i], u, reset)
            u = u + act(y)
        return jnp.concatenate(states, -1), u

    def __call__(self, state, u, reset):
        """One step: state [..., layers * 2 * size], u [..., features], reset [...] -> (state, out [..., features])."""
        return self._apply(state, u, reset, False)

    def sequence(self, state, u, reset):
        """All steps, layer by layer: u [T, ..., features], reset [T, ...] -> (last state, out [T, ..., features])."""
        return self._apply(state, u, reset, True)


class RecurrentActorCritic(nn.Module):
    """Actor and critic, each a dense embedding -> memory (GRU or S5) -> MLP head.

    `memory` is the pair of states (actor, critic), leaves [..., memory_width(network)]. Where
    `reset` is true (the step starts an episode) both are zeroed before the step, so a
    sequence replayed from its first memory with the rollout's resets reproduces the
    rollout exactly (`replay_sequence`). `critic_obs` feeds the critic instead of `obs` (MAPPO).
    The critic's `value_outputs` are decoded like ActorCritic's.
    """

    action_dim: int
    discrete: bool
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    memory_size: int = 64
    value_outputs: int = 1
    memory: str = "gru"  # one of MEMORIES
    memory_layers: int = 1  # S5 layers

    def setup(self):
        self.actor_embed = dense(self.hidden_sizes[0], np.sqrt(2))
        self.critic_embed = dense(self.hidden_sizes[0], np.sqrt(2))
        if self.memory == "s5":
            self.actor_s5, self.critic_s5 = (S5Stack(self.memory_size, self.hidden_sizes[0], self.memory_layers,
                                                     self.activation) for _ in range(2))
        else:  # Flax's GRU default orthogonal init calls LAPACK QR (see `orthogonal` above).
            self.actor_gru, self.critic_gru = (nn.GRUCell(self.memory_size, kernel_init=orthogonal(1.0),
                                                          recurrent_kernel_init=orthogonal(1.0)) for _ in range(2))
        self.actor = MLP(self.hidden_sizes[1:], self.action_dim, self.activation, 0.01)
        self.critic = MLP(self.hidden_sizes[1:], self.value_outputs, self.activation, 1.0)
        if not self.discrete:
            self.log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))

    def _cells(self):
        return (self.actor_s5, self.critic_s5) if self.memory == "s5" else (self.actor_gru, self.critic_gru)

    def _step(self, embed, cell, h, x, reset):
        u = ACTIVATIONS[self.activation](embed(x.astype(jnp.float32)))
        if self.memory == "s5":
            return cell(h, u, reset)
        return cell(jnp.where(reset[..., None], 0.0, h), u)

    def _dist(self, h):
        head = self.actor(h)
        return head if self.discrete else (head, jnp.broadcast_to(self.log_std, head.shape))

    def __call__(self, memory, obs, reset, critic_obs=None):
        """One step: (memory, obs [..., F], reset [...]) -> (memory, dist, critic outputs [..., value_outputs])."""
        h_actor, h_critic = memory
        actor_cell, critic_cell = self._cells()
        h_actor, out = self._step(self.actor_embed, actor_cell, h_actor, obs, reset)
        critic_in = obs if critic_obs is None else critic_obs
        h_critic, critic_out = self._step(self.critic_embed, critic_cell, h_critic, critic_in, reset)
        return (h_actor, h_critic), self._dist(out), self.critic(critic_out)

    def policy(self, memory, obs, reset):
        """The actor alone: (memory, obs, reset) -> (memory with the critic's untouched, dist)."""
        h_actor, h_critic = memory
        h_actor, out = self._step(self.actor_embed, self._cells()[0], h_actor, obs, reset)
        return (h_actor, h_critic), self._dist(out)

    def s5_sequence(self, memory, obs, reset, critic_obs=None):
        """`replay_sequence` of an S5 network: every step of obs [T, ..., F] at once."""
        def torso(embed, cell, h, x):
            return cell.sequence(h, ACTIVATIONS[self.activation](embed(x.astype(jnp.float32))), reset)

        actor_cell, critic_cell = self._cells()
        h_actor, out = torso(self.actor_embed, actor_cell, memory[0], obs)
        critic_in = obs if critic_obs is None else critic_obs
        h_critic, critic_out = torso(self.critic_embed, critic_cell, memory[1], critic_in)
        return (h_actor, h_critic), self._dist(out), self.critic(critic_out)


def memory_width(network: RecurrentActorCritic) -> int:
    """Features of each of a recurrent network's two memory states (S5: real and imaginary parts per layer)."""
    return 2 * network.memory_size * network.memory_layers if network.memory == "s5" else network.memory_size


def zero_memory(network: RecurrentActorCritic, *lead: int) -> tuple[jax.Array, jax.Array]:
    """The (actor, critic) memory of a fresh episode, leaves [*lead, memory_width]."""
    return (jnp.zeros(lead + (memory_width(network),)),) * 2


def replay_sequence(network: RecurrentActorCritic, params, memory, obs, reset, critic_obs=None):
    """Sequences replayed from their first memory, as the loss sees them: memory leaves [S, ...], obs
    [T, S, F], reset [T, S] (the step starts an episode) -> (memory after the last step, dist [T, S, ...],
    critic outputs [T, S, value_outputs]). A GRU steps through them as the rollout did; S5 takes every step
    at once (its associative scan)."""
    if network.memory == "s5":
        return network.apply(params, memory, obs, reset, critic_obs, method=RecurrentActorCritic.s5_sequence)

    def step(memory, inputs):
        memory, dist, value_out = network.apply(params, memory, *inputs)
        return memory, (dist, value_out)

    memory, (dist, value_out) = jax.lax.scan(step, memory, (obs, reset, critic_obs))
    return memory, dist, value_out
