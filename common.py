"""What the scripts share: data, tokenizer, batching, training, evaluation, checkpoints, results.

Nothing here runs at import time. The scripts (``training.py``, ``origi.py``, ``compare_student.py``,
``vanilla_inference.py``) import it; none of them re-implements what is here.
"""

import argparse
import contextlib
import copy
import fcntl
import hashlib
import json
import math
import os
import random
import re
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

DEFAULT_SOURCE = "stanfordnlp/imdb"
LABEL_NAMES = ("neg", "pos")
SPECIAL_TOKENS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]",
                  "sep_token": "[SEP]", "mask_token": "[MASK]"}
INFO_FILE = "training_info.json"
CHECKPOINT_FILES = ("config.json", "model.safetensors", "tokenizer.json", INFO_FILE)

# Sizes of each preset. smoke: seconds, for tests. quick: minutes on a 2-core CPU, on a stratified
# subset of IMDB. full: the whole 25k pool and 25k test split. ``auto`` picks full on a GPU, else quick.
PRESETS = {
    "smoke": dict(
        max_train_samples=300, max_test_samples=100, val_size=60, vocab_size=600, max_len=64,
        teacher_size="tiny", student_size="tiny", batch_size=16, lr=3e-3, distill_lr=3e-3,
        initial_labels=40, query_size=40, label_budget=180, epochs=2, pool_sample=0, ensemble=1,
        distill_epochs=2, n_reviews=40, batch_sizes="1,8", warmup=1, repeats=3,
    ),
    "quick": dict(
        max_train_samples=12500, max_test_samples=2000, val_size=500, vocab_size=16000, max_len=256,
        teacher_size="teacher", student_size="student", batch_size=32, lr=1e-3, distill_lr=3e-3,
        initial_labels=2000, query_size=2000, label_budget=8500, epochs=2, pool_sample=4000, ensemble=1,
        distill_epochs=3, n_reviews=1000, batch_sizes="1,32,128", warmup=1, repeats=3,
    ),
    "full": dict(
        max_train_samples=None, max_test_samples=None, val_size=1000, vocab_size=16000, max_len=512,
        teacher_size="teacher", student_size="student", batch_size=32, lr=1e-3, distill_lr=3e-3,
        initial_labels=2000, query_size=2000, label_budget=15000, epochs=2, pool_sample=8000, ensemble=3,
        distill_epochs=4, n_reviews=1000, batch_sizes="1,32,128", warmup=1, repeats=3,
    ),
}


class UserError(Exception):
    """A problem the user can fix (bad path, option, missing checkpoint): one line, exit code 2."""


@contextlib.contextmanager
def user_errors(prog):
    """Turn a ``UserError`` into one line on stderr and exit code 2, with no traceback."""
    try:
        yield
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


# ---------------------------------------------------------------------------------------------
# Command line


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults; an option sized by the preset says so instead of "None"."""

    def _get_help_string(self, action):
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            return action.help
        if action.default is None:
            sized = any(action.dest in preset for preset in PRESETS.values())
            return action.help + (" (default: from --preset)" if sized else "")
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """A bad option is one line on stderr, with the way to the help, and exit code 2 (no usage dump)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def make_parser(prog, doc):
    """The parser of a script: its name, the first paragraph of its docstring, defaults in --help."""
    return ArgumentParser(prog=prog, description=doc.split("\n\n")[0], formatter_class=HelpFormatter)


def add_common_args(parser, subsets=True):
    """The flags every script takes (``subsets``: also the data-subset flags). Preset-sized options
    default to None and are filled by ``apply_preset``, so an explicit flag always wins over the preset."""
    parser.add_argument("--data", default=None,
                        help=f"hub id, parquet folder or aclImdb folder (default: $IMDB_DATA, else {DEFAULT_SOURCE})")
    parser.add_argument("--out-dir", default="checkpoints", type=Path, help="where model folders live")
    parser.add_argument("--results", default="results.txt", type=Path, help="results file to append to")
    parser.add_argument("--seed", default=1, type=int, help="seed of data subsets, initialisation and sampling")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                        help="auto = cuda if available, else cpu")
    parser.add_argument("--threads", default=None, type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--preset", default="auto", choices=["auto", *PRESETS],
                        help="sizes: smoke (tests), quick (CPU minutes), full; auto = full on a GPU, else quick")
    if subsets:
        parser.add_argument("--max-train-samples", default=None, type=int,
                            help="stratified subset of the training split (pool + validation)")
        parser.add_argument("--max-test-samples", default=None, type=int, help="stratified subset of the test split")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    return parser


# Chosen on validation by benchmarks/distill_sweep.sh (README, "Distillation sweep").
TEMPERATURE, ALPHA = 4.0, 0.9


def add_distillation_args(parser, of=""):
    """--temperature and --alpha of the distillation loss (``of``: what they apply to, for --help)."""
    parser.add_argument("--temperature", type=float, default=TEMPERATURE, help=f"softmax temperature T{of}")
    parser.add_argument("--alpha", type=float, default=ALPHA, help=f"weight of the soft (teacher) term{of}")


def check_distillation_args(args):
    if args.temperature <= 0:
        raise UserError(f"--temperature must be positive, got {args.temperature}")
    if not 0.0 <= args.alpha <= 1.0:
        raise UserError(f"--alpha must be between 0 and 1, got {args.alpha}")


