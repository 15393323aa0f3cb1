"""labelless.text: the tokenizer (deterministic, keeps the end of long reviews), encoding, batches, padding."""

import numpy as np
import pytest
from conftest import make_reviews

from labelless.text import SPECIAL_TOKENS, collate, encode, length_batches, tails, train_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(make_reviews(100, 0)[0], vocab_size=300, max_len=16)


def test_tokenizer_round_trip(tokenizer):
    text = "the movie was great<br /><br />and the plot was boring"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == "the movie was great and the plot was boring"
    assert "<" not in tokenizer.convert_ids_to_tokens(ids)


def test_tokenizer_ids_are_numbered_in_a_fixed_order(tokenizer):
    """The same tokens always get the same ids: specials first, then by (length, text)."""
    tokens = [t for t, _ in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])]
    specials = list(SPECIAL_TOKENS.values())
    assert tokens[: len(specials)] == specials
    assert tokens[len(specials):] == sorted(tokens[len(specials):], key=lambda t: (len(t), t))
    assert tokenizer.pad_token_id == 0


def test_tokenizer_training_is_deterministic():
    """Tie-prone texts: the trainer alone gave several vocabularies over repeated runs
    (huggingface/tokenizers#1794); every run must now give the same one, continuation pieces
    ordinary (not special) tokens that decode back into their word."""
    texts = ["Wel come to the 🤗 Tok en izers libr ary.", "A sweet little film, sweetly acted; ties often tie."]
    vocabularies = {tuple(sorted(train_tokenizer(texts, vocab_size=120, max_len=32).get_vocab().items()))
                    for _ in range(20)}
    assert len(vocabularies) == 1
    tok = train_tokenizer(texts, vocab_size=120, max_len=32)
    assert tok.all_special_tokens and not any(t.startswith("##") for t in tok.all_special_tokens)
    ids = tok("sweetly tokenizers")["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == "sweetly tokenizers"


def test_tokenizer_vocabulary_has_no_unusable_continuation_pieces():
    """Whitespace never continues a word and punctuation always splits off: a "## " or "##," piece
    could never be used and would waste a slot of the vocabulary."""
    tok = train_tokenizer(["a tab\there, a\u00a0nbsp; words!"] * 3, vocab_size=200, max_len=32)
    pieces = {t[2:] for t in tok.get_vocab() if t.startswith("##")}
    assert pieces and not any(c.isspace() or c in ",;!" for c in pieces)
    assert {"##b", "##t"} <= set(tok.get_vocab())


def test_tokenizer_keeps_the_end_of_long_reviews(tokenizer):
    ids = tokenizer("the " * 100 + "boring ending", truncation=True)["input_ids"]
    assert len(ids) == 16
    assert tokenizer.decode(ids, skip_special_tokens=True).endswith("boring ending")


def test_odd_texts_do_not_crash(tokenizer):
    texts = ["", "   ", "a" * 1_000_000, "naïve café 映画 \ufffd", "great " * 200_000]
    ids = encode(tokenizer, texts, progress_bar=False)
    assert all(2 <= len(x) <= 16 for x in ids)


def test_tokenizer_save_load(tokenizer, tmp_path):
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "a wonderful, touching film"
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert loaded.truncation_side == "left" and loaded.model_max_length == 16


def test_length_batches_cover_everything_once():
    lengths = np.random.default_rng(0).integers(1, 300, size=1000)
    for rng in (None, np.random.default_rng(1)):
        batches = length_batches(lengths, 32, rng)
        flat = np.concatenate(batches)
        assert sorted(flat.tolist()) == list(range(1000))
        assert all(len(b) <= 32 for b in batches)
    # Bucketing: inference batches are sorted, so padding is small.
    sorted_batches = length_batches(lengths, 32)
    padded = sum(len(b) * lengths[b].max() for b in sorted_batches)
    assert padded < 1.05 * lengths.sum()
    # Training batches are bucketed too, and random.
    rng_batches = length_batches(lengths, 32, np.random.default_rng(1))
    assert sum(len(b) * lengths[b].max() for b in rng_batches) < 1.1 * lengths.sum()
    assert not np.array_equal(np.concatenate(rng_batches), np.concatenate(sorted_batches))


def test_collate_pads_and_masks():
    ids, mask = collate([np.array([5, 6, 7]), np.array([8])], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_long_reviews_are_cut_to_a_tail_that_gives_the_same_ids(tokenizer):
    """A 1 MB review is not tokenized whole (about 170 MB and 0.7 s): only a tail long enough to give
    the very ids the whole text gives."""
    words = make_reviews(40, 3)[0]
    huge = " ".join(words * 150)
    assert len(huge) > 1_000_000
    (tail,) = tails(tokenizer, [huge])
    assert len(tail) < 10_000 and huge.endswith(tail)
    whole = tokenizer([huge], truncation=True)["input_ids"][0]
    assert encode(tokenizer, [huge], progress_bar=False)[0].tolist() == whole
    for text in words[:5] + ["a" * 100_000, "x " * 40 + "<br />" * 5000]:  # short, unsplittable, tag-heavy
        (kept,) = tails(tokenizer, [text])
        assert tokenizer(kept, truncation=True)["input_ids"] == tokenizer(text, truncation=True)["input_ids"]
    assert tails(tokenizer, words[:3]) == words[:3]  # normal reviews are left alone
