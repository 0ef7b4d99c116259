"""Label quality: what to check between labeling and training.

Labels are never perfect: people mistype class names, click the wrong button, disagree,
and the same picture arrives twice. Each check here answers one question:

- :func:`normalize_class_name`: is "Cat ", "cats" or "kitty" the class ``cat``?
- :func:`duplicate_groups`: which images are the same or nearly the same picture
  (perceptual hash within a Hamming distance)? Their labels should agree, and they
  must not straddle train and test.
- :func:`label_conflicts`, :func:`cohen_kappa`: where do two annotators disagree, and
  how much do they agree beyond chance?
- :func:`class_balance`: how many of each class, and which class weights undo it.
- :func:`find_label_issues`: which labels does a model, trained without ever seeing
  them (out-of-fold), find implausible? Confident learning via cleanlab.

The gallery that shows the suspects and fixes each in place, in the catalog, is a
labeling widget: :class:`helpers.labeling.review.ReviewGallery`.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from helpers.catalog import Catalog, CatalogError

# -- class names ----------------------------------------------------------------------


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", str(name).lower()).strip()


def normalize_class_name(
    raw: str, vocabulary: list[str], synonyms: dict[str, str] | None = None
) -> str:
    """Map a raw class name onto the controlled ``vocabulary``.

    Case, surrounding spaces and runs of spaces, underscores or hyphens are ignored,
    then ``synonyms`` ({variant: vocabulary name}) apply, then a plural "s" is dropped.
    Anything else raises :class:`CatalogError` naming the vocabulary, because a silent
    new class is how "Cat" and "cat" become two classes.
    """
    vocab = {_key(v): v for v in vocabulary}
    if len(vocab) != len(vocabulary):
        raise CatalogError(f"vocabulary {vocabulary!r} has names that differ only in case/spaces")
    syn = {_key(k): v for k, v in (synonyms or {}).items()}
    bad = sorted({v for v in syn.values() if v not in vocabulary})
    if bad:
        raise CatalogError(f"synonyms point to {bad}, which are not in the vocabulary")
    key = _key(raw)
    for candidate in (key, key[:-1] if key.endswith("s") else None):
        if candidate in vocab:
            return vocab[candidate]
        if candidate in syn:
            return syn[candidate]
    raise CatalogError(
        f"class name {raw!r} is not in the vocabulary {vocabulary}; add it or a synonym for it"
    )


def normalize_class_names(
    raw: list[str], vocabulary: list[str], synonyms: dict[str, str] | None = None
) -> list[str]:
    """:func:`normalize_class_name` for each; all names are checked before any is returned."""
    return [normalize_class_name(r, vocabulary, synonyms) for r in raw]


# -- duplicates -----------------------------------------------------------------------


def image_hashes(catalog: Catalog, image_ids, method: str = "phash") -> np.ndarray:
    """One 64-bit perceptual hash per image as a (n, 64) bool array.

    ``phash`` (DCT of a 32x32 grayscale copy) survives re-encoding, resizing and small
    brightness changes; ``dhash`` (gradients) is a cheaper alternative.
    """
    import imagehash
    from PIL import Image

    fn = {"phash": imagehash.phash, "dhash": imagehash.dhash}.get(method)
    if fn is None:
        raise ValueError(f"method must be 'phash' or 'dhash', not {method!r}")
    bits = []
    for image_id in image_ids:
        with Image.open(catalog.image_path(int(image_id))) as im:
            bits.append(np.asarray(fn(im.convert("L")).hash, dtype=bool).reshape(-1))
    return np.stack(bits) if bits else np.zeros((0, 64), dtype=bool)


def pixel_digests(catalog: Catalog, image_ids) -> list[str]:
    """A hash of the decoded pixels: equal for the same picture stored as PNG and BMP.

    The catalog already stores identical *bytes* once; this finds identical *pixels*
    in different files.
    """
    import hashlib

    out = []
    for image_id in image_ids:
        a = catalog.load_image(int(image_id), mode="RGB")
        out.append(hashlib.sha256(a.tobytes() + str(a.shape).encode()).hexdigest())
    return out


def duplicate_groups(
    catalog: Catalog, image_ids=None, max_distance: int = 4, method: str = "phash"
) -> list[list[int]]:
    """Groups (two or more image ids) of exact or near-duplicate images.

    Two images are linked when their pixels are identical or their perceptual hashes
    differ in at most ``max_distance`` of 64 bits; groups are the connected components
    of that graph (``scipy.sparse.csgraph.connected_components``), so a chain of
    near-copies forms one group. All pairs are compared, vectorised in blocks: about a
    second for a few thousand images.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ids = [r["id"] for r in catalog.images()] if image_ids is None else [int(i) for i in image_ids]
    rows, cols = [], []
    first: dict[str, int] = {}
    for k, digest in enumerate(pixel_digests(catalog, ids)):
        if digest in first:
            rows.append(first[digest])
            cols.append(k)
        else:
            first[digest] = k
    bits = image_hashes(catalog, ids, method).astype(np.uint8)
    for start in range(0, len(ids), 512):
        block = bits[start : start + 512]
        a, b = np.nonzero((block[:, None, :] != bits[None, :, :]).sum(axis=2) <= max_distance)
        keep = start + a < b
        rows += (start + a[keep]).tolist()
        cols += b[keep].tolist()
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(ids), len(ids)))
    _, component = connected_components(graph, directed=False)
    groups: dict[int, list[int]] = {}
    for k, image_id in enumerate(ids):
        groups.setdefault(int(component[k]), []).append(image_id)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


