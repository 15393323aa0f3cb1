"""Shared fixtures: tiny synthetic IMDB copies (parquet and aclImdb layouts) and tiny models."""

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import transformer
from labelless.text import train_tokenizer

ROOT = Path(__file__).resolve().parents[1]

POSITIVE = "great wonderful superb moving brilliant loved masterpiece touching delightful fun".split()
NEGATIVE = "awful boring terrible waste dull hated mess stupid painful bad".split()
NEUTRAL = "the film movie plot actor scene story director and a of it was this to in".split()


def make_reviews(n, seed):
    """``n`` synthetic reviews, half positive, in IMDB's row order (neg first): a tiny model can learn them."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for label in (0, 1):
        words = POSITIVE if label else NEGATIVE
        for _ in range(n // 2):
            length = int(rng.integers(5, 60))
            body = [rng.choice(words) if rng.random() < 0.3 else rng.choice(NEUTRAL) for _ in range(length)]
            texts.append(" ".join(body[: length // 2]) + "<br /><br />" + " ".join(body[length // 2:]))
            labels.append(label)
    return texts, labels


TOPICS = {"sports": "goal match team score league coach player win season ball".split(),
          "politics": "vote election senate law policy minister party debate bill campaign".split(),
          "tech": "software chip startup code cloud phone data app robot network".split()}


def make_topics(n, seed):
    """``n`` short synthetic news texts, ``(ids, texts, class names)``, the three ``TOPICS`` in turn."""
    rng = np.random.default_rng(seed)
    ids, texts, names = [], [], []
    for i in range(n):
        name = list(TOPICS)[i % 3]
        words = [rng.choice(TOPICS[name]) if rng.random() < 0.5 else rng.choice(NEUTRAL)
                 for _ in range(int(rng.integers(4, 20)))]
        ids.append(f"n{seed}-{i}"), texts.append(" ".join(words)), names.append(name)
    return ids, texts, names


def write_topics_csv(folder, n_train=240, n_test=60, seed=0):
    """A 3-class dataset as a user would bring it: ``train.csv`` and ``test.csv`` with id, text, topic."""
    import csv

    folder.mkdir(parents=True, exist_ok=True)
    for name, n, s in (("train", n_train, seed), ("test", n_test, seed + 1)):
        if n:
            with open(folder / f"{name}.csv", "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["id", "text", "topic"])
                writer.writerows(zip(*make_topics(n, s)))
    return folder


def write_parquet(folder, n_train=300, n_test=100, seed=0, n_unlabeled=160):
    """A tiny IMDB parquet folder; ``unsupervised.parquet`` as the hub's split: ``label`` always -1."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, n, s in (("train", n_train, seed), ("test", n_test, seed + 1), ("unsupervised", n_unlabeled, seed + 2)):
        if n:
            texts, labels = make_reviews(n, s)
            labels = [-1] * n if name == "unsupervised" else labels
            pq.write_table(pa.table({"text": texts, "label": labels}), folder / f"{name}.parquet")
    return folder


@pytest.fixture
def parquet_dir(tmp_path):
    return write_parquet(tmp_path / "imdb")


@pytest.fixture
def tiny_model_and_tokenizer():
    texts, _ = make_reviews(60, 0)
    tok = train_tokenizer(texts, vocab_size=200, max_len=32)
    config = transformer.TransformerConfig.from_size("tiny", vocab_size=len(tok), max_len=32,
                                                     pad_token_id=tok.pad_token_id)
    return transformer.TransformerClassifier(config).eval(), tok


@pytest.fixture
def real_imdb():
    """The shared IMDB copy, when IMDB_DATA points at it (CI sets it)."""
    path = os.environ.get("IMDB_DATA")
    if not path or not Path(path, "train.parquet").is_file():
        pytest.skip("IMDB_DATA does not point at a folder with train.parquet")
    return path


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """A script run with --threads changes torch's global thread count: put it back."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
