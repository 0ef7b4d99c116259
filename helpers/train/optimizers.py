"""The one optimizer factory (:func:`make_optimizer`) and the one ``compile`` of a classifier
(:func:`compile_model`), for notebook 06's :func:`~helpers.train.fit`, 07's custom
loop and 08's fine-tuning alike."""

from __future__ import annotations

from helpers.quiet import keras
from helpers.train.schedules import make_schedule

OPTIMIZERS = ("sgd", "adam", "adamw")


def make_optimizer(
    name: str,
    learning_rate,
    *,
    weight_decay: float | None = None,
    total_steps: int | None = None,
    schedule: str = "linear",
    warmup: float = 0.2,
):
    """``"sgd"`` (Nesterov momentum 0.9, the fast CIFAR trainers' choice), ``"adam"`` or
    ``"adamw"`` (``weight_decay`` 0.01 unless given).

    ``learning_rate`` is a float or a schedule. A float with ``total_steps`` becomes the
    peak of :func:`~helpers.train.make_schedule` (``schedule`` ``"linear"`` or
    ``"cosine"``, ``warmup`` a fraction of the steps) over those steps; without
    ``total_steps`` it stays constant.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be 'sgd', 'adam' or 'adamw', not {name!r}")
    if total_steps is not None and isinstance(learning_rate, int | float):
        learning_rate = make_schedule(
            learning_rate, max(int(total_steps), 1), warmup=warmup, kind=schedule
        )
    if name == "sgd":
        return keras.optimizers.SGD(
            learning_rate=learning_rate, momentum=0.9, nesterov=True, weight_decay=weight_decay
        )
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate, weight_decay=weight_decay)
    return keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay or 0.01)


def compile_model(
    model,
    optimizer,
    *,
    label_smoothing: float = 0.0,
    from_logits: bool = False,
    sparse_labels: bool = False,
    jit_compile: bool | str = "auto",
):
    """``model.compile`` with a cross-entropy and accuracy; returns ``model``.

    One-hot labels (``sparse_labels=False``, what :func:`~helpers.train.fit` feeds) take
    ``label_smoothing``; ``SparseCategoricalCrossentropy`` has no such argument, so
    integer labels (``sparse_labels=True``) refuse it. ``from_logits`` for a model whose
    last layer has no softmax. ``jit_compile`` goes to ``compile`` as given (``"auto"``
    is off on CPUs and under every distribution strategy).
    """
    if sparse_labels:
        if label_smoothing:
            raise ValueError("label smoothing needs one-hot labels: sparse_labels=False")
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    else:
        loss = keras.losses.CategoricalCrossentropy(
            from_logits=from_logits, label_smoothing=label_smoothing
        )
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], jit_compile=jit_compile)
    return model
