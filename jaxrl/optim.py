"""The optimiser and the gradient step every algorithm takes on a minibatch."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax


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
