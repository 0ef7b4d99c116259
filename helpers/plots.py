"""The figures notebooks show: image grids first; training and evaluation figures join.

One function per kind of figure, so notebooks do not each carry a copy that drifts.
Every function draws with matplotlib and returns the figure (``plt.show()`` is the
caller's), which lets the runner save it and a test inspect it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _as_displayable(image) -> tuple[np.ndarray, dict]:
    """An image as imshow wants it, with the colour map and value range that fit it."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.dtype == np.uint8:
        limits = {"vmin": 0, "vmax": 255}
    elif image.size and image.min() >= 0 and image.max() > 1.5:  # floats in 0..255
        image, limits = np.clip(image, 0, 255).astype(np.uint8), {"vmin": 0, "vmax": 255}
    else:  # floats in [0, 1] (or any range, for a single-channel map)
        limits = {"vmin": 0.0, "vmax": 1.0} if image.ndim == 3 else {}
        if image.ndim == 3:
            image = np.clip(image, 0.0, 1.0)
    return image, {"cmap": "gray", **limits} if image.ndim == 2 else limits


def image_grid(
    images: Sequence,
    titles: Sequence[str] = (),
    *,
    cols: int = 8,
    size: float = 1.4,
    boxes: Sequence[Sequence[dict]] = (),
    max_images: int | None = None,
    title_size: int = 8,
    suptitle: str | None = None,
):
    """Draw ``images`` (uint8, or floats in [0, 1] or 0..255) in rows of ``cols``.

    ``titles`` label each image (long ones wrap, never silently cut); ``boxes[i]`` is a
    list of ``{"x0", "y0", "x1", "y1"[, "class_name"]}`` in pixel corners drawn on image
    ``i``. ``max_images`` caps how many are shown. Returns the figure.
    """
    import matplotlib.pyplot as plt

    images = list(images)[: max_images or None]
    if not images:
        raise ValueError("image_grid needs at least one image")
    cols = max(1, min(cols, len(images)))
    rows = (len(images) + cols - 1) // cols
    titles = [_wrap(str(t), size) for t in titles]
    lines = max((t.count("\n") + 1 for t in titles), default=1)
    title_height = 0.25 * lines * title_size / 8  # inches: wrapped titles never overlap
    # Constrained layout places the titles after imshow has made each panel square; tight
    # layout placed them before, and a one-line title ran into the image above it.
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(cols * size, rows * (size + title_height)),
        squeeze=False,
        layout="constrained",
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(images):
            continue
        image, style = _as_displayable(images[i])
        ax.imshow(image, interpolation="nearest", **style)
        if i < len(titles):
            ax.set_title(titles[i], fontsize=title_size)
        for b in boxes[i] if i < len(boxes) else ():
            ax.add_patch(
                plt.Rectangle(
                    (b["x0"] - 0.5, b["y0"] - 0.5),
                    b["x1"] - b["x0"],
                    b["y1"] - b["y0"],
                    fill=False,
                    color="red",
                    linewidth=1,
                )
            )
            if b.get("class_name"):
                ax.text(b["x0"], b["y0"] - 1, b["class_name"], color="red", fontsize=6)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def _wrap(text: str, size: float) -> str:
    """Wrap a title to the width of its panel (about 9 characters per inch at 8 pt)."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width=max(8, int(size * 9)))) or text


def learning_curves(histories: dict, *, metrics: Sequence[str] = ("loss", "accuracy")):
    """Training (solid) and validation (dashed) curves per epoch, one panel per metric.

    ``histories`` maps a run's name to its Keras ``history.history`` dict (or one such
    dict alone). A validation curve that turns up while the training one keeps falling
    is overfitting; two curves that stay far apart from the start, too little data.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if "loss" in histories:
        histories = {"": histories}
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for k, (name, history) in enumerate(histories.items()):
            colour = f"C{k}"
            for key, style in ((metric, "-"), (f"val_{metric}", "--")):
                values = history.get(key)
                if values:
                    label = f"{name} {'validation' if key.startswith('val_') else 'training'}"
                    epochs = range(1, len(values) + 1)
                    ax.plot(epochs, values, style, color=colour, label=label.strip())
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 2.5
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def lr_finder(result):
    """The learning-rate finder's sweep: smoothed loss against learning rate (log scale),
    the suggestion and the minimum marked (``result``: ``helpers.train.LRFinderResult``)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(result.learning_rates, result.losses)
    ax.set_xscale("log")
    ax.axvline(result.minimum, color="grey", linestyle=":", label=f"minimum {result.minimum:.2g}")
    ax.axvline(
        result.suggestion, color="C3", linestyle="--", label=f"suggested {result.suggestion:.2g}"
    )
    low, high = np.percentile(result.losses, [0, 90])
    ax.set_ylim(low - 0.05 * (high - low), high + 0.1 * (high - low))
    ax.set_xlabel("learning rate")
    ax.set_ylabel("smoothed training loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def confusion_matrix(matrix, class_names: Sequence[str], *, normalize: bool = True):
    """A confusion matrix (rows true, columns predicted) as a heat map with counts, or
    row fractions when ``normalize`` (each row then reads as the class's recall split)."""
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix, dtype=float)
    shown = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1) if normalize else matrix
    k = len(class_names)
    size = min(0.5 * k + 2, 12)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                text = f"{shown[i, j]:.2f}" if normalize else f"{int(matrix[i, j])}"
                colour = "white" if shown[i, j] > 0.6 * (shown.max() or 1) else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def top_losses(images, rows: Sequence[dict], *, cols: int = 8):
    """The images of ``helpers.evaluate.Evaluation.top_losses`` titled "true -> predicted
    (probability)": the model's most confident mistakes, often label errors."""
    titles = [f"{r['true']} -> {r['predicted']} ({r['probability']:.2f})" for r in rows]
    picked = [images[r["index"]] for r in rows]
    return image_grid(picked, titles, cols=cols, size=1.6, suptitle="top losses")


