"""Label-quality checks find what was planted, and splits never leak a duplicate group."""

import io

import numpy as np
import pytest
from PIL import Image

from helpers.acquire.datasets import load_arrays
from helpers.catalog import Catalog, CatalogError
from helpers.labeling import ReviewGallery, headless, review_by_code
from helpers.quality import (
    class_balance,
    cohen_kappa,
    duplicate_groups,
    find_label_issues,
    label_conflicts,
    merge_annotators,
    normalize_class_name,
    normalize_class_names,
)
from helpers.splitting import leaks, split_catalog, stratified_group_split


def test_normalize_class_names():
    vocab = ["cat", "dog", "traffic light"]
    syn = {"kitty": "cat", "puppy": "dog"}
    raw = [" Cat", "CATS", "Traffic_Light", "traffic-lights", "kitty ", "Puppy"]
    assert normalize_class_names(raw, vocab, syn) == [
        "cat",
        "cat",
        "traffic light",
        "traffic light",
        "cat",
        "dog",
    ]
    with pytest.raises(CatalogError, match="not in the vocabulary"):
        normalize_class_name("horse", vocab, syn)
    with pytest.raises(CatalogError, match="synonyms point"):
        normalize_class_name("x", vocab, {"x": "horse"})
    with pytest.raises(CatalogError, match="differ only"):
        normalize_class_name("cat", ["Cat", "cat "], None)


@pytest.fixture(scope="module")
def digits_catalog(tmp_path_factory):
    """300 real digits labeled by 'truth', 'ana' (8% flipped) and 'ben' (independent 8%)."""
    root = tmp_path_factory.mktemp("digits")
    cat = Catalog(root)
    data = load_arrays("digits", limit=300, seed=0)
    cat.set_classes(data.class_names)
    rng = np.random.default_rng(0)
    ids, flipped = [], {"ana": set(), "ben": set()}
    for x, y in zip(data.x_train, data.y_train, strict=True):
        image_id, _ = cat.add_image_array(x, dataset="digits")
        ids.append(image_id)
        cat.set_label(image_id, data.class_names[y], annotator="truth")
        for who in ("ana", "ben"):
            given = int(y)
            if rng.random() < 0.08:
                given = int((y + rng.integers(1, 10)) % 10)
                flipped[who].add(image_id)
            cat.set_label(image_id, data.class_names[given], annotator=who)
    yield cat, ids, flipped
    cat.close()


def test_conflicts_kappa_and_merge(digits_catalog):
    cat, ids, flipped = digits_catalog
    conflicts = {c["image_id"] for c in label_conflicts(cat, ["ana", "ben"])}
    ana = {r["image_id"]: r["class_name"] for r in cat.labels("ana")}
    ben = {r["image_id"]: r["class_name"] for r in cat.labels("ben")}
    assert conflicts == {i for i in ids if ana[i] != ben[i]}
    assert conflicts <= flipped["ana"] | flipped["ben"] and len(conflicts) > 10
    kappa, n = cohen_kappa(cat, "ana", "ben")
    assert n == len(ids) and 0.7 < kappa < 0.95
    assert cohen_kappa(cat, "truth", "truth")[0] == 1.0
    counts = merge_annotators(cat, ["ana", "ben"], into="merged")
    assert counts["conflict"] == len(conflicts)
    assert {r["image_id"] for r in cat.labels("merged", status="unsure")} == conflicts
    with pytest.raises(CatalogError, match="fewer than 2"):
        cohen_kappa(cat, "ana", "nobody")


