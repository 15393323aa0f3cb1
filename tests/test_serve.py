"""labelless.serve: the end-to-end path gives the saved tokenizer's ids and the model's labels, in order."""

import numpy as np
import pytest
import torch
from conftest import make_reviews

from labelless import UserError
from labelless.bar import fit_bar
from labelless.serve import load
from labelless.store import save_checkpoint


@pytest.fixture
def folder(tiny_model_and_tokenizer, tmp_path):
    model, tok = tiny_model_and_tokenizer
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return save_checkpoint(model, tok, tmp_path / "student", {}, onnx=True), model, tok


@pytest.mark.parametrize("runtime", ["torch", "onnx", "onnx-int8"])
def test_predict_gives_the_models_labels_in_the_order_sent(folder, runtime):
    path, model, tok = folder
    texts = make_reviews(40, 5)[0] + ["", "great " * 500, "a good film " * 30 + "<br />" * 200]  # and tails
    served = load(path, runtime)
    ids = served.inputs(texts)
    assert [x.tolist() for x in ids] == tok(texts, truncation=True)["input_ids"]  # the saved tokenizer's ids
    with torch.no_grad():
        expected = np.array([model(torch.tensor(x)[None]).logits.argmax(-1).item() for x in ids])
    got = served.predict(texts)
    agree = (got == expected).mean()
    assert agree == 1.0 if runtime != "onnx-int8" else agree >= 0.9
    assert served.clock["prepare"] > 0 and served.clock["model"] > 0


def test_a_missing_onnx_copy_names_the_fix(tiny_model_and_tokenizer, tmp_path):
    model, tok = tiny_model_and_tokenizer
    path = save_checkpoint(model, tok, tmp_path / "student", {})
    with pytest.raises(UserError, match=r"no model.onnx in .*student: run `python -m labelless.export .*`.*--runtime torch"):
        load(path, "onnx")


def test_the_bar_is_served_too(tmp_path):
    texts, labels = make_reviews(100, 0)
    bar = fit_bar(texts, labels, *make_reviews(40, 1))
    bar.save(tmp_path / "bar")
    served = load(tmp_path / "bar")
    test = make_reviews(30, 2)[0]
    np.testing.assert_array_equal(served.predict(test), bar.logits(test).argmax(1))
    assert served.runtime == "sklearn"
