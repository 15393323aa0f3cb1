"""The bar the Transformers are held to: a logistic regression on TF-IDF unigrams and bigrams.

The linear bag-of-n-grams classifier that is hard to beat on sentiment (Wang & Manning 2012), on
the same token ids as the Transformers. ``fit_ngram`` chooses its C on the validation set.
"""

import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from .fit import accuracy
from .runtime import progress

NGRAM_CS = (3.0, 10.0, 30.0, 100.0, 300.0)  # inverse L2 strengths tried; the best on validation is kept


class NgramLogisticRegression:
    """Logistic regression on the TF-IDF of a review's token unigrams and bigrams (sublinear term
    frequency, rows of norm 1). Its features are the n-grams found in at least ``min_df`` of ``texts``
    (token ids: texts, not labels), whose document frequencies give the idf."""

    def __init__(self, texts, vocab_size, min_df=2):
        self.vocab_size = vocab_size
        keys, df = np.unique(np.concatenate([np.unique(self.ngrams(x)) for x in texts]), return_counts=True)
        self.keys = keys[df >= min_df]
        self.idf = np.log((1 + len(texts)) / (1 + df[df >= min_df])) + 1
        self.weight, self.bias = torch.zeros(len(self.keys), dtype=torch.float64), torch.zeros((), dtype=torch.float64)

    def ngrams(self, x):
        """Unigram ids, then bigram ids (above every unigram id) of one review's tokens, without [CLS] and [SEP]."""
        x = np.asarray(x[1:-1], dtype=np.int64)
        return np.concatenate([x, self.vocab_size * (1 + x[:-1]) + x[1:]])

    def features(self, ids):
        """(N, n_features) sparse CSR matrix (float64) of ``ids``: (1 + log tf) * idf of each known n-gram,
        rows of norm 1."""
        lengths, cols, vals = [0], [], []
        for x in ids:
            grams, tf = np.unique(self.ngrams(x), return_counts=True)
            at = np.searchsorted(self.keys, grams).clip(max=max(len(self.keys) - 1, 0))
            known = self.keys[at] == grams if len(self.keys) else np.zeros(len(grams), bool)
            v = (1 + np.log(tf[known])) * self.idf[at[known]]
            lengths.append(len(v))
            cols.append(at[known])  # sorted, as grams and keys are
            vals.append(v / max(np.linalg.norm(v), 1e-12))
        with warnings.catch_warnings():  # torch calls all of CSR "beta"; the two products used here are tested
            warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(torch.from_numpy(np.cumsum(lengths)),
                                           torch.from_numpy(np.concatenate(cols)),
                                           torch.from_numpy(np.concatenate(vals)), (len(ids), len(self.keys)),
                                           dtype=torch.float64, check_invariants=True)

    def fit(self, X, y, C, max_iter=500):
        """Minimise C * sum of log losses + ||w||^2 / 2 (scikit-learn's convention; the bias is not
        penalised) with L-BFGS, starting from the current weights, on features ``X`` and labels ``y``. The
        gradient is written out, not left to autograd: two CSR products per step instead of autograd's COO
        ones keep a fit on 24,000 reviews to seconds."""
        w, b = self.weight.clone(), self.bias.clone()
        Xt = X.to_sparse_coo().t().coalesce().to_sparse_csr()
        y = torch.as_tensor(y, dtype=torch.float64)
        optimizer = torch.optim.LBFGS([w, b], max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
                                      tolerance_grad=1e-6)

        @torch.no_grad()
        def closure():
            z = X @ w + b
            # Divided by C * N: the same minimum, on a scale that suits L-BFGS's tolerances.
            loss = F.binary_cross_entropy_with_logits(z, y) + (w @ w) / (2 * C * len(y))
            dz = (torch.sigmoid(z) - y) / len(y)
            w.grad, b.grad = Xt @ dz + w / (C * len(y)), dz.sum()
            return loss

        optimizer.step(closure)
        self.weight, self.bias = w, b
        return self

    def logits(self, X):
        """(N, 2) logits of features ``X`` (from ``features``): 0 for the negative class, the log-odds
        of the positive one."""
        z = X @ self.weight + self.bias
        return torch.stack([torch.zeros_like(z), z], 1).numpy()


def fit_ngram(pool, labeled, val, vocab_size, progress_bar=False):
    """``NgramLogisticRegression`` on the ``labeled`` pool positions, its features from every pool text, with
    the C of ``NGRAM_CS`` that is best on ``val``. Returns ``(model, record)``: C, val accuracy per C, seconds."""
    start = time.perf_counter()
    model = NgramLogisticRegression(pool.ids, vocab_size)
    X, y, val_X = model.features([pool.ids[i] for i in labeled]), pool.labels[labeled], model.features(val.ids)
    val_acc, best = {}, None
    for C in progress(NGRAM_CS, progress_bar, desc="n-gram model", leave=False):
        model.fit(X, y, C)  # each C starts from the last one's weights: fewer L-BFGS steps
        val_acc[C] = accuracy(model.logits(val_X), val.labels)
        if best is None or val_acc[C] > val_acc[best[0]]:
            best = (C, model.weight, model.bias)
    C, model.weight, model.bias = best
    return model, {"C": C, "val_acc": val_acc[C], "val_acc_per_C": val_acc,
                   "n_features": len(model.keys), "seconds": time.perf_counter() - start}
