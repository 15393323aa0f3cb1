"""labelless.strategies: uncertainty scores on hand-made probabilities, the seed set, the query."""

import numpy as np
import pytest

from labelless import UserError
from labelless.strategies import bald, entropy, least_confidence, margin, seed_set, select

PROBS = np.array([[0.5, 0.5], [0.9, 0.1], [0.6, 0.4], [0.01, 0.99]])


@pytest.mark.parametrize("fn", [least_confidence, margin, entropy])
def test_uncertainty_scores_rank_the_least_sure_first(fn):
    assert np.argsort(-fn(PROBS)).tolist() == [0, 2, 1, 3]


def test_strategy_values():
    np.testing.assert_allclose(least_confidence(PROBS), [0.5, 0.1, 0.4, 0.01])
    np.testing.assert_allclose(margin(PROBS), [1.0, 0.2, 0.8, 0.02])
    np.testing.assert_allclose(entropy(PROBS)[:2], [np.log(2), -(0.9 * np.log(0.9) + 0.1 * np.log(0.1))])
    three = np.array([[0.5, 0.4, 0.1], [0.5, 0.25, 0.25]])  # margin looks at the top two only
    assert margin(three)[0] > margin(three)[1]


def test_bald_prefers_disagreement_over_agreed_uncertainty():
    agree = np.array([[0.5, 0.5], [0.5, 0.5]])  # both samples unsure: no disagreement
    disagree = np.array([[0.99, 0.01], [0.01, 0.99]])  # confident samples that disagree
    confident = np.array([[0.99, 0.01], [0.99, 0.01]])
    mc = np.stack([agree, disagree, confident], axis=1)  # (S=2, N=3, C=2)
    scores = bald(mc)
    assert scores[1] > scores[0] and scores[1] > scores[2]
    assert scores[0] == pytest.approx(0, abs=1e-9) and scores[2] == pytest.approx(0, abs=1e-9)


def test_select_takes_the_top_k_and_breaks_ties_at_random():
    candidates = np.array([10, 11, 12, 13])
    assert sorted(select(candidates, np.array([0.1, 0.9, 0.5, 0.7]), 2, np.random.default_rng(0))) == [11, 13]
    tied = {tuple(select(candidates, np.ones(4), 1, np.random.default_rng(s))) for s in range(20)}
    assert len(tied) > 1


def test_seed_set_is_balanced():
    labels = np.array([0] * 90 + [1] * 10)
    chosen = seed_set(labels, np.arange(100), 10, np.random.default_rng(0))
    assert np.bincount(labels[chosen]).tolist() == [5, 5]
    with pytest.raises(UserError, match="too few texts of one class"):
        seed_set(labels, np.arange(100), 30, np.random.default_rng(0))
    three = np.repeat([0, 1, 2], 20)
    assert np.bincount(three[seed_set(three, np.arange(60), 10, np.random.default_rng(0))]).tolist() == [4, 3, 3]