def apply_preset(args):
    """Fill every option left at None from the preset; returns ``args`` with ``args.preset`` resolved."""
    if args.preset == "auto":
        args.preset = "full" if torch.cuda.is_available() else "quick"
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key, "absent") is None:
            setattr(args, key, value)
    for key in ("max_train_samples", "max_test_samples", "threads"):
        value = getattr(args, key, None)
        if value is not None and value < 1:
            raise UserError(f"--{key.replace('_', '-')} must be at least 1, got {value}")
    return args


def setup(args):
    """Seed, threads and device from the shared flags; returns the torch device."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.progress:
        from transformers.utils import logging

        logging.disable_progress_bar()
    set_seed(args.seed)
    return choose_device(args.device)


def set_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def choose_device(name="auto"):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but no CUDA GPU is visible: use --device cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps asked for, but MPS is not available: use --device cpu or auto")
    return torch.device(name)


def autocast(device):
    """bf16 autocast on CUDA; a no-op elsewhere (CPU bf16 is slower than fp32 on most CPUs)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def progress(iterable=None, enabled=True, **kwargs):
    return tqdm(iterable, disable=not enabled, dynamic_ncols=True, **kwargs)


# ---------------------------------------------------------------------------------------------
# Data


def data_source(arg=None):
    """``--data`` if given, else ``$IMDB_DATA``, else the hub id."""
    return arg or os.environ.get("IMDB_DATA") or DEFAULT_SOURCE


def load_imdb(source=None):
    """IMDB as ``(train, test)`` ``datasets.Dataset`` with ``text`` and ``label`` (0 = neg, 1 = pos).

    ``source``: a folder with ``train.parquet`` and ``test.parquet``; an extracted ``aclImdb/``
    folder (``train/pos/*.txt`` ...); or a hub id (default ``stanfordnlp/imdb``, needs internet).
    """
    source = str(data_source(source))
    path = Path(source).expanduser()
    if path.is_dir():
        if (path / "train").is_dir() or (path / "aclImdb").is_dir():
            root = path if (path / "train").is_dir() else path / "aclImdb"
            splits = [_load_aclimdb_split(root / name) for name in ("train", "test")]
        else:
            splits = [_load_parquet_split(path / f"{name}.parquet") for name in ("train", "test")]
    elif path.exists() or not re.fullmatch(r"[\w-][\w.-]*(/[\w.-]+)?", source):
        raise UserError(f"no IMDB folder at {source}: pass --data (or set IMDB_DATA) to a folder holding "
                        "train.parquet and test.parquet, or to an extracted aclImdb/ folder")
    else:
        splits = _load_hub(source)
    return tuple(_check_split(ds, f"{source} ({name})") for ds, name in zip(splits, ("train", "test")))


def _load_parquet_split(file):
    import pyarrow.parquet as pq
    from datasets import Dataset

    if not file.is_file():
        raise UserError(f"missing {file}: an IMDB parquet folder needs train.parquet and test.parquet "
                        "(the layout of the hub dataset stanfordnlp/imdb)")
    try:
        table = pq.read_table(file, columns=["text", "label"])
    except Exception as e:  # pyarrow raises several types for bad files and missing columns
        raise UserError(f"cannot read {file} as IMDB parquet with columns text and label: "
                        f"{str(e).splitlines()[0]}") from None
    return Dataset(table)


def _load_aclimdb_split(folder):
    from datasets import Dataset

    if not all((folder / label).is_dir() for label in LABEL_NAMES):
        raise UserError(f"missing {folder}/pos or {folder}/neg: an aclImdb folder needs train/ and test/ "
                        "with pos/ and neg/ inside (extract aclImdb_v1.tar.gz as it comes)")
    texts, labels = [], []
    for label, name in enumerate(LABEL_NAMES):
        # Files are <id>_<rating>.txt; sorting by id keeps the hub's row order.
        files = sorted(folder.joinpath(name).glob("*.txt"), key=lambda f: (len(f.stem), f.stem))
        for file in files:
            texts.append(file.read_bytes().decode("utf-8", errors="replace"))
            labels.append(label)
    return Dataset.from_dict({"text": texts, "label": labels})


def _load_hub(source):
    from datasets import load_dataset

    try:
        ds = load_dataset(source)
    except Exception as e:  # offline, unknown id...: the library raises many types
        raise UserError(f"cannot load IMDB from the hub id {source!r} ({type(e).__name__}); no local folder has "
                        "that name either: pass --data (or set IMDB_DATA) to a folder with train.parquet and "
                        "test.parquet, or connect to the internet") from None
    return ds["train"], ds["test"]


def _check_split(ds, where):
    missing = {"text", "label"} - set(ds.column_names)
    if missing:
        raise UserError(f"{where} lacks column(s) {', '.join(sorted(missing))}: IMDB needs text and label")
    if len(ds) == 0:
        raise UserError(f"{where} is empty: point --data at the full IMDB copy")
    labels = np.asarray(ds["label"])
    bad = labels[(labels != 0) & (labels != 1)]
    if bad.size:
        raise UserError(f"{where} has label {bad[0]} outside {{0, 1}} (0 = neg, 1 = pos): fix or re-export the data")
    return ds


