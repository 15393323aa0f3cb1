import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import transformers
from conftest import ROOT

import transformer
from labelless.sources import load_imdb
from labelless.store import load_checkpoint, save_checkpoint
from labelless.text import train_tokenizer


def batch(tok, texts):
    enc = tok(texts, truncation=True, padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def test_forward_shapes_and_loss(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    ids, mask = batch(tok, ["a great film", "boring and dull, a waste of time"])
    out = model(ids, attention_mask=mask, labels=torch.tensor([1, 0]))
    assert out.logits.shape == (2, 2)
    assert out.loss.ndim == 0 and out.loss.item() > 0
    assert model(ids).loss is None


def test_appended_padding_does_not_change_logits(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    ids, mask = batch(tok, ["a great and moving film"])
    pad = torch.full((1, 7), tok.pad_token_id)
    # Pad positions hold a real token id: only the mask may keep it out.
    junk = torch.full((1, 7), 10)
    with torch.no_grad():
        plain = model(ids, attention_mask=mask).logits
        padded = model(torch.cat([ids, pad], 1), attention_mask=torch.cat([mask, torch.zeros_like(pad)], 1)).logits
        junked = model(torch.cat([ids, junk], 1), attention_mask=torch.cat([mask, torch.zeros_like(pad)], 1)).logits
    torch.testing.assert_close(plain, padded, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(plain, junked, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(plain, model(torch.cat([ids, junk], 1)).logits, atol=1e-5)  # unmasked, it differs


def test_configs_of_another_pooling_are_refused():
    """Folders saved before the pooling became fixed name it: mean loads, anything else cannot run here."""
    assert transformer.TransformerConfig(pooling="mean").to_dict().get("pooling") is None
    with pytest.raises(ValueError, match="pooling other than mean"):
        transformer.TransformerConfig(pooling="mean_max")


def test_word_order_matters(tiny_model_and_tokenizer):
    """Position embeddings exist: the model is no bag of words."""
    model, tok = tiny_model_and_tokenizer
    ids, _ = batch(tok, ["great boring film awful wonderful"])
    with torch.no_grad():
        a = model(ids).logits
        b = model(ids.flip(1)).logits
    assert not torch.allclose(a, b, atol=1e-6)


def test_too_long_input_keeps_its_last_tokens(tiny_model_and_tokenizer):
    """Untruncated input is cropped like the tokenizer truncates: the first token ([CLS]) and the last max_len - 1."""
    model, _ = tiny_model_and_tokenizer
    L = model.config.max_len
    torch.manual_seed(0)
    long = torch.randint(5, 100, (1, L + 9))
    short = torch.randint(5, 100, (1, 10))
    ids = torch.cat([long, torch.cat([short, torch.zeros((1, L - 1), dtype=torch.long)], 1)])
    mask = torch.cat([torch.ones_like(long), torch.cat([torch.ones_like(short), torch.zeros((1, L - 1))], 1)]).long()
    with torch.no_grad():
        both = model(ids, attention_mask=mask).logits
        torch.testing.assert_close(both[0], model(torch.cat([long[:, :1], long[:, -(L - 1):]], 1)).logits[0],
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(both[1], model(short).logits[0], atol=1e-5, rtol=1e-5)


def test_sizes_and_param_counts():
    t = transformer.TransformerClassifier(transformer.TransformerConfig.from_size("teacher", vocab_size=1000))
    s = transformer.TransformerClassifier(transformer.TransformerConfig.from_size("student", vocab_size=1000))
    assert t.num_params() > t.num_params(non_embedding=True) > 0
    d_model, max_len = t.config.d_model, t.config.max_len
    assert t.num_params() - t.num_params(non_embedding=True) == (1000 + max_len) * d_model
    assert t.num_params(non_embedding=True) >= 10 * s.num_params(non_embedding=True)
    with pytest.raises(ValueError, match="unknown model size"):
        transformer.TransformerConfig.from_size("huge")
    with pytest.raises(ValueError, match="divisible"):
        transformer.TransformerConfig(d_model=10, n_head=3)


def test_save_load_round_trip_gives_identical_logits(tiny_model_and_tokenizer, tmp_path):
    model, tok = tiny_model_and_tokenizer
    folder = save_checkpoint(model, tok, tmp_path / "m", {"script": "test"})
    loaded, tok2, info = load_checkpoint(folder, "test.py")
    ids, mask = batch(tok2, ["a great film", "dull"])
    with torch.no_grad():
        assert torch.equal(model(ids, attention_mask=mask).logits, loaded(ids, attention_mask=mask).logits)
    assert info == {"script": "test"}
    assert type(loaded) is transformer.TransformerClassifier


def test_hf_pipeline_labels_reviews(tiny_model_and_tokenizer, tmp_path):
    model, tok = tiny_model_and_tokenizer
    folder = save_checkpoint(model, tok, tmp_path / "m", {})
    clf = transformers.pipeline("text-classification", model=str(folder), device="cpu")
    texts = ["A great, moving film.<br />Loved it.", "Awful. " * 500]
    out = clf(texts)
    with torch.no_grad():  # untruncated, as the pipeline passes it: the model keeps the end
        probs = [model(tok(t, return_tensors="pt")["input_ids"]).logits.softmax(-1)[0] for t in texts]
    for row, p in zip(out, probs):
        assert row["label"] in {"pos", "neg"}
        assert row["score"] == pytest.approx(p.max().item(), abs=1e-5)
        assert row["label"] == ("pos" if p.argmax() == 1 else "neg")


def test_saved_tiny_model_labels_real_reviews(real_imdb, tmp_path):
    """The issue's check: a tiny model saved with the project's checkpoint function loads with
    ``pipeline`` after ``import transformer`` and labels real IMDB reviews, long ones included."""
    train, test = load_imdb(real_imdb)
    texts = train.select(range(0, 25000, 250))["text"]
    tok = train_tokenizer(texts, vocab_size=2000, max_len=128)
    config = transformer.TransformerConfig.from_size("tiny", vocab_size=len(tok), max_len=128,
                                                     pad_token_id=tok.pad_token_id)
    folder = save_checkpoint(transformer.TransformerClassifier(config), tok, tmp_path / "tiny", {})
    reviews = list(test.select([0, 1, 12500, 24999])["text"]) + [max(test.select(range(2000))["text"], key=len)]
    out = transformers.pipeline("text-classification", model=str(folder), device="cpu")(reviews)
    assert len(out) == 5 and all(r["label"] in {"pos", "neg"} and 0.5 <= r["score"] <= 1 for r in out)


def ngram_model(buckets=97, **kw):
    torch.manual_seed(0)
    config = transformer.TransformerConfig.from_size("tiny", vocab_size=60, max_len=24, ngram_buckets=buckets, **kw)
    model = transformer.TransformerClassifier(config).eval()
    with torch.no_grad():
        model.ngram_emb.weight.mul_(50)  # loud enough that a changed n-gram shows in the logits
    return model


def test_ngram_hashing_is_the_same_in_every_process():
    ids = torch.tensor([[5, 17, 42, 9, 33, 2]])
    here = {order: transformer.hash_ngrams(ids, order, 1009, 0).tolist() for order in (2, 3)}
    code = ("import torch, transformer; ids = torch.tensor([[5, 17, 42, 9, 33, 2]]); "
            "print({o: transformer.hash_ngrams(ids, o, 1009, 0).tolist() for o in (2, 3)})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=os.environ | {"PYTHONHASHSEED": "123"}).stdout
    assert eval(out) == here
    assert all(0 <= b < 1009 for row in here[3] for b in row)
    # A position's bucket depends on the tokens before it, not after: appended tokens change no earlier bucket.
    longer = transformer.hash_ngrams(torch.tensor([[5, 17, 42, 9, 33, 2, 7, 8]]), 3, 1009, 0)
    assert longer[0, :6].tolist() == here[3][0]


def test_ngram_embeddings_read_local_word_order_and_ignore_padding():
    model = ngram_model()
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    swapped = torch.tensor([[5, 6, 8, 7, 9, 10]])
    with torch.no_grad():
        plain = model(ids).logits
        assert not torch.allclose(plain, model(swapped).logits, atol=1e-4)
        padded = model(torch.cat([ids, torch.full((1, 4), 11)], 1), attention_mask=torch.tensor([[1] * 6 + [0] * 4])).logits
    torch.testing.assert_close(plain, padded, atol=1e-5, rtol=1e-5)
    assert model.num_params() - model.num_params(non_embedding=True) == (60 + 24 + 97) * model.config.d_model


def test_a_model_with_ngrams_reloads_and_exports_with_identical_logits(tiny_model_and_tokenizer, tmp_path):
    from labelless.export import export_onnx

    _, tok = tiny_model_and_tokenizer
    config = transformer.TransformerConfig.from_size("tiny", vocab_size=len(tok), max_len=32, ngram_buckets=101,
                                                     pad_token_id=tok.pad_token_id)
    model = transformer.TransformerClassifier(config).eval()
    folder = save_checkpoint(model, tok, tmp_path / "m", {})
    loaded, tok2, _ = load_checkpoint(folder, "test.py")
    assert loaded.config.ngram_buckets == 101 and loaded.config.ngram_orders == [2, 3]
    ids, mask = batch(tok2, ["a great film", "dull and boring, a waste"])
    with torch.no_grad():
        expected = model(ids, attention_mask=mask).logits
        assert torch.equal(expected, loaded(ids, attention_mask=mask).logits)
    out = transformers.pipeline("text-classification", model=str(folder), device="cpu")(["a great film"])
    assert out[0]["score"] == pytest.approx(expected[0].softmax(-1).max().item(), abs=1e-5)
    import onnxruntime as ort

    export_onnx(model, tmp_path)
    onnx = ort.InferenceSession(str(tmp_path / "model.onnx")).run(None, {"input_ids": ids.numpy(),
                                                                       "attention_mask": mask.numpy()})[0]
    np.testing.assert_allclose(onnx, expected.numpy(), atol=1e-5)


def test_a_bag_of_ngrams_adds_its_logits_ignores_padding_and_reloads(tiny_model_and_tokenizer, tmp_path):
    _, tok = tiny_model_and_tokenizer
    torch.manual_seed(0)
    config = transformer.TransformerConfig.from_size("tiny", vocab_size=len(tok), max_len=32, bag_dim=4, bag_buckets=101,
                                                     pad_token_id=tok.pad_token_id)
    model = transformer.TransformerClassifier(config).eval()
    with torch.no_grad():
        model.bag.emb.weight.mul_(50)  # loud enough to show
    ids, mask = batch(tok, ["a great film", "dull and boring, a waste"])
    with torch.no_grad():
        logits = model(ids, attention_mask=mask).logits
        bag = model.bag(ids, mask.bool())
        model.bag.head.weight.zero_(), model.bag.head.bias.zero_()
        encoder = model(ids, attention_mask=mask).logits
        model.bag.head.load_state_dict(transformer.TransformerClassifier(config).bag.head.state_dict())
    torch.testing.assert_close(logits, encoder + bag)
    assert not torch.allclose(bag[0], bag[1])
    one, _ = batch(tok, ["a great film"])
    with torch.no_grad():
        padded = model.bag(torch.cat([one, torch.full((1, 3), tok.pad_token_id)], 1),
                           torch.tensor([[True] * one.shape[1] + [False] * 3]))
        torch.testing.assert_close(model.bag(one, torch.ones_like(one, dtype=torch.bool)), padded)
    assert model.num_params() - model.num_params(non_embedding=True) == \
        (len(tok) + 32) * config.d_model + (len(tok) + 101) * 4
    folder = save_checkpoint(model, tok, tmp_path / "m", {})
    loaded, _, _ = load_checkpoint(folder, "test.py")
    with torch.no_grad():
        assert torch.equal(model(ids, attention_mask=mask).logits, loaded(ids, attention_mask=mask).logits)


def test_the_bag_can_read_more_of_a_review_than_the_encoder(tiny_model_and_tokenizer, tmp_path):
    """``bag_max_len``: the bag reads the whole input, the encoder its first token and last ``max_len - 1``, in torch,
    after a reload, through ``pipeline`` and in the ONNX export (where the encoder's crop is part of the graph)."""
    from labelless.export import export_onnx

    _, tok = tiny_model_and_tokenizer
    torch.manual_seed(0)
    config = transformer.TransformerConfig.from_size("tiny", vocab_size=len(tok), max_len=8, bag_dim=4, bag_buckets=101,
                                                     bag_max_len=32, pad_token_id=tok.pad_token_id)
    model = transformer.TransformerClassifier(config).eval()
    with torch.no_grad():
        model.bag.emb.weight.mul_(50)  # loud enough to show
    tok.model_max_length = 32
    texts = ["a great film, moving and great, the best of the year, I loved it " * 2, "dull"]
    ids, mask = batch(tok, texts)
    assert ids.shape[1] > 8
    long = ids[:1, : int(mask[0].sum())]
    crop = torch.cat([long[:, :1], long[:, -7:]], 1)
    with torch.no_grad():
        logits = model(ids, attention_mask=mask).logits
        whole, cut = (model.bag(x, torch.ones_like(x, dtype=torch.bool)) for x in (long, crop))
        torch.testing.assert_close(logits[0], (model(crop).logits - cut + whole)[0])  # the encoder read the crop
        assert not torch.allclose(whole, cut)
        torch.testing.assert_close(logits[1:], model(ids[1:, : int(mask[1].sum())]).logits)  # a short one as it is
    folder = save_checkpoint(model, tok, tmp_path / "m", {})
    loaded, _, _ = load_checkpoint(folder, "test.py")
    assert loaded.config.bag_max_len == 32
    with torch.no_grad():
        assert torch.equal(logits, loaded(ids, attention_mask=mask).logits)
    out = transformers.pipeline("text-classification", model=str(folder), device="cpu")(texts[:1])
    assert out[0]["score"] == pytest.approx(logits[0].softmax(-1).max().item(), abs=1e-5)
    import onnxruntime as ort

    export_onnx(model, tmp_path)
    session = ort.InferenceSession(str(tmp_path / "model.onnx"))
    for rows in (slice(0, 2), slice(1, 2)):  # a batch longer than the encoder reads, and a short one
        n = int(mask[rows].sum(1).max())
        onnx = session.run(None, {"input_ids": ids[rows, :n].numpy(), "attention_mask": mask[rows, :n].numpy()})[0]
        np.testing.assert_allclose(onnx, logits[rows].numpy(), atol=1e-5)
