import pytest
import torch
import transformers

import transformer
from labelless.data import load_imdb
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
    """Untruncated input is cropped like the tokenizer truncates: the last max_len real tokens."""
    model, _ = tiny_model_and_tokenizer
    L = model.config.max_len
    torch.manual_seed(0)
    long = torch.randint(5, 100, (1, L + 9))
    short = torch.randint(5, 100, (1, 10))
    ids = torch.cat([long, torch.cat([short, torch.zeros((1, L - 1), dtype=torch.long)], 1)])
    mask = torch.cat([torch.ones_like(long), torch.cat([torch.ones_like(short), torch.zeros((1, L - 1))], 1)]).long()
    with torch.no_grad():
        both = model(ids, attention_mask=mask).logits
        torch.testing.assert_close(both[0], model(long[:, -L:]).logits[0], atol=1e-5, rtol=1e-5)
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