# -- annotators -----------------------------------------------------------------------


def _classes_by_image(catalog: Catalog, annotator: str) -> dict[int, str]:
    return {
        r["image_id"]: r["class_name"]
        for r in catalog.labels(annotator)
        if r["class_name"] is not None and r["status"] != "skipped"
    }


def label_conflicts(catalog: Catalog, annotators: list[str] | None = None) -> list[dict]:
    """Images where annotators gave different classes: ``{"image_id", "labels": {name: cls}}``."""
    annotators = annotators or catalog.annotators()
    by = {a: _classes_by_image(catalog, a) for a in annotators}
    ids = sorted(set().union(*[set(v) for v in by.values()])) if by else []
    out = []
    for image_id in ids:
        given = {a: by[a][image_id] for a in annotators if image_id in by[a]}
        if len(set(given.values())) > 1:
            out.append({"image_id": image_id, "labels": given})
    return out


def cohen_kappa(catalog: Catalog, a: str, b: str) -> tuple[float, int]:
    """Cohen's kappa between annotators ``a`` and ``b`` on the images both labeled, and n.

    kappa = (p_o - p_e) / (1 - p_e): observed agreement corrected for the agreement two
    annotators would reach by chance with their class frequencies. 1 is perfect, 0 is
    chance; above about 0.8 is usually called strong.
    """
    from sklearn.metrics import cohen_kappa_score

    la, lb = _classes_by_image(catalog, a), _classes_by_image(catalog, b)
    common = sorted(set(la) & set(lb))
    if len(common) < 2:
        raise CatalogError(f"{a!r} and {b!r} share fewer than 2 labeled images; label more")
    return float(cohen_kappa_score([la[i] for i in common], [lb[i] for i in common])), len(common)


def merge_annotators(
    catalog: Catalog, annotators: list[str], into: str = "final"
) -> dict[str, int]:
    """Write one label per image into annotator ``into``: agreed labels as ``labeled``.

    Where annotators disagree, the first annotator's class is kept with status
    ``unsure`` so the review finds it. Returns counts of agreed, conflicting and single.
    """
    if into in annotators:
        raise CatalogError(f"merge target {into!r} must not be one of the annotators merged")
    by = {a: _classes_by_image(catalog, a) for a in annotators}
    counts = Counter()
    for image_id in sorted(set().union(*[set(v) for v in by.values()])):
        given = [by[a][image_id] for a in annotators if image_id in by[a]]
        status = "labeled" if len(set(given)) == 1 else "unsure"
        if len(given) == 1:
            counts["single"] += 1
        else:
            counts["agreed" if status == "labeled" else "conflict"] += 1
        catalog.set_label(image_id, given[0], annotator=into, status=status, source="merge")
    return dict(counts)