def class_counts(labels, n):
    """``(classes, counts)``: how many of ``n`` items each class gets to keep the proportions of ``labels``."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    take = np.floor(counts / len(labels) * n).astype(int)
    # Hand out what flooring left over to the classes with the largest remainders.
    rest = counts / len(labels) * n - take
    take[np.argsort(-rest, kind="stable")[: n - take.sum()]] += 1
    return classes, take


def stratified_subset(labels, n, seed):
    """Sorted indices of a seeded random subset of ``n`` items with the class proportions of ``labels``."""
    labels = np.asarray(labels)
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(labels == c), size=k, replace=False) for c, k in zip(*class_counts(labels, n))]
    return np.sort(np.concatenate(picked))


def split_off(indices, labels, n, seed, block=1):
    """Split the row numbers ``indices`` into (rest, held_out), ``n`` stratified, seeded items held out.

    ``block > 1`` holds out whole runs of adjacent rows (rows ``r`` with equal ``r // block``): IMDB
    lists the reviews of one movie next to each other, so reviews held out one by one share their
    movies with the rest, and accuracy on them overrates accuracy on the test split's unseen movies.
    """
    indices, labels = np.asarray(indices), np.asarray(labels)
    if not 0 < n < len(indices):
        raise UserError(f"cannot hold out {n} of {len(indices)} reviews: choose a size between 1 and {len(indices) - 1}")
    if block < 1:
        raise UserError(f"block must be at least 1 row, got {block}")
    rng = np.random.default_rng(seed)
    held = []
    held_labels = labels[indices]
    for c, k in zip(*class_counts(held_labels, n)):
        rows = indices[held_labels == c]
        runs, run_of_row = np.unique(rows // block, return_inverse=True)
        # Runs in random order, rows in random order within a run; the last run taken may be cut.
        order = np.lexsort((rng.random(len(rows)), rng.permutation(len(runs))[run_of_row]))
        held.append(rows[order[:k]])
    held = np.sort(np.concatenate(held))
    return np.setdiff1d(indices, held), held


@dataclass
class Split:
    """Token ids and labels of a set of reviews, with their indices into the IMDB split."""

    index: np.ndarray
    ids: list
    labels: np.ndarray

    def __len__(self):
        return len(self.index)


def make_split(dataset, index, tokenizer, progress_bar=True):
    """Tokenize the rows ``index`` of an IMDB split."""
    index = np.asarray(index)
    rows = dataset.select(index)
    return Split(index, encode(tokenizer, rows["text"], progress_bar), np.asarray(rows["label"]))


# ---------------------------------------------------------------------------------------------
# Tokenizer and batching


def train_tokenizer(texts, vocab_size, max_len):
    """A lower-cased WordPiece tokenizer trained on ``texts`` (training texts only; a sequence, read twice).

    The normalizer turns IMDB's ``<br />`` tags into spaces, so training, evaluation and a
    ``pipeline`` all see the same text. Long reviews keep their end (``truncation_side="left"``):
    reviews tend to close with the verdict.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.Sequence([
        normalizers.Replace(Regex(r"<br\s*/?>"), " "),
        normalizers.BertNormalizer(lowercase=True, strip_accents=True),
    ])
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = list(SPECIAL_TOKENS.values())
    # The trainer numbers each "##" continuation piece when it first meets it while walking a hash
    # map, and breaks ties between equally frequent merges by those numbers, so the same texts gave
    # another vocabulary from run to run (huggingface/tokenizers#1794). Handing it every continuation
    # piece up front, in sorted order, fixes their numbers and so the whole training.
    chars = set().union(*(normalizer.normalize_str(t) for t in texts))
    continuations = sorted("##" + c for c in chars if _stays_in_word(pre_tokenizer, c))
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials + continuations,
                                        show_progress=False)
    tok = Tokenizer(models.WordPiece(unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))

    # A fresh tokenizer on the learned vocabulary, numbered in a fixed order, where only the real
    # special tokens are special (the continuation pieces are ordinary tokens).
    rest = sorted(set(tok.get_vocab()) - set(specials), key=lambda t: (len(t), t))
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(specials + rest)}, unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.normalizer, tok.pre_tokenizer, tok.decoder = normalizer, pre_tokenizer, decoders.WordPiece()
    tok.add_special_tokens(specials)
    cls, sep = SPECIAL_TOKENS["cls_token"], SPECIAL_TOKENS["sep_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, model_max_length=max_len, truncation_side="left", padding_side="right",
        model_input_names=["input_ids", "attention_mask"], **SPECIAL_TOKENS)


def _stays_in_word(pre_tokenizer, char):
    """Whether ``char`` can continue a word (punctuation splits off, whitespace is dropped)."""
    return [word for word, _ in pre_tokenizer.pre_tokenize_str("a" + char)] == ["a" + char]


def encode(tokenizer, texts, progress_bar=True, chunk=2000):
    """Token ids of each text (truncated to the tokenizer's max length) as int32 arrays."""
    ids = []
    for start in progress(range(0, len(texts), chunk), progress_bar, desc="tokenize", leave=False):
        batch = tokenizer(list(texts[start:start + chunk]), truncation=True)["input_ids"]
        ids.extend(np.asarray(x, dtype=np.int32) for x in batch)
    return ids


