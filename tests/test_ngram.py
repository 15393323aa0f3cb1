"""labelless.ngram: TF-IDF features, the regularised optimum, C chosen on validation."""

import numpy as np

from labelless.data import Reviews
from labelless.fit import accuracy
from labelless.ngram import NGRAM_CS, NgramLogisticRegression, fit_ngram


def test_ngram_features_are_sublinear_tfidf_rows_of_norm_one():
    # [CLS]=1 and [SEP]=2 around tokens; vocabulary of 10 ids. Review 0 holds 5 twice and the bigram (5, 6).
    texts = [[1, 5, 5, 6, 2], [1, 5, 6, 7, 2], [1, 8, 2]]
    model = NgramLogisticRegression(texts, vocab_size=10, min_df=2)
    bigram = 10 * (1 + 5) + 6
    assert model.keys.tolist() == [5, 6, bigram]  # in two texts each; 7, 8, (5, 5), (6, 7) in one; specials never
    idf = np.log(4 / 3) + 1
    X = model.features(texts + [[1, 9, 2]]).to_dense().numpy()
    expected = np.array([1 + np.log(2), 1, 1]) * idf
    np.testing.assert_allclose(X[0], expected / np.linalg.norm(expected), rtol=1e-6)
    np.testing.assert_allclose(X[1], np.ones(3) / np.sqrt(3), rtol=1e-6)
    np.testing.assert_array_equal(X[2:], 0)  # n-grams it does not know (or none) give an empty row
    np.testing.assert_array_equal(model.logits(model.features([[1, 9, 2]])), [[0, 0]])  # untrained: no opinion


def test_ngram_fit_reaches_the_regularised_optimum():
    # At the minimum of C * sum of log losses + ||w||^2 / 2 the gradient is zero: X^T (p - y) + w / C = 0 and,
    # the bias being free, sum(p - y) = 0. Checked densely in numpy, apart from the fit's own products.
    rng = np.random.default_rng(0)
    texts = [np.array([1, *rng.integers(3, 30, 12), 2]) for _ in range(80)]
    y = np.array([int(5 in x) for x in texts])
    model = NgramLogisticRegression(texts, vocab_size=30)
    X = model.features(texts)
    for C in (0.5, 30.0):
        model.fit(X, y, C)
        w, b, dense = model.weight.numpy(), float(model.bias), X.to_dense().numpy()
        p = 1 / (1 + np.exp(-(dense @ w + b)))
        assert np.abs(dense.T @ (p - y) + w / C).max() < 1e-3 * C and abs((p - y).sum()) < 1e-3 * C
        assert accuracy(model.logits(X), y) == ((dense @ w + b > 0) == y).mean()
    assert accuracy(model.logits(X), y) == 1.0  # weakly penalised, token 5 alone decides


def test_fit_ngram_learns_the_labels_and_picks_c_on_validation(monkeypatch):
    # Token 10 marks a positive review, 11 a negative one, among 10 noise tokens drawn from 40.
    rng = np.random.default_rng(0)

    def reviews(n):
        y = rng.integers(0, 2, n)
        return [np.array([1, *rng.integers(20, 60, 10), 11 - label, 2]) for label in y], y

    pool_ids, pool_y = reviews(200)
    val_ids, val_y = reviews(100)
    pool, val = Reviews(np.arange(200), pool_ids, pool_y), Reviews(np.arange(100), val_ids, val_y)
    labeled = np.arange(0, 200, 2)  # half the pool revealed; the rest are texts only
    model, record = fit_ngram(pool, labeled, val, vocab_size=60)
    assert record["C"] in NGRAM_CS and set(record["val_acc_per_C"]) == set(NGRAM_CS)
    assert record["val_acc"] == max(record["val_acc_per_C"].values()) >= 0.9
    assert accuracy(model.logits(model.features(val_ids)), val_y) == record["val_acc"]
    # The marker tokens carry the two largest weights, with the signs of their classes.
    top = model.keys[np.argsort(-model.weight.abs().numpy())[:2]]
    weight = dict(zip(model.keys.tolist(), model.weight.tolist()))
    assert set(top.tolist()) == {10, 11} and weight[10] > 0 > weight[11]
    # The weights kept are the best C's, not the last one tried: a fit from zero at that C predicts the same.
    monkeypatch.setattr("labelless.ngram.NGRAM_CS", (300.0, 3.0))  # the larger C wins here (above), and goes first
    model, record = fit_ngram(pool, labeled, val, vocab_size=60)
    assert record["C"] == 300.0 and record["val_acc_per_C"][300.0] > record["val_acc_per_C"][3.0]
    again = NgramLogisticRegression(pool_ids, 60)
    again.fit(again.features([pool_ids[i] for i in labeled]), pool_y[labeled], 300.0)
    X = model.features(val_ids)
    np.testing.assert_allclose(again.logits(X), model.logits(X), atol=0.1)