def test_confident_learning_finds_flipped_labels(digits_catalog):
    cat, ids, flipped = digits_catalog
    issues = find_label_issues(cat, "ana", seed=0)
    found = {i["image_id"] for i in issues}
    recall = len(found & flipped["ana"]) / len(flipped["ana"])
    precision = len(found & flipped["ana"]) / max(1, len(found))
    assert recall >= 0.6 and precision >= 0.5, (recall, precision)
    truth = {r["image_id"]: r["class_name"] for r in cat.labels("truth")}
    right = [
        i["suggested"] == truth[i["image_id"]] for i in issues if i["image_id"] in flipped["ana"]
    ]
    assert np.mean(right) >= 0.7
    qualities = [i["quality"] for i in issues]
    assert qualities == sorted(qualities)  # worst first


def test_review_gallery_fixes_in_place(digits_catalog, tmp_path):
    cat, ids, flipped = digits_catalog
    issues = find_label_issues(cat, "ben", seed=0)[:5]
    gallery = ReviewGallery(cat, issues, annotator="ben")
    first, second, third = issues[:3]
    gallery.cards[first["image_id"]]["accept"].click()
    gallery.cards[second["image_id"]]["keep"].click()
    card = gallery.cards[third["image_id"]]
    card["menu"].value = "7"
    card["set"].click()
    got = {r["image_id"]: (r["class_name"], r["source"]) for r in cat.labels("ben")}
    assert got[first["image_id"]] == (first["suggested"], "review")
    assert got[second["image_id"]] == (second["given"], "review")
    assert got[third["image_id"]] == ("7", "review")
    assert "course-review-gallery" in gallery.root._dom_classes
    text = gallery.cards[first["image_id"]]["issue"]["quality"]
    assert f"= {text:.2f}" in gallery.root.children[2].children[0].children[1].value
    assert "probability for the given label" in gallery.header.value
    gallery.freeze("reviewed by a script")
    assert gallery.cards[first["image_id"]]["set"].disabled


def test_review_gallery_offers_the_classes_of_the_data_set_under_review(tmp_path):
    cat = Catalog(tmp_path)
    data = load_arrays("digits", limit=120, seed=1)
    cat.set_classes(data.class_names)
    cat.set_classes(["circle", "square"])  # another data set's classes in the same catalog
    ids = []
    for k, (x, y) in enumerate(zip(data.x_train, data.y_train, strict=True)):
        ids.append(cat.add_image_array(x, dataset="digits")[0])
        given = (int(y) + 1) % 10 if k % 15 == 0 else int(y)
        cat.set_label(ids[-1], data.class_names[given], annotator="ben")
    shape = cat.add_image_array(np.full((8, 8, 3), 99, np.uint8), dataset="shapes")[0]
    cat.set_label(shape, "circle", annotator="ben")
    issues = find_label_issues(cat, "ben", ids, seed=0)[:3]
    gallery = ReviewGallery(cat, issues, annotator="ben")
    digits = [c for c in cat.classes() if c not in ("circle", "square")]
    assert gallery.classes == digits
    assert list(gallery.cards[issues[0]["image_id"]]["menu"].options) == digits
    with pytest.raises(CatalogError, match="lack"):
        ReviewGallery(cat, issues, annotator="ben", classes=["circle"])
    reviewer = ReviewGallery(cat, issues, annotator="ann")  # ann reviews ben's labels
    assert reviewer.classes == digits
    first = issues[0]
    card = reviewer.cards[first["image_id"]]
    card["menu"].value = next(c for c in digits if c not in (first["given"], first["suggested"]))
    card["set"].click()
    assert cat.label_of(first["image_id"], "ann")["source"] == "review"
    assert cat.label_of(first["image_id"], "ben")["class_name"] == first["given"]


def _png(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="BMP")
    return buf.getvalue()


