"""The optimiser, the gradient step every algorithm takes on a minibatch, and epochs of minibatches over a rollout."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from jaxrl.rollout import rollout_minibatches


def make_optimizer(lr, max_grad_norm, eps=1e-5) -> optax.GradientTransformation:
    """Adam (epsilon `eps`) at learning rate `lr` after clipping the global gradient norm to `max_grad_norm`.

    Rebuilt inside the program from traced numbers; its state structure does not depend on them.
    max_grad_norm=0 turns clipping off; the infinite bound lives only here, not in the (checked-finite) state.
    """
    max_norm = jnp.where(max_grad_norm > 0, max_grad_norm, jnp.inf)
    return optax.chain(optax.clip_by_global_norm(max_norm), optax.scale_by_adam(eps=eps), optax.scale(-lr))


def gradient_step(optimizer: optax.GradientTransformation, loss_fn: Callable[..., tuple[jax.Array, dict]],
                  params: Any, opt_state: Any, *args) -> tuple[Any, Any, dict]:
    """One step of `optimizer` down the gradient of `loss_fn(params, *args) -> (loss, stats)`.
    Returns (params, opt_state, stats), stats with the gradient's global norm (before clipping) added."""
    grads, stats = jax.grad(loss_fn, has_aux=True)(params, *args)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    stats["grad_norm"] = optax.tree.norm(grads)
    return optax.apply_updates(params, updates), opt_state, stats


def rollout_epochs(loss_fn: Callable[..., tuple[jax.Array, dict]], params: Any, opt_state: Any, batch: Any,
                   key: jax.Array, epochs: int, num_minibatches: int, lr, max_grad_norm,
                   *args, minibatches: Callable = rollout_minibatches) -> tuple[Any, Any, dict]:
    """`epochs` passes over a rollout (`batch` leaves [T, N, ...]), each in `num_minibatches` minibatches
    (`minibatches(key, batch, num_minibatches)`: by default `jaxrl.rollout.rollout_minibatches`; whole sequences
    for a recurrent policy) with one gradient step of `make_optimizer(lr, max_grad_norm)` down
    `loss_fn(params, minibatch, *args)` on each (PPO, PQN). Returns (params, opt_state, stats averaged over all
    the steps)."""
    optimizer = make_optimizer(lr, max_grad_norm)

    def minibatch_step(carry, minibatch):
        params, opt_state = carry
        params, opt_state, stats = gradient_step(optimizer, loss_fn, params, opt_state, minibatch, *args)
        return (params, opt_state), stats

    def epoch(carry, epoch_key):
        return jax.lax.scan(minibatch_step, carry, minibatches(epoch_key, batch, num_minibatches))

    (params, opt_state), stats = jax.lax.scan(epoch, (params, opt_state), jax.random.split(key, epochs))
    return params, opt_state, {k: v.mean() for k, v in stats.items()}