def length_batches(lengths, batch_size, rng=None):
    """Index batches of similar lengths, so that short reviews are not padded to the longest.

    Without ``rng``: sorted by length (inference). With ``rng``: shuffled, sorted by length within
    windows of 50 batches, then the batch order shuffled (training keeps its randomness).
    """
    lengths = np.asarray(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    order = rng.permutation(len(lengths))
    window = 50 * batch_size
    batches = []
    for start in range(0, len(order), window):
        chunk = order[start:start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(ids, pad_id, device="cpu"):
    """Pad a list of id arrays to their longest: ``(input_ids, attention_mask)``, each ``(B, T)``."""
    T = max(len(x) for x in ids)
    input_ids = np.full((len(ids), T), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), T), dtype=np.int64)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = x
        mask[row, : len(x)] = 1
    return torch.from_numpy(input_ids).to(device), torch.from_numpy(mask).to(device)


# ---------------------------------------------------------------------------------------------
# Training and evaluation


@torch.inference_mode()
def predict_logits(model, ids, batch_size=128, device=None, progress_bar=False, mc_dropout=False, desc="predict"):
    """Logits ``(N, num_labels)`` as float32 numpy, in the order of ``ids``.

    ``mc_dropout=True`` keeps dropout active (one Monte Carlo sample per call, for BALD).
    """
    device = device or next(model.parameters()).device
    model.train(mc_dropout)
    out = np.empty((len(ids), model.config.num_labels), dtype=np.float32)
    batches = length_batches([len(x) for x in ids], batch_size)
    for idx in progress(batches, progress_bar, desc=desc, leave=False):
        input_ids, mask = collate([ids[i] for i in idx], model.config.pad_token_id, device)
        with autocast(device):
            logits = model(input_ids, attention_mask=mask).logits
        out[idx] = logits.float().cpu().numpy()
    model.eval()
    return out


def evaluate(model, ids, labels, batch_size=128, progress_bar=False):
    """Accuracy of ``model`` on token ids ``ids`` with gold ``labels``."""
    preds = predict_logits(model, ids, batch_size, progress_bar=progress_bar, desc="evaluate").argmax(1)
    return float((preds == np.asarray(labels)).mean())


def drop_tokens(ids, p, rng, n_special=len(SPECIAL_TOKENS)):
    """Word dropout (Iyyer et al. 2015): every real token of every review in ``ids`` is deleted with
    probability ``p``; special tokens stay. No review is then read twice the same way."""
    return [x[(x < n_special) | (rng.random(len(x)) >= p)] for x in ids]


def fit(model, ids, loss_fn, *, epochs, lr, batch_size, seed, val=None, weight_decay=0.01,
        average_from=None, token_dropout=0.0, progress_bar=True, desc="train"):
    """Train ``model`` on token ids ``ids`` with AdamW and a one-cycle schedule.

    ``loss_fn(logits, idx)`` gives the loss of a batch, ``idx`` indexing ``ids``. With
    ``val=(val_ids, val_labels)`` the weights of the best validation epoch are kept (and restored);
    without it, the last epoch's. With ``average_from`` in [0, 1), the last epoch's weights are the
    running mean of the weights after every step from that fraction of training on (stochastic
    weight averaging, Izmailov et al. 2018). ``token_dropout`` deletes that fraction of each training
    review's tokens anew at every step (``drop_tokens``). Returns a dict: per-epoch train loss and val
    accuracy, best epoch, seconds.
    """
    device = next(model.parameters()).device
    rng = np.random.default_rng(seed)
    drop_rng = np.random.default_rng([seed, 1])  # its own stream: the batch order is the same with or without
    torch.manual_seed(seed)  # dropout masks: a round is reproducible whatever ran before it
    lengths = np.array([len(x) for x in ids])
    steps = epochs * math.ceil(len(ids) / batch_size)
    optimizer, schedule = make_optimizer(model.named_parameters(), lr, weight_decay, steps)
    history = {"train_loss": [], "val_acc": [], "best_epoch": None}
    best_acc, best_state = -1.0, None
    average = WeightAverage(model, start=None if average_from is None else int(average_from * steps))
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        total, count = 0.0, 0
        bar = progress(length_batches(lengths, batch_size, rng), progress_bar, desc=f"{desc} epoch {epoch + 1}/{epochs}",
                       leave=False)
        for idx in bar:
            batch = [ids[i] for i in idx]
            if token_dropout:
                batch = drop_tokens(batch, token_dropout, drop_rng)
            input_ids, mask = collate(batch, model.config.pad_token_id, device)
            with autocast(device):
                logits = model(input_ids, attention_mask=mask).logits
            loss = loss_fn(logits.float(), idx)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            average.step()
            total, count = total + loss.item() * len(idx), count + len(idx)
            bar.set_postfix(loss=f"{total / count:.4f}")
        history["train_loss"].append(total / max(count, 1))
        if epoch == epochs - 1:
            average.apply()
        if val is not None:
            acc = evaluate(model, *val)
            history["val_acc"].append(acc)
            if acc > best_acc:
                best_acc, best_state = acc, copy.deepcopy(model.state_dict())
                history["best_epoch"] = epoch + 1
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        history["best_epoch"] = epochs
    history["seconds"] = time.perf_counter() - start
    return history