def test_duplicate_groups_exact_and_near(tmp_path):
    cat = Catalog(tmp_path)
    rng = np.random.default_rng(3)
    originals = []
    for _ in range(6):
        base = rng.integers(0, 255, (8, 8), dtype=np.uint8)
        big = np.kron(base, np.ones((8, 8), np.uint8))  # 64x64 blocky pictures
        originals.append(big)
    ids = [cat.add_image_array(a)[0] for a in originals]
    exact, _ = cat.add_image_bytes(_png(originals[0]))  # same pixels, other file format
    brighter = np.clip(originals[1].astype(int) + 6, 0, 255).astype(np.uint8)
    near, _ = cat.add_image_array(brighter)
    chain, _ = cat.add_image_array(np.clip(brighter.astype(int) + 6, 0, 255).astype(np.uint8))
    groups = duplicate_groups(cat, max_distance=4)
    assert sorted(groups) == [[ids[0], exact], [ids[1], near, chain]]
    assert duplicate_groups(cat, ids) == []


def test_class_balance_weights():
    labels = {1: "a", 2: "a", 3: "a", 4: "b"}
    bal = class_balance(labels, ["a", "b", "c"])
    assert bal["a"]["count"] == 3 and bal["c"]["weight"] == 0.0
    assert bal["b"]["weight"] == pytest.approx(4 / (2 * 1))  # n / (classes with images * count)
    total = sum(v["count"] * v["weight"] for v in bal.values() if v["count"])
    assert total == pytest.approx(len(labels))
    assert bal["a"]["count"] * bal["a"]["weight"] == pytest.approx(total / 2)
    with pytest.raises(CatalogError, match="missing"):
        class_balance({1: "z"}, ["a"])


def test_stratified_group_split_is_reproducible_and_leak_free():
    labels = {i: ["a", "b", "c"][i % 3] if i < 270 else "d" for i in range(300)}
    groups = [list(range(k, k + 4)) for k in range(0, 120, 4)]  # 30 groups of 4
    s1 = stratified_group_split(labels, groups, (0.6, 0.2, 0.2), seed=7)
    assert s1 == stratified_group_split(labels, groups, (0.6, 0.2, 0.2), seed=7)
    assert s1 != stratified_group_split(labels, groups, (0.6, 0.2, 0.2), seed=8)
    assert set(s1) == set(labels) and leaks(s1, groups) == []
    for cls in "abcd":
        members = [i for i in labels if labels[i] == cls]
        share = np.mean([s1[i] == "test" for i in members])
        assert 0.1 <= share <= 0.3, (cls, share)
    with pytest.raises(CatalogError, match="fractions"):
        stratified_group_split(labels, groups, (0.5, 0.5, 0.5))


def test_split_catalog_stores_the_split(digits_catalog):
    cat, ids, _ = digits_catalog
    groups = [ids[:10], ids[10:13]]
    assignment = split_catalog(cat, "truth", groups, seed=1)
    assert cat.splits() == assignment and leaks(assignment, groups) == []
    assert {cat.splits()[i] for i in ids[:10]} == {assignment[ids[0]]}


def test_a_headless_run_is_one_where_nobody_can_click():
    assert not headless({})  # a kernel JupyterLab starts
    for name in ("CI", "COURSE_RESULTS_FILE", "PYTEST_VERSION"):
        assert headless({name: "1"}), name


def test_review_by_code_clicks_as_a_reader_who_knows_the_truth(digits_catalog):
    cat, ids, flipped = digits_catalog
    issues = find_label_issues(cat, "ben", seed=0)[:6]
    truth = {i["image_id"]: i["suggested"] for i in issues[:2]}  # two were wrong
    truth[issues[2]["image_id"]] = next(
        c for c in "0123456789" if c not in (issues[2]["given"], issues[2]["suggested"])
    )  # wrong, and the model's suggestion is wrong too
    gallery = ReviewGallery(cat, issues, annotator="ben")
    wrong = review_by_code(gallery, issues, truth)
    got = {r["image_id"]: r["class_name"] for r in cat.labels("ben")}
    assert wrong == sum(truth.get(i["image_id"], i["given"]) != i["given"] for i in issues)
    for issue in issues:
        assert got[issue["image_id"]] == truth.get(issue["image_id"], issue["given"])
    assert all(card["set"].disabled for card in gallery.cards.values())
