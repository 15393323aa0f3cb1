"""labelless.serve: the end-to-end path gives the saved tokenizer's ids and the model's labels, in order."""

import numpy as np
import pytest
import torch
from conftest import make_reviews

from labelless import UserError
from labelless.bar import fit_bar
from labelless.serve import load
from labelless.store import save_checkpoint
from labelless.text import AsciiWordPiece, is_plain_ascii

# Texts each normalizer and pre-tokenizer step has work on: tags of several spellings, upper case, runs of
# punctuation, digits, underscores, accents, control and whitespace characters, CJK, and long ones (tails).
MIXED = ["Great<br/>FILM<br    >ok", "<BR />Loud!!!", "10/10, $5... e-mail_me ;-)", "Café ÉLAN, naïve",
         "bad\x85 and\x96 worse", "tab\tnew\nline\r", "bell\x07 del\x7f", "映画 good", "",
         "great " * 500, "a good film " * 30 + "<br />" * 200, "Ending: a ﬁne film!"]


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


def test_plain_ascii_goes_to_the_ascii_copy_and_gets_the_same_ids(folder, monkeypatch):
    path, _, tok = folder
    served = load(path)
    sent, encode = [], served.ascii_tokenizer.encode
    monkeypatch.setattr(served, "ascii_tokenizer", type("Spy", (), {
        "encode": lambda self, text: sent.append(text) or encode(text)})())
    texts = MIXED + make_reviews(20, 3)[0]
    assert [x.tolist() for x in served.inputs(texts)] == tok(texts, truncation=True)["input_ids"]
    assert "Great<br/>FILM<br    >ok" in sent and "tab\tnew\nline\r" in sent and len(sent) > 20
    assert not any(t.startswith(("Café", "bad", "bell", "映画", "Ending")) for t in sent)


def test_the_ascii_copy_splits_every_ascii_character_as_the_tokenizer_does(tiny_model_and_tokenizer):
    """Random strings over all of ASCII, tags and the characters BERT's normalizer deletes included: the
    copy agrees with the saved tokenizer wherever ``is_plain_ascii`` sends a text to it."""
    tok = tiny_model_and_tokenizer[1].backend_tokenizer
    tok.enable_truncation(64, direction="left")
    copy = AsciiWordPiece.of(tok, 64)
    rng = np.random.default_rng(0)
    printable, control = [chr(c) for c in range(32, 127)], [chr(c) for c in [*range(32), 127]]
    alphabet = printable * 4 + control + ["<br />", "<br>", "  ", "Film"] * 8
    texts = ["".join(rng.choice(alphabet, rng.integers(1, 60))) for _ in range(3000)]
    texts += [f"a{chr(c)}b {chr(c)}{chr(c)}x" for c in range(128)]
    plain = [t for t in texts if is_plain_ascii(t)]
    assert 500 < len(plain) < 2800 and not is_plain_ascii("a\x0bb") and is_plain_ascii("a\tb")
    assert [copy.encode(t)[0].tolist() for t in plain] == [e.ids for e in tok.encode_batch(plain)]


def test_the_ascii_copy_gives_every_plain_imdb_training_review_the_same_ids(real_imdb, tiny_model_and_tokenizer):
    from labelless.sources import load_imdb

    tok = tiny_model_and_tokenizer[1].backend_tokenizer
    tok.enable_truncation(512, direction="left")
    texts = [t for t in load_imdb(real_imdb)[0]["text"] if is_plain_ascii(t)]
    assert len(texts) > 20000
    copy = AsciiWordPiece.of(tok, 512)
    assert [copy.encode(t)[0].tolist() for t in texts] == [e.ids for e in tok.encode_batch_fast(texts)]


@pytest.mark.parametrize("step", ["normalizer", "pre_tokenizer"])
def test_a_tokenizer_with_other_steps_is_served_as_saved(folder, tmp_path, step):
    from tokenizers import normalizers, pre_tokenizers

    _, model, tok = folder
    other = {"normalizer": normalizers.Lowercase(), "pre_tokenizer": pre_tokenizers.Whitespace()}[step]
    setattr(tok.backend_tokenizer, step, other)  # the ASCII copy's ids would differ
    served = load(save_checkpoint(model, tok, tmp_path / "other", {}))
    assert served.ascii_tokenizer is None
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
