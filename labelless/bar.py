"""The bar the Transformers are held to: the classifier a user would try first.

scikit-learn's ``TfidfVectorizer`` (unigrams and bigrams, sublinear term frequency) and
``LogisticRegression`` on the raw review text, the strong linear baseline for sentiment (Wang & Manning
2012). ``fit_bar`` fits it on given labeled texts and chooses C on a validation set; ``Bar.save`` writes
it as arrays and a vocabulary (safetensors and JSON, never a pickle) and ``Bar.load`` reads it back.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import UserError
from .fit import accuracy
from .runtime import progress
from .store import INFO_FILE, atomic_folder, read_json, recover, write_json

BAR_CS = (1.0, 3.0, 10.0, 30.0, 100.0)  # inverse L2 strengths tried; the best on validation is kept
VECTORIZER = dict(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
WEIGHTS_FILE, VOCABULARY_FILE = "bar.safetensors", "vocabulary.json"


@dataclass
class Bar:
    """A fitted TF-IDF vectorizer and logistic regression; ``info`` records how it was fitted."""

    vectorizer: object
    classifier: object
    info: dict

    def logits(self, texts):
        """``(N, 2)`` scores of raw ``texts``: 0 for the negative class, the log-odds of the positive one."""
        return self.scores(self.vectorizer.transform(texts))

    def scores(self, features):
        """``(N, 2)`` scores of TF-IDF ``features`` (``vectorizer.transform``'s)."""
        z = self.classifier.decision_function(features)
        return np.stack([np.zeros_like(z), z], 1)

    def save(self, folder):
        """Write ``folder`` atomically: vocabulary (JSON, in feature order), idf and weights (safetensors)."""
        from safetensors.numpy import save_file

        with atomic_folder(folder) as tmp:
            write_json(tmp / VOCABULARY_FILE, self.vectorizer.get_feature_names_out().tolist())
            save_file({"idf": self.vectorizer.idf_, "coef": self.classifier.coef_[0],
                       "intercept": self.classifier.intercept_}, tmp / WEIGHTS_FILE)
            write_json(tmp / INFO_FILE, self.info)
        return Path(folder)

    @classmethod
    def load(cls, folder):
        from safetensors.numpy import load_file
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        folder = Path(folder)
        recover(folder)
        try:
            weights = load_file(folder / WEIGHTS_FILE)
            vectorizer = TfidfVectorizer(**VECTORIZER, vocabulary=read_json(folder / VOCABULARY_FILE))
            vectorizer.idf_ = weights["idf"]
            classifier = LogisticRegression()
            classifier.coef_, classifier.intercept_ = weights["coef"][None], weights["intercept"]
            classifier.classes_ = np.array([0, 1])
            info = read_json(folder / INFO_FILE)
        except Exception as e:  # missing or damaged files: safetensors, json and scikit-learn raise their own types
            raise UserError(f"cannot read the bar at {folder} ({type(e).__name__}): run `python training.py` again, "
                            "which fits it") from None
        return cls(vectorizer, classifier, info)


def fit_bar(texts, labels, val_texts, val_labels, progress_bar=False):
    """The bar fitted on ``texts`` and their ``labels`` (its vocabulary and idf from those texts alone, as
    ``fit_transform`` does), with the C of ``BAR_CS`` that is best on the validation texts."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    vectorizer = TfidfVectorizer(**VECTORIZER)
    X, val_X = vectorizer.fit_transform(texts), vectorizer.transform(val_texts)
    best, val_acc = None, {}
    for C in progress(BAR_CS, progress_bar, desc="the bar", leave=False):
        classifier = LogisticRegression(C=C, solver="liblinear", random_state=0).fit(X, np.asarray(labels))
        val_acc[C] = accuracy(Bar(vectorizer, classifier, {}).scores(val_X), val_labels)
        if best is None or val_acc[C] > val_acc[best[0]]:
            best = (C, classifier)
    C, classifier = best
    info = {"C": C, "val_acc": val_acc[C], "val_acc_per_C": {str(c): a for c, a in val_acc.items()},
            "n_features": len(vectorizer.vocabulary_), "n_labels": len(labels), "seconds": time.perf_counter() - start}
    return Bar(vectorizer, classifier, info)
