"""Which model notebook 09 ships (helpers.export.load_finetuned): notebook 08's fine-tuned
model when its folder holds one for the data's classes, else none and the reason."""

import json

import numpy as np
import pytest

from helpers import export as ex
from helpers.acquire.photos import TARGET_CLASSES
from helpers.finetune import save_finetuned
from helpers.finetune.backbone import Backbone
from helpers.quiet import keras


def _finetuned(folder, classes=TARGET_CLASSES):
    """A tiny model saved the way notebook 08 saves its own (helpers.finetune)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    features = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="backbone")
    classifier = keras.Sequential([features, keras.layers.Dense(len(classes))])
    card = {"name": "tiny", "input_size": [8, 8], "channels": 3, "preprocessing": "raw"}
    backbone = Backbone(features, card, "test")
    on = {"data": "test photos", "train_images": 50, "classes": list(classes)}
    save_finetuned(classifier, backbone, folder, class_names=list(classes), fine_tuned_on=on)
    return folder


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return _finetuned(tmp_path_factory.mktemp("08_finetune") / "model")


def test_ships_notebook_08s_model_when_it_exists(model_folder):
    model, why = ex.load_finetuned(model_folder, list(TARGET_CLASSES))
    assert model is not None and "notebook 08" in why and "50 labeled images" in why
    p = np.asarray(model(np.zeros((2, 32, 32, 3), np.float32)))  # any size: resized inside
    assert p.shape == (2, len(TARGET_CLASSES)) and np.allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_trains_its_own_when_notebook_08_has_not_run(tmp_path):
    model, why = ex.load_finetuned(tmp_path / "08_finetune" / "model", list(TARGET_CLASSES))
    assert model is None and "has not run" in why


def test_refuses_a_model_of_other_classes(model_folder):
    for other in (list(TARGET_CLASSES)[::-1], [str(k) for k in range(5)]):
        model, why = ex.load_finetuned(model_folder, other)
        assert model is None and why.startswith("refused") and "run notebook 08" in why


def test_a_card_that_disagrees_with_the_classes_file_is_an_error(tmp_path):
    folder = _finetuned(tmp_path / "model")
    card = json.loads((folder / "card.json").read_text())
    card["classes"] = ["a", "b", "c", "d", "e"]
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(ex.ExportError, match="run notebook 08 again"):
        ex.load_finetuned(folder, list(TARGET_CLASSES))


def test_a_model_without_its_classes_file_is_an_error(tmp_path):
    folder = _finetuned(tmp_path / "model")
    (folder / "model.classes.json").unlink()
    with pytest.raises(ex.ExportError, match="no classes file"):
        ex.load_finetuned(folder, list(TARGET_CLASSES))
