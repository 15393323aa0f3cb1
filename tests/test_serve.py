"""labelless.serve: the end-to-end path gives the saved tokenizer's ids and the model's labels, in order."""

import numpy as np
import pytest
import torch
from conftest import make_reviews

from labelless import UserError
from labelless.bar import fit_bar
from labelless.serve import load
from labelless.store import save_checkpoint
from labelless.text import make_normalizer, plain_lower

# Texts each normalizer step has work on: tags of several spellings, upper case, accents, control and
# whitespace characters, CJK, and long ones (tails).
MIXED = ["Great<br/>FILM<br    >ok", "<BR />Loud", "Café ÉLAN, naïve", "bad\x85 and\x96 worse", "tab\tnew\nline",
         "映画 good", "", "great " * 500, "a good film " * 30 + "<br />" * 200, "Ending: a ﬁne film!"]


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


def test_plain_texts_skip_the_normalizer_with_the_same_ids(folder, monkeypatch):
    """Printable ASCII is normalized in Python and tokenized without the normalizer; every other text goes
    through it. Either way the ids are the saved tokenizer's."""
    path, _, tok = folder
    served = load(path)
    assert served.plain_tokenizer is not None
    sent = []
    encode = served.plain_tokenizer.encode_batch_fast
    monkeypatch.setattr(served, "plain_tokenizer", type("Spy", (), {
        "encode_batch_fast": lambda self, batch: sent.extend(batch) or encode(batch)})())
    texts = MIXED + make_reviews(20, 3)[0]
    assert [x.tolist() for x in served.inputs(texts)] == tok(texts, truncation=True)["input_ids"]
    assert "great<br/>film<br    >ok" not in sent and "great film ok" in sent  # tags gone, lower case
    assert not any(t.startswith(("café", "bad", "tab", "映画")) for t in sent) and len(sent) > 20


def test_plain_lower_is_the_normalizer_on_printable_ascii():
    normalizer = make_normalizer()
    for text in MIXED + make_reviews(20, 4)[0]:
        plain = plain_lower(text)
        assert plain is None or plain == normalizer.normalize_str(text)
    assert plain_lower("Café") is None and plain_lower("a\tb") is None and plain_lower("A<br />B") == "a b"


def test_plain_lower_is_the_normalizer_on_every_imdb_training_review_it_takes(real_imdb):
    from labelless.sources import load_imdb

    normalizer = make_normalizer()
    texts = load_imdb(real_imdb)[0]["text"]
    plain = [plain_lower(t) for t in texts]
    assert all(p == normalizer.normalize_str(t) for p, t in zip(plain, texts) if p is not None)
    assert sum(p is not None for p in plain) > 0.8 * len(texts)


def test_a_tokenizer_with_another_normalizer_is_served_as_saved(folder, tmp_path):
    from tokenizers import normalizers

    _, model, tok = folder
    tok.backend_tokenizer.normalizer = normalizers.Lowercase()  # keeps accents: plain_lower would not hold
    served = load(save_checkpoint(model, tok, tmp_path / "other", {}))
    assert served.plain_tokenizer is None
    assert [x.tolist() for x in served.inputs(MIXED)] == tok(MIXED, truncation=True)["input_ids"]


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