def bar_table(names: Sequence[str], values: Sequence[float], *, xlabel: str, ax=None):
    """Horizontal bars with their values written at the end: a step table at a glance."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.4 * len(names) + 1))
    positions = np.arange(len(names))[::-1]
    ax.barh(positions, values, color="C0")
    ax.set_yticks(positions, names, fontsize=8)
    for y, v in zip(positions, values, strict=True):
        ax.text(v, y, f" {v:.3f}", va="center", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.figure.tight_layout()
    return ax.figure


def class_counts(counts: dict[str, dict], classes: Sequence[str], *, title: str = ""):
    """Grouped bars: images per class for each group (``{group: {class: count}}``), e.g.
    one annotator's labels or the train/val/test splits, with each group's total in the
    legend, so a missing or starved class shows at a glance."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2.6))
    width = 0.8 / max(1, len(counts))
    positions = np.arange(len(classes))
    for k, (group, by_class) in enumerate(counts.items()):
        values = [by_class.get(c, 0) for c in classes]
        label = f"{group} ({sum(values)})"
        ax.bar(positions + (k - (len(counts) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(positions, [str(c) for c in classes])
    ax.set(xlabel="class", ylabel="images", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def heatmap_panels(groups: dict, *, cols: int = 4, size: float = 1.6, alpha: float = 0.45):
    """Heatmaps over their images, one block per group side by side (``{"correct": (images,
    heatmaps, titles), "wrong": (...)}``): each image, then it with the map in ``jet``
    on top, so what the model looked at is seen against what is there."""
    import matplotlib.pyplot as plt

    groups = {k: v for k, v in groups.items() if len(v[0])}
    if not groups:
        raise ValueError("heatmap_panels needs at least one group with images")
    rows = max((len(v[0]) + cols - 1) // cols for v in groups.values())
    fig = plt.figure(figsize=(len(groups) * cols * size, rows * (size + 0.35) + 0.4))
    for sub, (name, (images, heatmaps, titles)) in zip(
        np.atleast_1d(fig.subfigures(1, len(groups))), groups.items(), strict=True
    ):
        axes = sub.subplots(rows, cols, squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i >= len(images):
                continue
            image, style = _as_displayable(images[i])
            h, w = image.shape[:2]
            ax.imshow(image, interpolation="nearest", **style)
            ax.imshow(
                heatmaps[i], cmap="jet", alpha=alpha, vmin=0, vmax=1,
                extent=(-0.5, w - 0.5, h - 0.5, -0.5), interpolation="bilinear",
            )  # fmt: skip
            if i < len(titles):
                ax.set_title(_wrap(str(titles[i]), size), fontsize=7)
        sub.suptitle(name)
    return fig


def reliability_diagram(curves: dict, *, title: str = "reliability"):
    """Accuracy against confidence per bin for each ``{name: helpers.interpret.Reliability}``,
    with the diagonal a calibrated model follows and each curve's ECE in the legend; bars
    below show how many predictions each bin holds."""
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(4.6, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot([0, 1], [0, 1], color="gray", linestyle="--", linewidth=1, label="calibrated")
    width = None
    for k, (name, r) in enumerate(curves.items()):
        centers = (r.edges[:-1] + r.edges[1:]) / 2
        width = (r.edges[1] - r.edges[0]) / (len(curves) + 1)
        keep = r.counts > 0
        top.plot(
            r.confidence[keep], r.accuracy[keep], marker="o", label=f"{name} (ECE {r.ece:.3f})"
        )
        bottom.bar(centers + (k - (len(curves) - 1) / 2) * width, r.counts, width, label=name)
    top.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title=title)
    top.legend(fontsize=8)
    bottom.set(xlabel="confidence (top probability)", ylabel="predictions")
    fig.tight_layout()
    return fig


def labeling_curves(result, *, title: str = "accuracy against labels"):
    """Mean test accuracy (and the spread over seeds) against the number of labels, one
    line per strategy of a :class:`helpers.interpret.ActiveLearning` run."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for strategy, runs in result.accuracy.items():
        mean, spread = runs.mean(axis=0), runs.std(axis=0)
        ax.plot(result.labels, mean, marker=".", label=f"{strategy} order")
        ax.fill_between(result.labels, mean - spread, mean + spread, alpha=0.2)
    ax.set(xlabel="labels given", ylabel="test accuracy", title=title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
