"""Try the shipped model on a photo of your own: an upload widget (notebook 09's end).

A model is only worth shipping if someone can use it: fastbook ends its chapter 2 with a
deployed app. :class:`PhotoClassifier` is the smallest such app inside the notebook: a
person uploads a photo (``ipywidgets.FileUpload``) and sees the model's classes with
their probabilities and the Grad-CAM map of the top class over the photo, with a colour
bar. The upload goes through the course's one image gate (:mod:`helpers.images`: format
sniffed, size limits, EXIF orientation), so a file that is not an image, or is corrupt,
shows the gate's reason in the widget and nothing raises. The same path runs without a
browser: :meth:`PhotoClassifier.classify_bytes` is what an upload calls, so nbval and the
unit tests feed it bytes and read :attr:`PhotoClassifier.result`.

The map uses ``inferno``, a perceptually uniform colormap: equal steps in the map's value
look like equal steps in brightness, which ``jet`` does not give (its bright yellow and
cyan bands suggest edges that the values do not have).
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass

import numpy as np

from helpers.images import ImageRejected, check_image_bytes, decode_pixels
from helpers.interpret.gradcam import grad_cam
from helpers.predict import check_model

CMAP = "inferno"
DISPLAY_SIDE = 384  # longest side of the photo the widget shows and explains, in pixels


@dataclass
class PhotoResult:
    """What the model made of one uploaded photo: the photo as shown (uint8, at most
    :data:`DISPLAY_SIDE` a side), the probability of each class (the model's order), the
    Grad-CAM map of the top class at the photo's size, in [0, 1]."""

    name: str
    pixels: np.ndarray
    probabilities: dict[str, float]
    heatmap: np.ndarray

    @property
    def top(self) -> str:
        return max(self.probabilities, key=self.probabilities.get)


def shrink(pixels: np.ndarray, side: int = DISPLAY_SIDE) -> np.ndarray:
    """``pixels`` with its longest side at most ``side`` (aspect kept): a phone photo of
    12 megapixels is resized inside the model anyway, and its gradients need not be held."""
    from PIL import Image

    h, w = pixels.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return pixels
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    image = Image.fromarray(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels)
    small = np.asarray(image.resize(size, Image.Resampling.BILINEAR))
    return small.reshape(size[1], size[0], pixels.shape[-1])


def explain_photo(model, class_names, data: bytes, name: str = "photo", *, layer=None):
    """Decode ``data`` through the image gate and classify and explain it with ``model``:
    a :class:`PhotoResult`. Raises :class:`helpers.images.ImageRejected` with the reason
    for bytes that are no usable image."""
    channels = int(model.input_shape[-1])
    pixels = shrink(decode_pixels(check_image_bytes(bytes(data)).data, channels))
    heatmaps, probabilities = grad_cam(model, pixels[None], layer=layer, size=pixels.shape[:2])
    names = [str(n) for n in class_names]
    return PhotoResult(
        name, pixels, dict(zip(names, map(float, probabilities[0]), strict=True)), heatmaps[0]
    )


def render(result: PhotoResult) -> bytes:
    """PNG bytes of the photo beside it with the map on top, and the map's colour bar."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure  # no pyplot: the notebook's own figures stay apart

    fig = Figure(figsize=(6.4, 3.0), dpi=100, layout="constrained")
    plain, overlay = fig.subplots(1, 2)
    gray = result.pixels.shape[-1] == 1
    shown = result.pixels.squeeze(-1) if gray else result.pixels
    style = {"cmap": "gray", "vmin": 0, "vmax": 255} if gray else {}
    plain.imshow(shown, **style)
    plain.set_title(_shorten(result.name), fontsize=9)
    overlay.imshow(shown, **style)
    overlay.imshow(result.heatmap, cmap=CMAP, alpha=0.5, vmin=0, vmax=1)
    overlay.set_title(f"where it sees {result.top!r}", fontsize=9)
    for ax in (plain, overlay):
        ax.axis("off")
    # The bar in full colour: the overlay's transparency would grey it.
    bar = fig.colorbar(ScalarMappable(Normalize(0, 1), CMAP), ax=overlay, shrink=0.85)
    bar.set_label("Grad-CAM, share of this photo's peak", fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def probability_table(result: PhotoResult) -> str:
    """HTML lines, most probable class first, each with a bar as long as its probability."""
    rows = []
    for name, p in sorted(result.probabilities.items(), key=lambda kv: -kv[1]):
        weight = "bold" if name == result.top else "normal"
        rows.append(
            f'<div class="course-upload-row" style="font-weight:{weight}">'
            f'<span style="display:inline-block;width:8em">{html.escape(name)}</span>'
            f'<span style="display:inline-block;width:{200 * p:.0f}px;height:0.8em;'
            f'background:#4c72b0"></span> <span class="course-upload-p">{p:.3f}</span></div>'
        )
    return "".join(rows)


class PhotoClassifier:
    """Upload a photo, see the model's classes, probabilities and Grad-CAM map.

    ``model``: a Keras classifier that takes raw pixels (the course's models resize
    inside) and ends in a softmax; ``class_names``: its classes in output order;
    ``layer``: the Grad-CAM feature layer (default the last spatial one). Show it as a
    notebook cell's last expression. The last photo's :class:`PhotoResult` is
    :attr:`result` (None after a refused file), the line shown is :attr:`message`.
    """

    def __init__(self, model, class_names, *, layer: str | None = None):
        import ipywidgets as widgets

        check_model(model, list(class_names), "the model to try")
        self.model, self.class_names, self.layer = model, list(class_names), layer
        self.result: PhotoResult | None = None
        self.upload = widgets.FileUpload(
            accept="image/*", multiple=False, description="Upload a photo",
            layout=widgets.Layout(width="max-content"),
        )  # fmt: skip
        self.upload.add_class("course-upload-button")
        self.upload.observe(self._uploaded, names="value")
        self.status = widgets.HTML(
            f"Upload a photo; the model knows only {', '.join(map(str, self.class_names))}, "
            "so a photo of anything else still gets one of them."
        )
        self.status.add_class("course-upload-message")
        self.table = widgets.HTML()
        self.table.add_class("course-upload-table")
        self.figure = widgets.Image(format="png", layout=widgets.Layout(display="none"))
        self.figure.add_class("course-upload-figure")
        self.root = widgets.VBox([self.upload, self.status, self.table, self.figure])
        self.root.add_class("course-upload")

    @property
    def message(self) -> str:
        return self.status.value

    def _uploaded(self, change) -> None:
        for item in change["new"]:  # ipywidgets 8: a tuple of {"name", "content", ...}
            self.classify_bytes(bytes(item["content"]), str(item.get("name", "photo")))

    def classify_bytes(self, data: bytes, name: str = "photo") -> PhotoResult | None:
        """What an upload runs: classify and explain ``data``, show it, return the result;
        for bytes that are no usable image, show why and return None."""
        try:
            self.result = explain_photo(self.model, self.class_names, data, name, layer=self.layer)
        except ImageRejected as exc:
            self.result = None
            self.status.value = (
                f"<b>{html.escape(_shorten(name))}</b> was not classified: {html.escape(str(exc))}."
                " Upload a photo (JPEG, PNG, WebP, ...)."
            )
            self.table.value = ""
            self.figure.layout.display = "none"
            return None
        self.status.value = (
            f"<b>{html.escape(_shorten(name))}</b>: {html.escape(self.result.top)} "
            f"({self.result.probabilities[self.result.top]:.2f})"
        )
        self.table.value = probability_table(self.result)
        self.figure.value = render(self.result)
        self.figure.layout.display = None
        return self.result

    def _repr_mimebundle_(self, **kwargs):
        return self.root._repr_mimebundle_(**kwargs)