def distillation_loss(student_logits, teacher_logits, labels, revealed, temperature, alpha):
    """Hinton et al.'s loss: alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) +
    (1 - alpha) * CE(student, y). ``revealed`` marks the rows whose label may be used; the hard-label
    term is the mean cross-entropy over those rows (0 when a batch has none)."""
    T = temperature
    soft = F.kl_div(F.log_softmax(student_logits / T, -1), F.softmax(teacher_logits / T, -1),
                    reduction="batchmean") * T**2  # T^2 keeps the gradient scale independent of T
    if revealed.any() and alpha < 1:
        hard = F.cross_entropy(student_logits[revealed], labels[revealed])
    else:
        hard = student_logits.new_zeros(())
    return alpha * soft + (1 - alpha) * hard


def distil(model, ids, teacher_logits, labels, *, temperature, alpha, **fit_kwargs):
    """Train ``model`` on ``ids`` with ``distillation_loss`` against ``teacher_logits`` (numpy, one row
    per review); ``labels`` holds -1 where no label was revealed. ``fit_kwargs`` go to ``fit``."""
    device = next(model.parameters()).device
    targets = torch.from_numpy(np.asarray(teacher_logits, dtype=np.float32)).to(device)
    labels = torch.from_numpy(np.asarray(labels)).long().to(device)
    revealed = labels >= 0
    return fit(model, ids, lambda logits, idx: distillation_loss(
        logits, targets[idx], labels[idx].clamp(min=0), revealed[idx], temperature, alpha), **fit_kwargs)


class WeightAverage:
    """Running mean of a model's floating-point weights from optimizer step ``start`` on (None: off)."""

    def __init__(self, model, start):
        self.model, self.start, self.steps, self.mean, self.count = model, start, 0, None, 0

    @torch.no_grad()
    def step(self):
        self.steps += 1
        if self.start is None or self.steps <= self.start:
            return
        state = {k: v for k, v in self.model.state_dict().items() if v.is_floating_point()}
        self.count += 1
        if self.mean is None:
            self.mean = {k: v.detach().clone() for k, v in state.items()}
            return
        for k, v in state.items():
            self.mean[k].add_(v - self.mean[k], alpha=1.0 / self.count)

    def apply(self):
        """Load the mean into the model (no-op when nothing was averaged)."""
        if self.mean is not None:
            self.model.load_state_dict(self.mean, strict=False)


def make_optimizer(named_parameters, lr, weight_decay, steps):
    """AdamW with a one-cycle schedule over ``steps``; biases, norms and embeddings are not decayed."""
    named = list(named_parameters)
    decay = [p for n, p in named if p.dim() >= 2 and "emb" not in n]
    no_decay = [p for n, p in named if p.dim() < 2 or "emb" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_linear_decay(steps))


def warmup_linear_decay(steps, warmup_fraction=0.1):
    """LR factor per step: linear warm-up over the first 10% of steps, then linear decay to 0 (one cycle)."""
    warmup = max(1, int(warmup_fraction * steps))
    return lambda step: (step + 1) / warmup if step < warmup else max(0.0, (steps - step) / max(1, steps - warmup))


# ---------------------------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(model, tokenizer, folder, info):
    """Write a Hugging Face model folder (config, safetensors, tokenizer, ``training_info.json``).

    Atomic: everything goes to a temporary sibling first and is renamed into place only when
    complete, so an interrupted save leaves the previous checkpoint as it was.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / INFO_FILE, info)
        old = None
        if folder.exists():
            old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
            folder.rename(old)
        tmp.rename(folder)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return folder


def load_checkpoint(folder, made_by, device="cpu", what="checkpoint"):
    """``(model, tokenizer, info)`` from a folder written by ``save_checkpoint``.

    ``made_by`` names the script that creates the folder and ``what`` the model, for the error message.
    """
    import transformer  # noqa: F401  (registers the architecture with the Auto classes)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = check_checkpoint(folder, made_by, what)
    model = AutoModelForSequenceClassification.from_pretrained(folder).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model, tokenizer, read_json(folder / INFO_FILE)


def check_checkpoint(folder, made_by, what="checkpoint"):
    """``folder`` as a Path if it is a complete model folder, else a ``UserError`` naming the fix."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"no {what} at {folder}: run `python {made_by}` first (or pass --out-dir)")
    missing = [f for f in CHECKPOINT_FILES if not (folder / f).is_file()]
    if missing:
        raise UserError(f"incomplete {what} at {folder} (missing {', '.join(missing)}): "
                        f"run `python {made_by}` again")
    return folder


