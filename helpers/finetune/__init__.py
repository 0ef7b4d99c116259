"""Fine-tune a pretrained backbone on a few labels, and measure what the pretraining bought.

Notebook 08's room. The recipe, in the order the notebook teaches it:

1. **Load a backbone** (:func:`load_backbone`): the folder notebook 07 writes (a Keras
   model plus its model card, checked against the data: input size, channels,
   preprocessing), ImageNet weights through ``keras.applications`` (online, or a cached
   weights file; offline and uncached it fails within seconds naming the file to copy,
   :func:`imagenet_backbone`), or a weights file given by path.
2. **Attach a new head** (:func:`new_head`, on ``helpers.models.with_head``, the one
   head of the course: logits out): the preprocessing the card names goes *inside* the
   model, so the saved model predicts from raw pixels.
3. **Freeze, train the head; unfreeze the top blocks and train on with a learning rate
   10-100x lower** (:func:`set_backbone_trainable`, :func:`compile_classifier`),
   recompiling after every change of ``trainable`` (``compile`` snapshots which weights
   the optimizer updates). Full fine-tuning starts its head from the linear probe's
   solution (LP-FT, :func:`probe_head_weights`) rather than from random weights, and
   ends on the line between its start and its end (WiSE-FT, :func:`mix_weights`), at
   the point validation labels choose (:func:`wise_line`, :func:`choose_alpha`).
4. **BatchNorm.** Keras's own guide calls the base with ``training=False`` so that its
   BatchNormalization layers stay in inference mode when the base is unfrozen. In Keras
   3.15.1 that is not what happens in ``fit``: the moving mean and variance still change
   (keras-team/keras#20285; ``tests/test_finetune.py`` measures it and fails the day
   upstream changes it). What does hold is ``trainable=False`` on each
   BatchNormalization layer: a frozen BN layer runs in inference mode and updates no
   statistic, which :func:`set_backbone_trainable` sets whenever it unfreezes. With a
   few dozen images, statistics re-estimated on tiny batches would wreck the features
   the backbone learned on tens of thousands.
5. **Compare** (:func:`learning_curve`): training from scratch with the same
   architecture, a linear probe on frozen pooled features (scikit-learn), the head
   alone, full fine-tuning; over labels per class and seeds, on one test split. Every
   method gets the same augmentation (the probe as fixed views, :func:`probe_views`)
   and, for photos, the same flip test-time augmentation.
6. **Close the loop** (:func:`out_of_fold_losses`, :func:`reviewed_labels`): the
   training labels that models fine-tuned on the other folds find least plausible go
   to the review gallery of :mod:`helpers.labeling`, which you click at JupyterLab and
   :func:`review_by_code` clicks in a :func:`headless` run; a relabel is stored under
   the reviewer's name, next to the old label, and training again on the reviewed
   labels is measured.
7. **Export** (:func:`save_finetuned`): the model with its preprocessing and a card
   saying what it was fine-tuned on.

The data (:func:`photo_catalog`): the shipped CIFAR-10 photos of the target classes in
a catalog, labeled by simulated annotators with known error rates and split with the
archive's test photos as the test split, the way notebook 02 builds its own; training
reads your own labels (notebook 02's "you") where there are some. The fallback backbone
(:func:`pretrain_fallback`): notebook 07's ResNet at a small size, pretrained on
letters drawn in the fonts that ship with matplotlib, on cluttered colour backgrounds
(:func:`glyph_images`).

The model card's names, reader and check are :mod:`helpers.cards`'s (re-exported here),
shared with :mod:`helpers.pretrain`, which writes the backbone cards this package reads.

Modules: ``backbone`` (loading, checking, ImageNet; saving the fine-tuned model),
``steps`` (the head, the trainable switches, the methods and the learning curve),
``data`` (your labels as arrays, the generated data), ``review`` (top losses, reviewed
labels).
"""

from __future__ import annotations

from helpers.cards import (
    CARD_FIELDS,
    CARD_JSON,
    CARD_MD,
    MODEL_FILE,
    PREPROCESSING,
    BackboneError,
    CardMismatch,
    check_card,
    read_card,
    write_card,
)
from helpers.finetune.backbone import (
    Backbone,
    WeightsUnavailable,
    imagenet_backbone,
    load_backbone,
    model_input,
    save_finetuned,
)
from helpers.finetune.data import (
    LETTERS,
    PHOTOS,
    TRUTH,
    PhotoCatalog,
    Target,
    catalog_target,
    folder_target,
    glyph_images,
    photo_catalog,
    split_pool,
    to_arrays,
)
from helpers.finetune.review import (
    out_of_fold_losses,
    out_of_fold_probs,
    ranked_losses,
    reviewed_labels,
    top_losses,
)
from helpers.finetune.steps import (
    METHODS,
    PROBE_C,
    PROBE_SCALE_FLOOR,
    Recipe,
    backbone_blocks,
    bn_moving_stats,
    choose_alpha,
    clone_backbone,
    compile_classifier,
    features_of_each,
    fit_probe,
    learning_curve,
    linear_probe,
    metric_names,
    mix_weights,
    new_head,
    per_class_subset,
    pooled_features,
    pretrain_fallback,
    probe_head_weights,
    probe_training_set,
    probe_views,
    set_backbone_trainable,
    summarize,
    train_finetune,
    train_scratch,
    wise_line,
)
from helpers.labeling.review import HEADLESS_ENV, headless, review_by_code
from helpers.pretrain import save_backbone

__all__ = [
    "wise_line",
    "choose_alpha",
    "review_by_code",
    "ranked_losses",
    "out_of_fold_probs",
    "out_of_fold_losses",
    "headless",
    "HEADLESS_ENV",
    "CARD_FIELDS",
    "CARD_JSON",
    "CARD_MD",
    "LETTERS",
    "METHODS",
    "PHOTOS",
    "TRUTH",
    "MODEL_FILE",
    "PREPROCESSING",
    "PhotoCatalog",
    "Backbone",
    "BackboneError",
    "CardMismatch",
    "Recipe",
    "Target",
    "WeightsUnavailable",
    "backbone_blocks",
    "bn_moving_stats",
    "catalog_target",
    "check_card",
    "clone_backbone",
    "compile_classifier",
    "PROBE_C",
    "PROBE_SCALE_FLOOR",
    "features_of_each",
    "fit_probe",
    "folder_target",
    "glyph_images",
    "imagenet_backbone",
    "learning_curve",
    "linear_probe",
    "load_backbone",
    "metric_names",
    "mix_weights",
    "new_head",
    "model_input",
    "per_class_subset",
    "photo_catalog",
    "pooled_features",
    "pretrain_fallback",
    "probe_head_weights",
    "probe_training_set",
    "probe_views",
    "read_card",
    "reviewed_labels",
    "save_backbone",
    "save_finetuned",
    "set_backbone_trainable",
    "split_pool",
    "summarize",
    "top_losses",
    "to_arrays",
    "train_finetune",
    "train_scratch",
    "write_card",
]
