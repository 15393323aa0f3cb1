"""Word vectors from unlabeled text, to start a model's token embeddings from.

The cold start is the weak point of active learning: a seed set of a few thousand reviews cannot
teach 16k embeddings from scratch, whereas the texts (not their labels) say which words are used
alike (*dull* and *boring*, *awful* and *terrible*).
"""

import numpy as np
import torch

from .text import N_SPECIAL

# Scale of the embedding initialisation from word vectors (the random init uses 0.02), chosen on
# validation reviews from the training split: smaller scales gave the vectors too little weight to
# help the seed round.
EMBEDDING_INIT_STD = 0.1


def word_vectors(ids, vocab_size, dim, window=5, n_special=N_SPECIAL, seed=0):
    """Token vectors ``(vocab_size, dim)`` from token ids alone: truncated SVD of the positive PMI
    matrix of co-occurrence counts within +-``window`` tokens (Levy, Goldberg & Dagan 2015). Special
    tokens (the first ``n_special`` ids) get zero vectors."""
    texts = [x[1:-1].astype(np.int64) for x in ids]  # [CLS] and [SEP] dropped
    codes = [np.zeros(0, dtype=np.int64)]
    for d in range(1, window + 1):
        long_enough = [x for x in texts if len(x) > d]
        if long_enough:
            left, right = np.concatenate([x[:-d] for x in long_enough]), np.concatenate([x[d:] for x in long_enough])
            codes += [left * vocab_size + right, right * vocab_size + left]  # symmetric window
    pairs, counts = torch.unique(torch.from_numpy(np.concatenate(codes)), return_counts=True)
    cooc = torch.zeros(vocab_size * vocab_size)
    cooc[pairs] = counts.float()
    cooc = cooc.view(vocab_size, vocab_size)  # (V, V)
    cooc[:n_special], cooc[:, :n_special] = 0, 0
    # Context counts raised to 0.75 (as word2vec's negative sampling) keep rare contexts from
    # dominating the PMI.
    context = cooc.sum(0, keepdim=True) ** 0.75
    pmi = torch.log(cooc / cooc.sum(1, keepdim=True) / (context / context.sum()))
    ppmi = torch.nan_to_num(pmi, nan=0.0, posinf=0.0, neginf=0.0).clamp_(min=0.0)
    del cooc, pmi
    with torch.random.fork_rng(devices=[]):  # svd_lowrank draws a random projection
        torch.manual_seed(seed)
        U, S, _ = torch.svd_lowrank(ppmi, q=min(dim, vocab_size), niter=4)
    vectors = torch.zeros(vocab_size, dim)
    vectors[:, : len(S)] = U * S.sqrt()  # symmetric weighting of the singular values
    vectors[:n_special] = 0  # exactly: the SVD leaves round-off there
    return vectors  # (V, dim)


def init_embeddings(model, vectors):
    """Copy ``vectors`` into ``model``'s token embeddings, rescaled to ``EMBEDDING_INIT_STD``."""
    scale = vectors.std()
    if scale > 0:
        with torch.no_grad():
            model.tok_emb.weight.copy_(vectors / scale * EMBEDDING_INIT_STD)
    return model
