r"""A foreach Riemannian Adam: geoopt's ``RiemannianAdam`` semantics, batched over parameters.

:class:`ForeachRiemannianAdam` is a drop-in ``geoopt.optim.RiemannianAdam`` (same constructor,
same ``state_dict`` layout: ``step`` a Python int, ``exp_avg``, ``exp_avg_sq``, and
``max_exp_avg_sq`` with ``amsgrad``) whose step updates every Euclidean parameter of a group
(plain tensors, and manifold parameters on ``geoopt.Euclidean``) with one ``torch._foreach_*``
call per operation instead of a Python loop of ~10 tensor operations per parameter. Manifold
parameters (a learned core on the Poincaré ball) take geoopt's per-parameter update: Riemannian
gradient, moments, and the retraction-transport of the first moment.

The Euclidean update is geoopt's, with fused operations (``lerp``, ``addcmul``, ``addcdiv``:
7 foreach calls per step instead of ~11 operations per parameter), so the results agree with
geoopt's to rounding (``tests/test_optim.py`` checks the parameters and moments step by step,
float32 and float64, to a few ulps of the update):

.. math::
    g \leftarrow g + \lambda p,\quad m \leftarrow \beta_1 m + (1-\beta_1) g,\quad
    v \leftarrow \beta_2 v + (1-\beta_2) g^2,

.. math::
    p \leftarrow p - \eta\,\frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon}.

Like geoopt, the weight decay is added to the gradient in place (``p.grad`` changes).

Example::

    >>> net = torch.nn.Linear(4, 2)
    >>> opt = ForeachRiemannianAdam(net.parameters(), lr=1e-2)
    >>> net(torch.ones(1, 4)).sum().backward()
    >>> opt.step()
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor

from hyperleaf.geometry import geoopt  # through geometry: it silences geoopt's import warnings

__all__ = ["ForeachRiemannianAdam"]


def _is_euclidean(p: Tensor) -> bool:
    manifold = getattr(p, "manifold", None)
    return manifold is None or isinstance(manifold, geoopt.Euclidean)


class ForeachRiemannianAdam(geoopt.optim.RiemannianAdam):
    """``geoopt.optim.RiemannianAdam`` with a foreach step for Euclidean parameters (see the
    module docstring). Arguments as geoopt's: ``lr``, ``betas``, ``eps``, ``weight_decay``,
    ``amsgrad``, ``stabilize``."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            stabilize = False
            flat: dict[tuple, list[Tensor]] = defaultdict(list)
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("ForeachRiemannianAdam does not support sparse gradients")
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                if _is_euclidean(p):
                    flat[(p.device, p.dtype, state["step"])].append(p)
                else:
                    # geoopt updates in parameter order and a manifold's retraction may read
                    # parameters updated before it (a learned curvature): flush those first
                    self._flush(flat, group)
                    self._manifold_step(p, group, state)
                if group["stabilize"] is not None and state["step"] % group["stabilize"] == 0:
                    stabilize = True
            self._flush(flat, group)
            if stabilize:
                self.stabilize_group(group)
        return loss

    def _flush(self, flat: dict[tuple, list[Tensor]], group: dict) -> None:
        for (_, _, step), params in flat.items():
            self._foreach_step(params, group, step)
        flat.clear()

    def _foreach_step(self, params: list[Tensor], group: dict, step: int) -> None:
        beta1, beta2 = group["betas"]
        lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
        states = [self.state[p] for p in params]
        grads = [p.grad for p in params]
        m = [s["exp_avg"] for s in states]
        v = [s["exp_avg_sq"] for s in states]
        if wd != 0:
            torch._foreach_add_(grads, params, alpha=wd)
        torch._foreach_lerp_(m, grads, 1 - beta1)  # beta1 m + (1 - beta1) g
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - beta2)
        bc1, bc2 = 1 - beta1 ** step, 1 - beta2 ** step
        if group["amsgrad"]:
            vmax = [s["max_exp_avg_sq"] for s in states]
            torch._foreach_maximum_(vmax, v)
            denom = torch._foreach_div(vmax, bc2)
        else:
            denom = torch._foreach_div(v, bc2)
        torch._foreach_sqrt_(denom)
        torch._foreach_add_(denom, eps)
        # p - lr (m / bc1) / denom, in one pass
        torch._foreach_addcdiv_(params, m, denom, value=-lr / bc1)

    @staticmethod
    def _manifold_step(p: Tensor, group: dict, state: dict) -> None:
        # geoopt's per-parameter update on the parameter's manifold
        beta1, beta2 = group["betas"]
        manifold = p.manifold
        grad = p.grad
        grad.add_(p, alpha=group["weight_decay"])
        grad = manifold.egrad2rgrad(p, grad)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).add_(manifold.component_inner(p, grad), alpha=1 - beta2)
        bc1, bc2 = 1 - beta1 ** state["step"], 1 - beta2 ** state["step"]
        if group["amsgrad"]:
            vmax = state["max_exp_avg_sq"]
            torch.max(vmax, exp_avg_sq, out=vmax)
            denom = vmax.div(bc2).sqrt_()
        else:
            denom = exp_avg_sq.div(bc2).sqrt_()
        direction = exp_avg.div(bc1) / denom.add_(group["eps"])
        new_point, exp_avg_new = manifold.retr_transp(p, -group["lr"] * direction, exp_avg)
        p.copy_(new_point)
        exp_avg.copy_(exp_avg_new)