def write_json(path, obj):
    """Write JSON atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(obj, indent=1, default=_json_default) + "\n")
    os.replace(tmp, path)


def read_json(path):
    return json.loads(Path(path).read_text())


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


# ---------------------------------------------------------------------------------------------
# results.txt


def append_result(path, script, **metrics):
    """Append one line ``<UTC time> <script> key=value ...`` to ``path``, under an exclusive lock.

    Floats get 4 decimals; values must not contain whitespace. Returns the line written.
    """
    parts = [datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), script]
    for key, value in metrics.items():
        if isinstance(value, (float, np.floating)):
            value = f"{value:.4f}"
        value = str(value)
        if not value or re.search(r"\s|=", value) or re.search(r"\s|=", key):
            raise ValueError(f"results value {key}={value!r} must be non-empty, without whitespace or '='")
        parts.append(f"{key}={value}")
    line = " ".join(parts) + "\n"
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.write(line)
            f.flush()
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
    return line.rstrip("\n")


def read_results(path):
    """The records of a results file: dicts with ``time``, ``script`` and the parsed metrics."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) < 3 or not re.match(r"\d{4}-\d\d-\d\dT", fields[0]) or any("=" not in f for f in fields[2:]):
            raise UserError(f"{path}:{n} is not a results line (<time> <script> key=value ...): fix or remove it")
        record = {"time": fields[0], "script": fields[1]}
        for field in fields[2:]:
            key, value = field.split("=", 1)
            record[key] = _parse_value(value)
        records.append(record)
    return records


