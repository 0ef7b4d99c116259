"""The optimizer notebook 07 pretrains with."""

from __future__ import annotations


def make_optimizer(peak_lr: float, total_steps: int, *, warmup: float = 0.1, weight_decay=5e-4):
    """SGD with Nesterov momentum on a linear warm-up then linear decay
    (``helpers.train.WarmupDecay``), the fast CIFAR trainers' schedule."""
    from helpers.train import WarmupDecay
    from helpers.train import make_optimizer as optimizer

    schedule = WarmupDecay(peak_lr, max(total_steps, 1), warmup, kind="linear")
    return optimizer("sgd", schedule, weight_decay=weight_decay)
