"""labelless.vectors: word vectors from texts alone, and the embeddings they start."""

import numpy as np
import pytest
import torch

from labelless.fit import ModelSettings, new_model
from labelless.vectors import EMBEDDING_INIT_STD, word_vectors


def test_word_vectors_put_words_used_alike_together():
    # 5 and 6 are used alike (between 9 and 10), and so are 7 and 8 (between 11s): only the texts
    # say so, there are no labels.
    rng = np.random.default_rng(0)
    docs = []
    for _ in range(200):
        a, b = (rng.choice([5, 6]), rng.choice([7, 8]))
        docs += [np.array([2, 9, a, 10, 9, a, 10, 3]), np.array([2, 11, b, 11, 12, b, 11, 3])]
    v = torch.nn.functional.normalize(word_vectors(docs, 13, 4, window=2), dim=1)
    assert v.shape == (13, 4)
    assert v[5] @ v[6] > 0.9 and v[7] @ v[8] > 0.9
    assert abs(v[5] @ v[7]) < 0.5
    assert torch.all(v[:5] == 0)  # special tokens get no vector


def test_new_model_starts_from_the_word_vectors():
    settings = ModelSettings("tiny", vocab_size=30, max_len=16, pad_token_id=0, dropout=0.1)
    vectors = torch.randn(30, 16) * 3
    emb = new_model(settings, 0, vectors).tok_emb.weight.detach()
    torch.testing.assert_close(emb, vectors / vectors.std() * EMBEDDING_INIT_STD)
    random_init = new_model(settings, 0).tok_emb.weight.detach()
    assert random_init.std() == pytest.approx(0.02, rel=0.2)
    for name, p in new_model(settings, 0, vectors).named_parameters():  # the rest is the seed's init
        if name != "tok_emb.weight":
            torch.testing.assert_close(p, dict(new_model(settings, 0).named_parameters())[name], msg=name)