def _parse_value(value):
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def fingerprint(*parts):
    """A short, stable hash of arrays and strings (data identity in results lines)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(np.ascontiguousarray(part).tobytes())
            continue
        # Any other iterable (a list, a datasets Column) is hashed item by item, never by its repr.
        for item in [part] if isinstance(part, (str, bytes, int, float)) else part:
            h.update(str(item).encode("utf-8", errors="replace"))
            h.update(b"\0")
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Inference timing (compare_student.py and vanilla_inference.py)

MODELS = {"student": ("student", "origi.py"), "vanilla": ("teacher", "training.py")}


def add_inference_args(parser):
    add_common_args(parser, subsets=False)
    parser.add_argument("--n-reviews", type=int, help="size of the stratified test-split sample")
    parser.add_argument("--batch-sizes", help="comma-separated batch sizes for model-only timing")
    parser.add_argument("--e2e-batch-size", type=int, default=32, help="batch size of the end-to-end timing")
    parser.add_argument("--warmup", type=int, help="untimed runs before the timed ones")
    parser.add_argument("--repeats", type=int, help="timed runs (one run = every review once)")
    parser.add_argument("--both", action="store_true",
                        help="time student and vanilla alternately in this process; quote the median ratio")
    return parser


def time_runs(run_batch, batches, warmup, repeats, sync=None, progress_bar=False, desc="time"):
    """Call ``run_batch(b)`` for every batch, ``warmup`` untimed runs then ``repeats`` timed runs.

    Returns ``{"run_seconds": [...], "latencies": [...]}``: the seconds of each timed run and of each
    timed batch call. ``sync`` (e.g. ``torch.cuda.synchronize``) runs before every clock read.
    """
    sync = sync or (lambda: None)
    run_seconds, latencies = [], []
    for run in progress(range(warmup + repeats), progress_bar, desc=desc, leave=False):
        sync()
        start = time.perf_counter()
        for b in batches:
            t = time.perf_counter()
            run_batch(b)
            sync()
            if run >= warmup:
                latencies.append(time.perf_counter() - t)
        if run >= warmup:
            run_seconds.append(time.perf_counter() - start)
    return {"run_seconds": run_seconds, "latencies": latencies}


def summarise(timing, n_items, n_tokens):
    """Throughput from the median run; latency percentiles over all timed batches."""
    seconds = float(np.median(timing["run_seconds"]))
    lat = np.asarray(timing["latencies"]) * 1000
    return {"reviews_per_s": n_items / seconds, "tokens_per_s": n_tokens / seconds,
            "latency_ms_p50": float(np.percentile(lat, 50)), "latency_ms_p95": float(np.percentile(lat, 95))}


def inference_sample(test, n, seed):
    """A seeded, stratified sample of the test split: ``(index, texts, labels, fingerprint)``."""
    index = stratified_subset(test["label"], n, seed)
    rows = test.select(index)
    texts, labels = rows["text"], np.asarray(rows["label"])
    return index, texts, labels, fingerprint(index, texts)


def benchmark(model, tokenizer, texts, labels, args, device):
    """Accuracy, model-only speed per batch size, end-to-end speed and size of one model."""
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    ids = encode(tokenizer, texts, progress_bar=False)
    n_tokens = sum(len(x) for x in ids)
    model.eval()
    out = {"accuracy": evaluate(model, ids, labels), "per_batch_size": {}}

    @torch.inference_mode()
    def model_only(batch):
        with autocast(device):
            model(*batch)

    for bs in args.batch_sizes:
        # Inputs tokenized and padded beforehand: this times the model alone.
        batches = [collate([ids[i] for i in b], model.config.pad_token_id, device)
                   for b in length_batches([len(x) for x in ids], bs)]
        timing = time_runs(model_only, batches, args.warmup, args.repeats, sync, args.progress, f"batch {bs}")
        out["per_batch_size"][bs] = summarise(timing, len(ids), n_tokens)

    # End to end: raw text in, label out, in the order users send it, tokenization included.
    chunks = [list(texts[i:i + args.e2e_batch_size]) for i in range(0, len(texts), args.e2e_batch_size)]
    split = {"tokenize": 0.0, "model": 0.0}

    @torch.inference_mode()
    def end_to_end(chunk):
        t = time.perf_counter()
        enc = tokenizer(chunk, truncation=True, padding=True, return_tensors="pt").to(device)
        t1 = time.perf_counter()
        with autocast(device):
            model(enc["input_ids"], attention_mask=enc["attention_mask"]).logits.argmax(-1).tolist()
        split["tokenize"] += t1 - t
        split["model"] += time.perf_counter() - t1

    time_runs(end_to_end, chunks, args.warmup, 0, sync)  # warm-up, kept out of the split too
    split.update(tokenize=0.0, model=0.0)
    timing = time_runs(end_to_end, chunks, 0, args.repeats, sync, args.progress, "end to end")
    e2e = summarise(timing, len(texts), n_tokens)
    out["e2e_reviews_per_s"] = e2e["reviews_per_s"]
    out["e2e_tokenize_share"] = split["tokenize"] / (split["tokenize"] + split["model"])
    return out


def peak_memory_mb(device):
    import resource

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(args, name, texts, labels, data_fp, device, run_id):
    """Load model ``name`` (student or vanilla), benchmark it, append its results lines."""
    folder_name, made_by = MODELS[name]
    folder = args.out_dir / folder_name
    model, tokenizer, _ = load_checkpoint(folder, made_by, device, what=f"{name} model")
    result = benchmark(model, tokenizer, texts, labels, args, device)
    common_fields = dict(
        accuracy=result["accuracy"], n_reviews=len(texts), data_fingerprint=data_fp,
        e2e_reviews_per_s=result["e2e_reviews_per_s"], e2e_batch_size=args.e2e_batch_size,
        e2e_tokenize_share=result["e2e_tokenize_share"], params=model.num_params(),
        non_embedding_params=model.num_params(non_embedding=True),
        size_mb=(folder / "model.safetensors").stat().st_size / 1e6, peak_mem_mb=peak_memory_mb(device),
        threads=torch.get_num_threads(), device=device.type, warmup=args.warmup, repeats=args.repeats,
        run_id=run_id)
    for bs, stats in result["per_batch_size"].items():
        append_result(args.results, args.prog, model=name, batch_size=bs, **stats, **common_fields)
    return result | common_fields


def comparable(a, b):
    """Why two measurements cannot be compared, or None when they can."""
    for key, what in (("data_fingerprint", "data"), ("threads", "threads"), ("device", "device"),
                      ("n_reviews", "sample size")):
        if a.get(key) != b.get(key):
            return f"measured on other {what} ({key} {a.get(key)} vs {b.get(key)})"
    return None


def latest_run(records, model):
    """The lines of the most recent measurement of ``model`` in results records, by batch size."""
    mine = [r for r in records if r.get("model") == model and "run_id" in r and "batch_size" in r]
    if not mine:
        return None
    run_id = mine[-1]["run_id"]
    return {r["batch_size"]: r for r in mine if r["run_id"] == run_id}


def comparison_table(student, vanilla):
    """Lines of the side-by-side table from two runs (dicts batch_size -> record)."""
    any_s, any_v = next(iter(student.values())), next(iter(vanilla.values()))
    lines = [f"{'batch':>6} {'student rev/s':>14} {'vanilla rev/s':>14} {'speedup':>8} "
             f"{'p50 ms s/v':>16} {'latency speedup':>16}"]
    for bs in sorted(set(student) & set(vanilla)):
        s, v = student[bs], vanilla[bs]
        lines.append(f"{bs:>6} {s['reviews_per_s']:>14.1f} {v['reviews_per_s']:>14.1f} "
                     f"{s['reviews_per_s'] / v['reviews_per_s']:>7.1f}x "
                     f"{s['latency_ms_p50']:>7.2f}/{v['latency_ms_p50']:<8.2f} "
                     f"{v['latency_ms_p50'] / s['latency_ms_p50']:>15.1f}x")
    lines.append(f"end to end (batch {any_s['e2e_batch_size']}): student {any_s['e2e_reviews_per_s']:.1f} rev/s, "
                 f"vanilla {any_v['e2e_reviews_per_s']:.1f} rev/s, "
                 f"speedup {any_s['e2e_reviews_per_s'] / any_v['e2e_reviews_per_s']:.1f}x "
                 f"(tokenization {any_s['e2e_tokenize_share']:.0%} of the student's time, "
                 f"{any_v['e2e_tokenize_share']:.0%} of vanilla's)")
    lines.append(f"accuracy: student {any_s['accuracy']:.4f}, vanilla {any_v['accuracy']:.4f}, "
                 f"difference {100 * (any_s['accuracy'] - any_v['accuracy']):+.2f} points")
    lines.append(f"size: params {any_s['params']:,} vs {any_v['params']:,} "
                 f"(non-embedding {any_s['non_embedding_params']:,} vs {any_v['non_embedding_params']:,}: "
                 f"1/{any_v['non_embedding_params'] / any_s['non_embedding_params']:.0f}), "
                 f"weights {any_s['size_mb']:.2f} MB vs {any_v['size_mb']:.2f} MB")
    return lines


def run_inference_benchmark(args, name, prog):
    """The body of compare_student.py (``name="student"``) and vanilla_inference.py (``"vanilla"``)."""
    args.prog = prog
    apply_preset(args)
    args.batch_sizes = parse_ints(args.batch_sizes, "--batch-sizes", "1,32,128", positive=True)
    for key in ("n_reviews", "e2e_batch_size", "repeats"):
        if getattr(args, key) < 1:
            raise UserError(f"--{key.replace('_', '-')} must be at least 1, got {getattr(args, key)}")
    if args.warmup < 0:
        raise UserError(f"--warmup must not be negative, got {args.warmup}")
    device = setup(args)
    other = "vanilla" if name == "student" else "student"
    for model_name in ([name, other] if args.both else [name]):  # fail before measuring anything
        folder_name, made_by = MODELS[model_name]
        check_checkpoint(args.out_dir / folder_name, made_by, f"{model_name} model")
    _, test = load_imdb(args.data)
    _, texts, labels, data_fp = inference_sample(test, args.n_reviews, args.seed)
    run_id = uuid.uuid4().hex[:8]
    tqdm.write(f"{args.prog}: {len(texts)} test reviews (fingerprint {data_fp}), {torch.get_num_threads()} "
               f"threads, {device}")
    if args.both:
        return compare_alternately(args, name, other, texts, labels, data_fp, device, run_id)
    result = measure(args, name, texts, labels, data_fp, device, run_id)
    print_single(name, result)
    records = read_results(args.results)
    mine, theirs = latest_run(records, name), latest_run(records, other)
    if theirs is None:
        script = "vanilla_inference.py" if other == "vanilla" else "compare_student.py"
        print(f"not compared: no {other} measurement in {args.results} yet: run `python {script}`")
        return result
    why = comparable(next(iter(mine.values())), next(iter(theirs.values())))
    if why:
        print(f"not compared: the latest {other} measurement was {why}")
        return result
    student, vanilla = (mine, theirs) if name == "student" else (theirs, mine)
    print("\n".join(["", "student vs vanilla, from " + str(args.results)] + comparison_table(student, vanilla)))
    result["compared"] = True
    return result


def parse_ints(text, flag, example, positive=False):
    """The comma-separated integers of option ``flag`` (with ``positive``: at least one, each >= 1); a one-line
    ``UserError`` showing ``example`` if not."""
    kind = "positive integers" if positive else "integers"
    try:
        values = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        values = None
    if values is None or positive and (not values or min(values) < 1):
        raise UserError(f"{flag} takes comma-separated {kind}, e.g. {example}; got {text!r}")
    return values


def print_single(name, result):
    print(f"\n{name}: accuracy {result['accuracy']:.4f} on {result['n_reviews']} reviews, "
          f"{result['params']:,} params, {result['size_mb']:.2f} MB, peak memory {result['peak_mem_mb']:.0f} MB")
    print(f"{'batch':>6} {'rev/s':>10} {'tokens/s':>12} {'p50 ms':>9} {'p95 ms':>9}")
    for bs, s in result["per_batch_size"].items():
        print(f"{bs:>6} {s['reviews_per_s']:>10.1f} {s['tokens_per_s']:>12.0f} "
              f"{s['latency_ms_p50']:>9.2f} {s['latency_ms_p95']:>9.2f}")
    print(f"end to end (batch {result['e2e_batch_size']}): {result['e2e_reviews_per_s']:.1f} rev/s, "
          f"tokenization {result['e2e_tokenize_share']:.0%} of the time")


def compare_alternately(args, first, second, texts, labels, data_fp, device, run_id):
    """Measure the two models A B A B ... (``--repeats`` pairs of one timed run each) and report the
    speedup of every pair and its median: drift on a shared machine hits both sides of a pair."""
    models = {}
    for name in (first, second):
        folder_name, made_by = MODELS[name]
        model, tokenizer, _ = load_checkpoint(args.out_dir / folder_name, made_by, device, what=f"{name} model")
        models[name] = (model, tokenizer)
    pair_args = argparse.Namespace(**{**vars(args), "repeats": 1, "progress": False})
    runs = {first: [], second: []}
    for _ in progress(range(args.repeats), args.progress, desc="pairs"):
        for name in (first, second):
            runs[name].append(benchmark(*models[name], texts, labels, pair_args, device))
    ratios = {f"speedup_bs{bs}": [s["per_batch_size"][bs]["reviews_per_s"] / v["per_batch_size"][bs]["reviews_per_s"]
                                  for s, v in zip(runs["student"], runs["vanilla"])] for bs in args.batch_sizes}
    ratios["speedup_e2e"] = [s["e2e_reviews_per_s"] / v["e2e_reviews_per_s"]
                             for s, v in zip(runs["student"], runs["vanilla"])]
    medians = {key: float(np.median(vals)) for key, vals in ratios.items()}
    acc = {name: runs[name][0]["accuracy"] for name in runs}
    append_result(args.results, args.prog, model="pair", n_reviews=len(texts), data_fingerprint=data_fp,
                  pairs=args.repeats, **medians, accuracy_student=acc["student"], accuracy_vanilla=acc["vanilla"],
                  threads=torch.get_num_threads(), device=device.type, run_id=run_id)
    print(f"\nstudent vs vanilla, measured alternately in one process ({args.repeats} pairs):")
    for key, vals in ratios.items():
        print(f"  {key:>14}: median {medians[key]:.1f}x  (pairs: {', '.join(f'{v:.1f}' for v in vals)})")
    print(f"  accuracy: student {acc['student']:.4f}, vanilla {acc['vanilla']:.4f} "
          f"({100 * (acc['student'] - acc['vanilla']):+.2f} points)")
    return {"ratios": ratios, "medians": medians, "accuracy": acc}
