"""The bar the Transformers are held to: the classifier a user would try first.

scikit-learn's ``TfidfVectorizer`` (unigrams and bigrams, sublinear term frequency) and
``LogisticRegression`` (multinomial when there are more than two classes) on the raw text, the
strong linear baseline for sentiment (Wang & Manning 2012). ``fit_bar`` fits it on given labeled texts
and chooses C on a validation set; ``Bar.save`` writes it as arrays and a vocabulary (safetensors and
JSON, never a pickle) and ``Bar.load`` reads it back.
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
        """``(N, K)`` scores of raw ``texts``; with two classes, 0 for the first and the log-odds of the second."""
        return self.scores(self.vectorizer.transform(texts))

    def scores(self, features):
        """``(N, K)`` scores of TF-IDF ``features`` (``vectorizer.transform``'s)."""
        z = self.classifier.decision_function(features)
        return np.stack([np.zeros_like(z), z], 1) if z.ndim == 1 else z

    def save(self, folder):
        """Write ``folder`` atomically: vocabulary (JSON, in feature order), idf and weights (safetensors)."""
        from safetensors.numpy import save_file

        with atomic_folder(folder) as tmp:
            write_json(tmp / VOCABULARY_FILE, self.vectorizer.get_feature_names_out().tolist())
            # C order: safetensors writes the buffer as it lies, and a multinomial fit's coef_ is in Fortran order.
            weights = {"idf": self.vectorizer.idf_, "coef": self.classifier.coef_, "intercept": self.classifier.intercept_}
            save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, tmp / WEIGHTS_FILE)
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
            coef = weights["coef"] if weights["coef"].ndim == 2 else weights["coef"][None]  # 1-D: saved before K classes
            classifier.coef_, classifier.intercept_ = coef, weights["intercept"]
            classifier.classes_ = np.arange(max(2, len(coef)))  # two classes have one row of weights
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
    # liblinear fits two classes (IMDB's numbers were measured with it) but not more: those get a multinomial fit.
    solver = dict(solver="liblinear") if len(np.unique(labels)) <= 2 else dict(solver="lbfgs", max_iter=1000)
    best, val_acc = None, {}
    for C in progress(BAR_CS, progress_bar, desc="the bar", leave=False):
        classifier = LogisticRegression(C=C, random_state=0, **solver).fit(X, np.asarray(labels))
        val_acc[C] = accuracy(Bar(vectorizer, classifier, {}).scores(val_X), val_labels)
        if best is None or val_acc[C] > val_acc[best[0]]:
            best = (C, classifier)
    C, classifier = best
    info = {"C": C, "val_acc": val_acc[C], "val_acc_per_C": {str(c): a for c, a in val_acc.items()},
            "n_features": len(vectorizer.vocabulary_), "n_labels": len(labels), "seconds": time.perf_counter() - start}
    return Bar(vectorizer, classifier, info)