def class_balance(labels: dict[int, str], classes: list[str]) -> dict[str, dict]:
    """Per class: count, share and the weight ``n / (k * count)`` for Keras ``class_weight``.

    scikit-learn's "balanced" weights (``k`` = classes with images): every class then
    contributes the same total weight to the loss, so a rare class is not ignored. A
    class with no images gets weight 0 (nothing to weight).
    """
    from sklearn.utils.class_weight import compute_class_weight

    counts = Counter(labels.values())
    unknown = set(counts) - set(classes)
    if unknown:
        raise CatalogError(f"labels hold classes {sorted(unknown)} missing from {classes}")
    n = sum(counts.values())
    present = [c for c in classes if counts.get(c)]
    weights = dict.fromkeys(classes, 0.0)
    if present:
        y = list(labels.values())
        balanced = compute_class_weight("balanced", classes=np.array(present), y=np.array(y))
        weights.update(zip(present, (float(w) for w in balanced), strict=True))
    return {
        c: {
            "count": counts.get(c, 0),
            "share": counts.get(c, 0) / n if n else 0.0,
            "weight": weights[c],
        }
        for c in classes
    }


# -- likely label errors --------------------------------------------------------------


def out_of_fold_probs(features: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0):
    """Predicted probabilities where each image's come from a model that never saw it.

    Confident learning needs these: a model scoring its own training labels would just
    agree with the errors it memorised.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    smallest = int(np.bincount(labels).min())
    folds = max(2, min(folds, smallest))
    model = LogisticRegression(max_iter=2000, C=0.5, random_state=seed)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(model, features, labels, cv=cv, method="predict_proba")


def find_label_issues(
    catalog: Catalog,
    annotator: str,
    image_ids=None,
    *,
    features: np.ndarray | None = None,
    folds: int = 5,
    seed: int = 0,
) -> list[dict]:
    """Likely wrong labels of ``annotator``, worst first.

    Each is ``{"image_id", "given", "suggested", "quality"}`` where ``quality`` is the
    out-of-fold probability of the given label (low = suspicious). cleanlab's
    ``find_label_issues`` estimates, per pair of classes, how often one is labeled as
    the other (the confident joint) and flags that many least-likely labels.
    ``features`` default to :func:`helpers.labeling.pixel_features`.
    """
    from cleanlab.filter import find_label_issues as cl_find

    from helpers.labeling.suggest import pixel_features

    labels = _classes_by_image(catalog, annotator)
    ids = sorted(labels) if image_ids is None else [int(i) for i in image_ids if int(i) in labels]
    classes = [c for c in catalog.classes() if c in {labels[i] for i in ids}]
    if len(classes) < 2:
        raise CatalogError("find_label_issues needs labels of at least 2 classes")
    index = {c: k for k, c in enumerate(classes)}
    y = np.array([index[labels[i]] for i in ids])
    if int(np.bincount(y, minlength=len(classes)).min()) < 2:
        raise CatalogError("every class needs at least 2 labeled images for out-of-fold checks")
    x = pixel_features(catalog, ids) if features is None else np.asarray(features)
    probs = out_of_fold_probs(x, y, folds, seed)
    ranked = cl_find(labels=y, pred_probs=probs, return_indices_ranked_by="self_confidence")
    return [
        {
            "image_id": ids[k],
            "given": classes[y[k]],
            "suggested": classes[int(np.argmax(probs[k]))],
            "quality": float(probs[k, y[k]]),
        }
        for k in ranked
    ]
