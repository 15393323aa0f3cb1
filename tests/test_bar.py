"""labelless.bar: the TF-IDF logistic regression, C chosen on validation, saved and loaded without pickle."""

import numpy as np
import pytest
from conftest import make_reviews, make_topics

from labelless.bar import BAR_CS, Bar, fit_bar
from labelless.fit import accuracy


@pytest.fixture(scope="module")
def data():
    texts, labels = make_reviews(200, 0)
    val_texts, val_labels = make_reviews(60, 1)
    return texts, np.array(labels), val_texts, np.array(val_labels)


def test_the_bar_learns_and_picks_c_on_validation(data, monkeypatch):
    texts, labels, val_texts, val_labels = data
    bar = fit_bar(texts, labels, val_texts, val_labels)
    assert bar.info["C"] in BAR_CS and set(bar.info["val_acc_per_C"]) == {str(c) for c in BAR_CS}
    assert bar.info["val_acc"] == max(bar.info["val_acc_per_C"].values()) >= 0.9
    assert accuracy(bar.logits(val_texts), val_labels) == bar.info["val_acc"]
    assert bar.info["n_labels"] == 200 and bar.info["n_features"] == len(bar.vectorizer.vocabulary_)
    weight = dict(zip(bar.vectorizer.get_feature_names_out(), bar.classifier.coef_[0]))
    assert weight["great"] > 0 > weight["awful"]  # the words of each class pull their way
    # The classifier kept is the best C's, not the last one tried.
    monkeypatch.setattr("labelless.bar.BAR_CS", (100.0, 1e-4))  # C = 1e-4 predicts one class: it cannot win
    assert fit_bar(texts, labels, val_texts, val_labels).info["C"] == 100.0


def test_a_saved_bar_loads_without_pickle_and_predicts_the_same(data, tmp_path):
    texts, labels, val_texts, val_labels = data
    bar = fit_bar(texts, labels, val_texts, val_labels)
    folder = bar.save(tmp_path / "bar")
    assert sorted(p.name for p in folder.iterdir()) == ["bar.safetensors", "training_info.json", "vocabulary.json"]
    assert not any(b"pickle" in p.read_bytes()[:200] for p in folder.iterdir())
    loaded = Bar.load(folder)
    odd = ["", "great great great", "unseen words only", "naïve café 映画"]
    np.testing.assert_array_equal(loaded.logits(val_texts + odd), bar.logits(val_texts + odd))
    assert loaded.info == bar.info


def test_a_damaged_bar_is_one_line(data, tmp_path):
    from labelless import UserError

    folder = fit_bar(*data).save(tmp_path / "bar")
    (folder / "bar.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(UserError, match=r"cannot read the bar at .*bar \(.*\): run `python training.py` again"):
        Bar.load(folder)


def test_more_than_two_classes_fit_save_and_load(tmp_path):
    _, texts, names = make_topics(150, 0)
    _, val_texts, val_names = make_topics(60, 1)
    classes = sorted(set(names))
    labels, val_labels = (np.array([classes.index(n) for n in ns]) for ns in (names, val_names))
    bar = fit_bar(texts, labels, val_texts, val_labels)
    assert bar.logits(val_texts).shape == (60, 3) and bar.info["val_acc"] >= 0.8
    loaded = Bar.load(bar.save(tmp_path / "bar"))  # a multinomial fit's weights are in Fortran order
    np.testing.assert_array_equal(loaded.logits(val_texts), bar.logits(val_texts))


def test_a_two_class_bar_saved_before_k_classes_still_loads(data, tmp_path):
    from safetensors.numpy import load_file, save_file

    texts, labels, val_texts, val_labels = data
    bar = fit_bar(texts, labels, val_texts, val_labels)
    folder = bar.save(tmp_path / "bar")
    weights = load_file(folder / "bar.safetensors")
    save_file(weights | {"coef": weights["coef"][0]}, folder / "bar.safetensors")  # as earlier versions wrote it
    np.testing.assert_array_equal(Bar.load(folder).logits(val_texts), bar.logits(val_texts))
