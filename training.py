"""Train the teacher on IMDB with pool-based uncertainty active learning (Settles 2009).

The training split is an unlabeled pool: its labels stay hidden and are revealed only for the reviews
the strategy asks for (the dataset plays the annotator). Starting from a random class-balanced seed set,
each round trains a fresh teacher on all labeled reviews (``--retrain cold``), scores the unlabeled
pool, and reveals the labels of the ``--query-size`` most uncertain reviews, until ``--label-budget``
labels are used. The validation set (whole runs of adjacent training rows, so mostly other movies
than the pool's) counts against that budget; the test split is used only for the final report.

Writes ``<out-dir>/teacher/`` (model, tokenizer, ``al_history.json``), ``<out-dir>/al_curve.png`` and
one ``results.txt`` line per run.

    python training.py --preset smoke --data ../shared/data/imdb
    python training.py --compare-random --seeds 1,2,3          # uncertainty vs random, 3 seeds
"""

import copy
import math
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

import common
import transformer

PROG = "training.py"


# ---------------------------------------------------------------------------------------------
# Strategies: pure functions from class probabilities (N, C) to scores (N,); higher = ask first.


def least_confidence(probs):
    return 1.0 - probs.max(axis=1)


def margin(probs):
    """Breaking ties (Scheffer et al. 2001): a small gap between the top two classes is uncertain."""
    top2 = np.sort(probs, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def entropy(probs):
    p = np.clip(probs, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1)


def bald(mc_probs):
    """Mutual information between label and weights (Houlsby et al. 2011) from MC-dropout samples
    ``(S, N, C)``: entropy of the mean prediction minus the mean entropy of the samples."""
    return entropy(mc_probs.mean(axis=0)) - np.mean([entropy(p) for p in mc_probs], axis=0)


def random_scores(n, rng):
    return rng.random(n)


# Scale of the word-vector initialisation (the random init uses 0.02), chosen on validation reviews
# from the training split: smaller scales gave the vectors too little weight to help the seed round.
EMBEDDING_INIT_STD = 0.1

# BERT's share of tokens to predict in masked-LM pre-training.
MASK_FRACTION = 0.15

STRATEGIES = {"least_confidence": least_confidence, "margin": margin, "entropy": entropy,
              "bald": bald, "random": None}


# ---------------------------------------------------------------------------------------------
# One small function per step of the loop.


def seed_set(labels, pool, n, rng):
    """``n`` random pool positions, class-balanced (the cold start needs both classes)."""
    per_class = [rng.permutation(np.flatnonzero(labels[pool] == c)) for c in (0, 1)]
    take = [n // 2 + n % 2, n // 2]
    if any(len(p) < k for p, k in zip(per_class, take)):
        raise common.UserError(f"the pool has too few reviews of one class for a balanced seed set of {n}: "
                               "lower --initial-labels")
    return np.sort(np.concatenate([pool[p[:k]] for p, k in zip(per_class, take)]))


def score(model, ids, candidates, strategy, mc_samples, rng, progress_bar=False):
    """Uncertainty scores of the ``candidates`` (positions into ``ids``)."""
    if strategy == "random":
        return random_scores(len(candidates), rng)
    cand_ids = [ids[i] for i in candidates]
    if strategy == "bald":
        samples = [common.predict_logits(model, cand_ids, mc_dropout=True, progress_bar=progress_bar,
                                         desc=f"score pool (MC sample {s + 1}/{mc_samples})")
                   for s in range(mc_samples)]
        return bald(torch.softmax(torch.from_numpy(np.stack(samples)), -1).numpy())
    logits = common.predict_logits(model, cand_ids, progress_bar=progress_bar, desc="score pool")
    return STRATEGIES[strategy](torch.softmax(torch.from_numpy(logits), -1).numpy())


def select(candidates, scores, k, rng):
    """The ``k`` highest-scoring candidates; equal scores are ordered at random."""
    order = np.lexsort((rng.random(len(scores)), -scores))
    return candidates[order[:k]]


def word_vectors(ids, vocab_size, dim, window=5, n_special=len(common.SPECIAL_TOKENS), seed=0):
    """Token vectors ``(vocab_size, dim)`` from unlabeled texts alone: truncated SVD of the positive
    PMI matrix of co-occurrence counts within +-``window`` tokens (Levy, Goldberg & Dagan 2015).

    The cold start is the weak point of active learning: a seed set of a few thousand reviews cannot
    teach 16k embeddings from scratch, whereas the pool's texts (not its labels) say which words are
    used alike. Special tokens (the first ``n_special`` ids) get zero vectors.
    """
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


def mask_tokens(input_ids, attention_mask, mask_id, vocab_size, generator, n_special=len(common.SPECIAL_TOKENS)):
    """BERT's corruption for masked-LM pre-training: ``MASK_FRACTION`` of the real, non-special tokens
    are hidden, of those 80% replaced by ``[MASK]``, 10% by a random token and 10% left as they are
    (so the encoder cannot tell which tokens it must predict). Returns ``(corrupted ids, targets)``,
    targets -100 where nothing is to be predicted; CPU tensors ``(B, T)``."""
    chosen = attention_mask.bool() & (input_ids >= n_special)
    chosen &= torch.rand(input_ids.shape, generator=generator) < MASK_FRACTION
    how = torch.rand(input_ids.shape, generator=generator)
    corrupted = input_ids.masked_fill(chosen & (how < 0.8), mask_id)
    swap = chosen & (how >= 0.8) & (how < 0.9)
    corrupted[swap] = torch.randint(n_special, vocab_size, (int(swap.sum()),), generator=generator)
    return corrupted, input_ids.masked_fill(~chosen, -100)


def pretrain(model, ids, mask_id, *, epochs, lr, batch_size, seed, progress_bar=True):
    """Masked-language-model pre-training (Devlin et al. 2019) of ``model``'s encoder on unlabeled
    token ids: texts, not labels, so every review of the pool can teach the encoder before the few
    labeled ones do. The classification head is left untouched. Returns per-epoch loss and seconds."""
    device = model.device
    head = transformer.MaskedLMHead(model.config).to(device)
    rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout masks
    lengths = np.array([len(x) for x in ids])
    steps = epochs * math.ceil(len(ids) / batch_size)
    named = [(n, p) for n, p in model.named_parameters() if not n.startswith("head.")]
    named += list(head.named_parameters(prefix="mlm"))
    optimizer, schedule = common.make_optimizer(named, lr, 0.01, steps)
    history, start = {"mlm_loss": []}, time.perf_counter()
    model.train()
    for epoch in range(epochs):
        total, count = 0.0, 0
        bar = common.progress(common.length_batches(lengths, batch_size, rng), progress_bar, leave=False,
                              desc=f"pre-train (masked LM) epoch {epoch + 1}/{epochs}")
        for idx in bar:
            input_ids, mask = common.collate([ids[i] for i in idx], model.config.pad_token_id)
            corrupted, targets = mask_tokens(input_ids, mask, mask_id, model.config.vocab_size, generator)
            targets = targets.to(device)
            hidden = targets != -100  # (B, T)
            with common.autocast(device):
                states, _ = model.encode(corrupted.to(device), mask.to(device))  # (B, T, C)
                logits = head(states[hidden], model.tok_emb.weight)  # (N, vocab_size)
            loss = F.cross_entropy(logits.float(), targets[hidden])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
            optimizer.step()
            schedule.step()
            total, count = total + loss.item(), count + 1
            bar.set_postfix(loss=f"{total / count:.3f}")
        history["mlm_loss"].append(total / max(count, 1))
    history["seconds"] = time.perf_counter() - start
    return history


def new_model(args, tokenizer, seed, vectors=None, pretrained=None):
    """A fresh teacher; ``vectors`` (from ``word_vectors``) initialise its token embeddings, or the
    ``pretrained`` state dict (from ``pretrain``) its whole encoder; the head is always fresh."""
    torch.manual_seed(seed)
    config = transformer.TransformerConfig.from_size(
        args.teacher_size, vocab_size=len(tokenizer), max_len=args.max_len,
        pad_token_id=tokenizer.pad_token_id, dropout=args.dropout, pooling=args.pooling)
    model = transformer.TransformerClassifier(config)
    scale = vectors.std() if vectors is not None else 0
    if scale > 0:
        with torch.no_grad():
            model.tok_emb.weight.copy_(vectors / scale * EMBEDDING_INIT_STD)
    if pretrained is not None:
        model.load_state_dict({k: v for k, v in pretrained.items() if not k.startswith("head.")}, strict=False)
    return model


def train_round(model, pool, labeled, val, args, seed, desc):
    """Train ``model`` on the ``labeled`` pool positions; keeps the best validation epoch."""
    ids = [pool.ids[i] for i in labeled]
    y = torch.from_numpy(pool.labels[labeled]).long().to(model.device)

    def loss(logits, idx):
        return F.cross_entropy(logits, y[idx], label_smoothing=args.label_smoothing)

    return common.fit(model, ids, loss,
                      epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=seed,
                      val=(val.ids, val.labels), average_from=args.average_from,
                      token_dropout=args.token_dropout, progress_bar=args.progress, desc=desc)


def mean_probs(models, ids, progress_bar=False):
    """The models' mean class probabilities on ``ids``, an ``(N, num_labels)`` tensor."""
    probs = [torch.from_numpy(common.predict_logits(m, ids, progress_bar=progress_bar, desc=f"logits {i + 1}/"
                                                    f"{len(models)}")).softmax(-1) for i, m in enumerate(models)]
    return torch.stack(probs).mean(0)


def with_ngram(probs, ids, ngram, ngram_weight):
    """Class probabilities ``probs`` on ``ids`` weighing ``1 - ngram_weight``, and the ``ngram`` model's
    (``NgramLogisticRegression``) ``ngram_weight``."""
    return (1 - ngram_weight) * probs + ngram_weight * torch.from_numpy(ngram.log_probs(ids)).exp()


def ensemble_logits(models, ids, progress_bar=False, ngram=None, ngram_weight=0.0):
    """Log of the models' mean class probabilities on ``ids`` (a single model: its log-softmax), with an
    ``ngram`` model's mixed in at ``ngram_weight`` (``with_ngram``)."""
    probs = mean_probs(models, ids, progress_bar)
    if ngram is not None:
        probs = with_ngram(probs, ids, ngram, ngram_weight)
    return probs.log().numpy()


def accuracy(probs, labels):
    """Accuracy of class scores ``probs`` (probabilities or logits, ``(N, num_labels)``) against ``labels``."""
    return float((np.asarray(probs).argmax(1) == np.asarray(labels)).mean())


# ---------------------------------------------------------------------------------------------
# A bag-of-n-grams member for the ensemble: it errs on other reviews than the Transformers do.

NGRAM_CS = (3.0, 10.0, 30.0, 100.0, 300.0)  # inverse L2 strengths tried; the best on validation is kept


class NgramLogisticRegression:
    """Logistic regression on the TF-IDF of a review's token unigrams and bigrams (sublinear term
    frequency, rows of norm 1): the linear bag-of-n-grams classifier that is hard to beat on sentiment
    (Wang & Manning 2012). It reads word order only within a bigram, so it is right on other reviews
    than a Transformer, and an ensemble of the two is right more often than either. Its features are
    the n-grams found in at least ``min_df`` of ``texts`` (token ids: texts, not labels), whose
    document frequencies give the idf."""

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

    def log_odds(self, X):
        """(N,) log-odds of the positive class, for features ``X`` (from ``features``)."""
        return X @ self.weight + self.bias

    def log_probs(self, ids):
        """(N, 2) log class probabilities of ``ids``."""
        z = self.log_odds(self.features(ids))
        return torch.stack([F.logsigmoid(-z), F.logsigmoid(z)], 1).numpy()

    def accuracy(self, X, labels):
        """Accuracy on features ``X`` with gold ``labels`` (a tie counts as class 0, as argmax does)."""
        return float(((self.log_odds(X) > 0).numpy() == np.asarray(labels)).mean())


def ngram_member(pool, labeled, val, vocab_size, progress_bar=False):
    """``NgramLogisticRegression`` on the ``labeled`` pool positions, its features from every pool text, with
    the C of ``NGRAM_CS`` that is best on ``val``. Returns ``(model, record)``: C, val accuracy per C, seconds."""
    start = time.perf_counter()
    model = NgramLogisticRegression(pool.ids, vocab_size)
    X, y, val_X = model.features([pool.ids[i] for i in labeled]), pool.labels[labeled], model.features(val.ids)
    val_acc, best = {}, None
    for C in common.progress(NGRAM_CS, progress_bar, desc="n-gram member", leave=False):
        model.fit(X, y, C)  # each C starts from the last one's weights: fewer L-BFGS steps
        val_acc[C] = model.accuracy(val_X, val.labels)
        if best is None or val_acc[C] > val_acc[best[0]]:
            best = (C, model.weight, model.bias)
    C, model.weight, model.bias = best
    return model, {"C": C, "val_acc": val_acc[C], "val_acc_per_C": val_acc,
                   "n_features": len(model.keys), "seconds": time.perf_counter() - start}


SELF_DISTIL_STARTS = ("fresh", "member")  # the first is the default


def crops(ids, n, rng, shortest=0.25):
    """``n`` random crops of every review in ``ids``, review after review: a contiguous span of a
    uniformly drawn ``shortest`` to all of its tokens, between the review's own first and last token
    (``[CLS]`` and ``[SEP]``)."""
    out = []
    for _ in range(n):
        for x in ids:
            inner = x[1:-1]
            keep = min(len(inner), max(1, round(len(inner) * rng.uniform(shortest, 1.0))))
            start = rng.integers(len(inner) - keep + 1)
            out.append(np.concatenate([x[:1], inner[start:start + keep], x[-1:]]))
    return out


def distils(args):
    """Whether the run ends with a distillation step (--self-distil, or an ensemble to distil)."""
    return args.self_distil or args.ensemble > 1 or args.ngram_weight > 0


def self_distil(teachers, tokenizer, pool, labeled, val, args, seed, vectors=None, pretrained=None,
                desc="self-distil", ngram=None):
    """A model of the teachers' size distilled from ``teachers`` (a list: one model, or an ensemble whose
    class probabilities are averaged) on the whole pool: their soft labels on every review, the hard label
    only at the ``labeled`` pool positions. A born-again network (Furlanello et al. 2018) whose transfer
    set adds the reviews active learning left unlabeled. It starts fresh, or (``--self-distil-start
    member``) as a copy of ``teachers[0]``, which is left untouched. ``--self-distil-crops N`` adds N
    random crops of every pool review to the transfer set, labeled by the teachers alone: more points
    at which to match the teachers' function, for the price of scoring them (Tang et al. 2019 distil
    on n-gram samples; Beyer et al. 2022 on views the teacher sees too). An ``ngram`` model joins the
    teachers with the weight ``--ngram-weight`` (``ensemble_logits``). Returns ``(model, fit history)``."""
    labels = np.full(len(pool), -1)
    labels[labeled] = pool.labels[labeled]  # what active learning revealed, and nothing else
    ids = pool.ids
    if args.self_distil_crops:
        # A crop may hold none of its review's verdict, so it never takes the review's label.
        ids = ids + crops(pool.ids, args.self_distil_crops, np.random.default_rng([seed, 1]))
        labels = np.concatenate([labels, np.full(len(ids) - len(pool), -1)])
    logits = ensemble_logits(teachers, ids, args.progress, ngram, args.ngram_weight)
    if args.self_distil_start == "member":
        model = copy.deepcopy(teachers[0])
    else:
        model = new_model(args, tokenizer, seed, vectors, pretrained).to(teachers[0].device)
    fit = common.distil(model, ids, logits, labels, temperature=args.temperature, alpha=args.alpha,
                        epochs=args.self_distil_epochs or args.epochs, lr=args.lr, batch_size=args.batch_size,
                        seed=seed, val=(val.ids, val.labels), average_from=args.average_from,
                        token_dropout=args.self_distil_token_dropout, progress_bar=args.progress, desc=desc)
    return model, fit


# ---------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = common.make_parser(PROG, __doc__)
    common.add_common_args(p)
    p.add_argument("--strategy", default="margin", choices=list(STRATEGIES), help="query strategy")
    p.add_argument("--initial-labels", type=int, help="size of the random class-balanced seed set")
    p.add_argument("--query-size", type=int, help="labels revealed per round")
    p.add_argument("--label-budget", type=int, help="labels used in all, validation labels included")
    p.add_argument("--rounds", type=int, default=None, help="stop after this many query rounds")
    p.add_argument("--pool-sample", type=int, help="score a random subset of this many unlabeled reviews "
                   "per round (0: the whole pool)")
    p.add_argument("--mc-samples", type=int, default=10, help="MC-dropout samples for bald")
    p.add_argument("--retrain", default="cold", choices=["warm", "cold"],
                   help="cold: a fresh model each round; warm: continue from last round's weights, which "
                        "trains early labels again every round and overfits them (same cost: each round "
                        "trains on the whole labeled set)")
    p.add_argument("--embedding-init", default="ppmi", choices=["ppmi", "random"],
                   help="ppmi: token embeddings start from word vectors of the training texts (no labels), "
                        "which helps the small seed round; random: from scratch")
    p.add_argument("--pretrain-epochs", type=int, default=0,
                   help="epochs of masked-LM pre-training on the training texts (no labels) before the first "
                        "round; every round's fresh model starts from it (0: none)")
    p.add_argument("--pretrain-lr", type=float, default=1e-3, help="peak learning rate of the pre-training")
    p.add_argument("--epochs", type=int, help="epochs per round")
    p.add_argument("--lr", type=float, help="peak learning rate (one-cycle AdamW)")
    p.add_argument("--batch-size", type=int)
    # 0.2 beat 0.1 on both seeds of the development set (benchmarks/teacher_dev_dropout/log.txt).
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--token-dropout", type=float, default=0.0,
                   help="word dropout: each training step deletes this fraction of every labeled review's tokens "
                        "(not in the distillation of --self-distil and --ensemble, which has its own flag; off by "
                        "default: it did not help on the development set, README)")
    p.add_argument("--label-smoothing", type=float, default=0.0,
                   help="the labeled reviews' targets give this much probability to the two classes evenly "
                        "(Szegedy et al. 2016; not in the distillation of --self-distil and --ensemble; off by "
                        "default: it did not help on the development set, README)")
    p.add_argument("--average-from", type=float, default=None,
                   help="average the weights over the steps after this fraction of each model's training "
                        "(stochastic weight averaging; off by default)")
    p.add_argument("--pooling", default="mean", choices=list(transformer.POOLINGS),
                   help="review vector: mean of the token states, or mean and max side by side")
    p.add_argument("--self-distil", action="store_true",
                   help="after the last round, distil the teacher into a fresh model of its own size on the "
                        "whole pool (soft labels on every review, hard labels where revealed) and keep that")
    p.add_argument("--ensemble", type=int,
                   help="after the last round, train ENSEMBLE-1 more models afresh on the same labels and distil "
                        "the mean probabilities of all of them into the teacher, as --self-distil does with one "
                        "(1: no ensemble; --self-distil --ensemble 1 distils the last round's model alone)")
    p.add_argument("--ngram-weight", type=float, default=0.0,
                   help="after the last round, also fit a logistic regression on TF-IDF unigrams and bigrams to "
                        "the same labels and give its probabilities this weight against the Transformers' mean "
                        "in what is distilled into the teacher (0: none; off by default: the ensemble gained and its "
                        "distilled teacher lost on the development set, README)")
    common.add_distillation_args(p, of=" of --self-distil and --ensemble")
    p.add_argument("--self-distil-epochs", type=int, default=None,
                   help="epochs of the distillation of --self-distil and --ensemble (default: --epochs)")
    p.add_argument("--self-distil-start", default=SELF_DISTIL_STARTS[0], choices=SELF_DISTIL_STARTS,
                   help="the distilled model starts from a fresh initialisation, or from the weights of the "
                        "last round's model (the ensemble's first member)")
    p.add_argument("--self-distil-crops", type=int, default=0,
                   help="random crops (a quarter to all of a review's tokens) of every pool review added to the "
                        "transfer set of the distillation of --self-distil and --ensemble, labeled by the teachers "
                        "alone")
    p.add_argument("--self-distil-token-dropout", type=float, default=0.0,
                   help="word dropout on the distilled model's inputs in the distillation of --self-distil and "
                        "--ensemble, while the teachers' soft labels come from the whole reviews (a noised student, "
                        "Xie et al. 2020; 0: none)")
    p.add_argument("--val-size", type=int, help="validation reviews carved from the training split")
    p.add_argument("--val-block", type=int, default=100,
                   help="validation takes whole runs of this many adjacent training rows: IMDB lists a movie's "
                        "reviews together, so this keeps most validation movies out of the pool, as the test "
                        "split's are (1: reviews one by one)")
    p.add_argument("--vocab-size", type=int)
    p.add_argument("--max-len", type=int, help="tokens kept per review (the end of long reviews)")
    p.add_argument("--teacher-size", choices=list(transformer.SIZES), help="model size of the teacher")
    p.add_argument("--compare-random", action="store_true", help="also run the random baseline")
    p.add_argument("--seeds", default=None, help="comma-separated seeds of the active learning runs "
                   "(default: --seed); the data split always uses --seed")
    p.add_argument("--eval-test-each-round", action="store_true",
                   help="report test accuracy per round (reported only, never used to choose anything)")
    p.add_argument("--resume", action="store_true", help="continue interrupted runs from their last round")
    return p.parse_args(argv)


def check_fractions(args, names, bad):
    """Call ``bad(message)`` for the first option of ``names`` outside [0, 1)."""
    for name in names:
        if not 0.0 <= getattr(args, name) < 1.0:
            bad(f"--{name.replace('_', '-')} must be in [0, 1), got {getattr(args, name)}")


def check_args(args, pool_size):
    """Every option error, before anything is written."""
    def bad(msg):
        raise common.UserError(msg)

    ask = args.label_budget - args.val_size
    if args.query_size < 1:
        bad(f"--query-size must be at least 1, got {args.query_size}")
    if args.initial_labels < 2:
        bad(f"--initial-labels must be at least 2 (one per class), got {args.initial_labels}")
    if args.initial_labels > ask:
        bad(f"--initial-labels {args.initial_labels} plus the {args.val_size} validation labels exceed "
            f"--label-budget {args.label_budget}: raise the budget or lower --initial-labels")
    if args.initial_labels > pool_size:
        bad(f"--initial-labels {args.initial_labels} exceeds the pool of {pool_size} reviews")
    if ask > pool_size:
        bad(f"--label-budget {args.label_budget} exceeds the {pool_size} pool + {args.val_size} validation "
            "reviews: lower it or use more training data")
    for name in ("epochs", "batch_size", "mc_samples", "max_len", "vocab_size", "val_block"):
        if getattr(args, name) < 1:
            bad(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.rounds is not None and args.rounds < 0 or args.pool_sample < 0:
        bad("--rounds and --pool-sample must not be negative")
    if args.pretrain_epochs < 0 or args.pretrain_lr <= 0:
        bad(f"--pretrain-epochs must not be negative and --pretrain-lr must be positive, got "
            f"{args.pretrain_epochs} and {args.pretrain_lr}")
    check_fractions(args, ("dropout", "token_dropout", "label_smoothing", "self_distil_token_dropout"), bad)
    common.check_distillation_args(args)
    if args.ensemble < 1:
        bad(f"--ensemble must be at least 1, got {args.ensemble}")
    if args.self_distil_epochs is not None and args.self_distil_epochs < 1:
        bad(f"--self-distil-epochs must be at least 1, got {args.self_distil_epochs}")
    if not 0.0 <= args.ngram_weight <= 1.0:
        bad(f"--ngram-weight must be between 0 and 1, got {args.ngram_weight}")
    if args.self_distil_crops < 0:
        bad(f"--self-distil-crops must not be negative, got {args.self_distil_crops}")
    for flag, given in (("--temperature", args.temperature != common.TEMPERATURE),
                        ("--alpha", args.alpha != common.ALPHA),
                        ("--self-distil-epochs", args.self_distil_epochs is not None),
                        ("--self-distil-start", args.self_distil_start != SELF_DISTIL_STARTS[0]),
                        ("--self-distil-crops", args.self_distil_crops != 0),
                        ("--self-distil-token-dropout", args.self_distil_token_dropout != 0)):
        if given and not distils(args):
            bad(f"{flag} sets the distillation of --self-distil or --ensemble > 1, and this run has none: "
                "add one of them or drop it")
    if args.average_from is not None and not 0.0 <= args.average_from < 1.0:
        bad(f"--average-from must be in [0, 1), got {args.average_from}")


def parse_seeds(args):
    seeds = common.parse_ints(args.seeds or args.seed, "--seeds", "1,2,3")
    if not seeds or len(set(seeds)) != len(seeds):
        raise common.UserError(f"--seeds needs distinct integers, e.g. 1,2,3; got {args.seeds!r}")
    return seeds


def settings(args):
    """What defines a run: a resumed run must have the same."""
    keys = ("preset", "strategy", "initial_labels", "query_size", "label_budget", "rounds", "pool_sample",
            "mc_samples", "retrain", "embedding_init", "pretrain_epochs", "pretrain_lr", "self_distil", "ensemble",
            "self_distil_epochs", "self_distil_start", "self_distil_crops", "self_distil_token_dropout", "ngram_weight",
            "temperature", "alpha", "epochs", "lr", "batch_size", "dropout", "token_dropout", "label_smoothing",
            "pooling", "average_from", "val_size", "val_block", "vocab_size", "max_len", "teacher_size",
            "max_train_samples", "max_test_samples", "seed")
    return {k: getattr(args, k) for k in keys} | {"data": common.data_source(args.data)}


def state_dir(args, strategy, seed):
    return args.out_dir / "al_state" / f"{strategy}_seed{seed}"


def resumed_tokenizer(args, seeds):
    """With --resume, the tokenizer saved by the interrupted run: its weights were trained on those ids
    (another version of ``tokenizers`` could train other ones), and it saves the time of training it."""
    from transformers import AutoTokenizer

    if args.resume:
        for seed in seeds:
            folder = state_dir(args, args.strategy, seed)
            if (folder / "tokenizer.json").is_file():
                return AutoTokenizer.from_pretrained(folder)
    return None


# What the pre-trained encoder depends on (the texts, the tokenizer, the encoder and its training); a
# run with other query settings or seeds can reuse it.
PRETRAIN_SETTINGS = ("embedding_init", "pretrain_epochs", "pretrain_lr", "batch_size", "dropout", "val_size",
                     "val_block", "vocab_size", "max_len", "teacher_size", "max_train_samples", "seed", "data")


def pretrained_encoder(args, tokenizer, ids, vectors, device, folder, wanted, seed, reuse):
    """The state dict of a teacher pre-trained as a masked LM on ``ids`` (texts, no labels), and the
    pre-training's history. Saved in ``folder`` (None: not saved) with the ``wanted`` settings; with
    ``reuse``, an encoder already there is read back instead, if it was made with the same settings."""
    if reuse and folder is not None and folder.exists():
        model, _, info = common.load_checkpoint(folder, PROG, device, what="pre-trained encoder")
        diff = sorted(k for k in wanted if info["settings"].get(k) != wanted[k])
        if diff:
            raise common.UserError(f"cannot reuse {folder}: it was pre-trained with other settings "
                                   f"({', '.join(diff)}); rerun with those, or start afresh")
        common.tqdm.write(f"{PROG}: resuming with the pre-trained encoder in {folder}")
        return model.state_dict(), info["history"]
    model = new_model(args, tokenizer, seed, vectors).to(device)
    history = pretrain(model, ids, tokenizer.mask_token_id, epochs=args.pretrain_epochs, lr=args.pretrain_lr,
                       batch_size=args.batch_size, seed=seed, progress_bar=args.progress)
    if folder is not None:
        common.save_checkpoint(model, tokenizer, folder, {"settings": wanted, "history": history})
    common.tqdm.write(f"{PROG}: masked-LM pre-training {history['seconds']:.0f}s, loss per epoch "
                      + " ".join(f"{x:.3f}" for x in history["mlm_loss"]))
    return model.state_dict(), history


def ensemble_step(model, labeled, rounds, args, strategy, seed, pool, val, test, tokenizer, device, vectors=None,
                  pretrained=None):
    """After the last of ``rounds``: ``--ensemble`` - 1 more models trained afresh on the final ``labeled``
    set (and with ``--ngram-weight``, an ``ngram_member`` on it), and the mean of all their probabilities,
    the last round's ``model`` included, distilled into a fresh model on the whole pool. Returns
    ``(distilled model, history record)``."""
    r = len(rounds)
    members, member_val_acc, start = [model], [rounds[-1]["val_acc"]], time.perf_counter()
    for k in range(1, args.ensemble):
        member_seed = int(np.random.default_rng([seed, r, k]).integers(2**31))
        members.append(new_model(args, tokenizer, member_seed, vectors, pretrained).to(device))
        fit = train_round(members[-1], pool, labeled, val, args, member_seed,
                          desc=f"{strategy} s{seed} member {k + 1}/{args.ensemble}")
        member_val_acc.append(max(fit["val_acc"]))
    record = {"labels_used": rounds[-1]["labels_used"], "member_val_acc": member_val_acc}
    probs, ngram = mean_probs(members, val.ids), None
    if args.ngram_weight > 0:
        ngram, record["ngram_member"] = ngram_member(pool, labeled, val, len(tokenizer), args.progress)
        record["transformers_val_acc"] = accuracy(probs, val.labels)
        probs = with_ngram(probs, val.ids, ngram, args.ngram_weight)
    record["ensemble_val_acc"] = accuracy(probs, val.labels)
    distil_seed = int(np.random.default_rng([seed, r]).integers(2**31))
    model, fit = self_distil(members, tokenizer, pool, labeled, val, args, distil_seed, vectors, pretrained,
                             desc=f"{strategy} s{seed} self-distil", ngram=ngram)
    record |= {"val_acc": max(fit["val_acc"]), "train_seconds": time.perf_counter() - start, "epochs": fit}
    if args.eval_test_each_round:
        record["test_acc"] = common.evaluate(model, test.ids, test.labels)
    what = "teacher"
    if ngram is not None:
        what = (f"ensemble of {args.ensemble} and the n-gram member (val_acc {record['ngram_member']['val_acc']:.4f}, "
                f"C={record['ngram_member']['C']:g}; together {record['ensemble_val_acc']:.4f})")
    elif args.ensemble > 1:
        what = f"ensemble of {args.ensemble} (val_acc {record['ensemble_val_acc']:.4f})"
    common.tqdm.write(f"{strategy} seed {seed} {what} distilled on the whole pool: val_acc={record['val_acc']:.4f}"
                      + (f" test_acc={record['test_acc']:.4f}" if "test_acc" in record else "")
                      + f" seconds={record['train_seconds']:.1f}")
    return model, record


def run_active_learning(args, strategy, seed, pool, val, test, tokenizer, device, vectors=None, pretrained=None):
    """One active-learning run; returns ``(model, history)``. Resumable round by round. ``vectors``
    initialise the token embeddings of every fresh model, or ``pretrained`` its whole encoder."""
    folder = state_dir(args, strategy, seed)
    run_settings = settings(args) | {"strategy": strategy, "run_seed": seed}
    model, state = None, None
    if args.resume and folder.exists():
        model, saved_tokenizer, state = common.load_checkpoint(folder, PROG, device)
        if saved_tokenizer.get_vocab() != tokenizer.get_vocab():
            raise common.UserError(f"cannot --resume {folder}: its tokenizer differs from this run's "
                                   "(other data?); rerun with the same --data or without --resume")
        # An option added after the state was written is missing from it: that run used its default.
        defaults = vars(common.apply_preset(parse_args(["--preset", args.preset])))
        diff = sorted(k for k in run_settings if state["settings"].get(k, defaults.get(k)) != run_settings[k])
        if diff:
            raise common.UserError(f"cannot --resume {folder}: it was started with other settings "
                                   f"({', '.join(diff)}); rerun with those or without --resume")
        common.tqdm.write(f"{PROG}: resuming {strategy} seed {seed} after round {state['rounds'][-1]['round']}")
    if state is None:
        rng = np.random.default_rng([seed, 0])
        labeled = seed_set(pool.labels, np.arange(len(pool)), args.initial_labels, rng)
        state = {"settings": run_settings, "labeled": labeled.tolist(), "rounds": [], "done": False}
    labeled = np.asarray(state["labeled"])
    budget = args.label_budget - args.val_size
    max_rounds = args.rounds if args.rounds is not None else np.inf

    while not state["done"]:
        r = len(state["rounds"])
        round_seed = int(np.random.default_rng([seed, r]).integers(2**31))
        if model is None or args.retrain == "cold":
            model = new_model(args, tokenizer, round_seed, vectors, pretrained).to(device)
        fit = train_round(model, pool, labeled, val, args, round_seed, desc=f"{strategy} s{seed} r{r}")
        record = {"round": r, "n_labeled": len(labeled), "labels_used": len(labeled) + len(val),
                  "val_acc": max(fit["val_acc"]), "train_seconds": fit["seconds"], "epochs": fit}
        if args.eval_test_each_round:
            record["test_acc"] = common.evaluate(model, test.ids, test.labels)

        k = min(args.query_size, budget - len(labeled))
        if k > 0 and r < max_rounds:
            start = time.perf_counter()
            rng = np.random.default_rng([seed, r, 1])
            torch.manual_seed(round_seed)  # MC-dropout masks
            unlabeled = np.setdiff1d(np.arange(len(pool)), labeled)
            candidates = unlabeled
            if 0 < args.pool_sample < len(unlabeled):
                candidates = np.sort(rng.choice(unlabeled, args.pool_sample, replace=False))
            scores = score(model, pool.ids, candidates, strategy, args.mc_samples, rng, args.progress)
            chosen = select(candidates, scores, k, rng)
            labeled = np.concatenate([labeled, chosen])  # revealing = adding to the labeled set
            record["queried"] = pool.index[chosen].tolist()
            record["query_seconds"] = time.perf_counter() - start
        else:
            state["done"] = True
        state["rounds"].append(record)
        state["labeled"] = labeled.tolist()
        common.save_checkpoint(model, tokenizer, folder, state)
        common.tqdm.write(f"{strategy} seed {seed} round {r}: labels_used={record['labels_used']} "
                          f"val_acc={record['val_acc']:.4f}"
                          + (f" test_acc={record['test_acc']:.4f}" if "test_acc" in record else "")
                          + f" seconds={record['train_seconds'] + record.get('query_seconds', 0):.1f}")

    if distils(args) and "self_distil" not in state:
        model, state["self_distil"] = ensemble_step(model, labeled, state["rounds"], args, strategy, seed, pool, val,
                                                    test, tokenizer, device, vectors, pretrained)
        common.save_checkpoint(model, tokenizer, folder, state)
    return model, state


def curve_summary(runs, metric):
    """Per strategy: mean and std of ``metric`` over seeds at each labels_used."""
    out = {}
    for strategy in dict.fromkeys(r["strategy"] for r in runs):
        curves = [r for r in runs if r["strategy"] == strategy]
        x = [rec["labels_used"] for rec in curves[0]["rounds"]]
        ys = np.array([[rec[metric] for rec in r["rounds"]] for r in curves])
        out[strategy] = {"labels_used": x, "mean": ys.mean(0).tolist(), "std": ys.std(0).tolist()}
    return out


def label_savings(summary, strategy):
    """Labels ``strategy`` needs to reach random's final mean accuracy, as a fraction of random's."""
    rnd, ours = summary["random"], summary[strategy]
    target = rnd["mean"][-1]
    for x, y in zip(ours["labels_used"], ours["mean"]):
        if y >= target:
            return x / rnd["labels_used"][-1]
    return None


def plot_curves(summary, metric, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy, c in summary.items():
        x, m, s = np.array(c["labels_used"]), np.array(c["mean"]), np.array(c["std"])
        ax.plot(x, m, marker="o", label=strategy)
        ax.fill_between(x, m - s, m + s, alpha=0.2)
    ax.set_xlabel("labels used (validation included)")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title("Active learning on IMDB: mean ± std over seeds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def main(argv=None):
    args = parse_args(argv)
    with common.user_errors(PROG):
        return run(args)


def data_split(args, train_labels, test_labels):
    """Indices of a run's data: ``(everything, pool, validation, test)``. ``everything`` is the stratified
    subset of the training split the preset uses (all of it on ``full``), its texts the tokenizer's; the
    validation set is carved from it in runs of ``--val-block`` rows; the test subset is stratified too.
    Checks the options against the pool's size first."""
    train_labels = np.asarray(train_labels)
    everything = common.stratified_subset(train_labels, args.max_train_samples, args.seed)
    if args.val_size >= len(everything):
        raise common.UserError(f"--val-size {args.val_size} leaves no pool out of {len(everything)} reviews")
    check_args(args, len(everything) - args.val_size)
    pool_index, val_index = common.split_off(everything, train_labels, args.val_size, args.seed, args.val_block)
    return everything, pool_index, val_index, common.stratified_subset(test_labels, args.max_test_samples, args.seed)


def run(args):
    common.apply_preset(args)
    seeds = parse_seeds(args)
    device = common.setup(args)
    train, test_split = common.load_imdb(args.data)
    everything, pool_index, val_index, test_index = data_split(args, train["label"], test_split["label"])

    start = time.perf_counter()
    tokenizer = resumed_tokenizer(args, seeds) or common.train_tokenizer(
        train.select(everything)["text"], args.vocab_size, args.max_len)
    pool = common.make_split(train, pool_index, tokenizer, args.progress)
    val = common.make_split(train, val_index, tokenizer, args.progress)
    test = common.make_split(test_split, test_index, tokenizer, args.progress)
    # pool.labels play the annotator: the loop reads them only for the seed set and queried reviews.
    cut = np.mean([len(x) == args.max_len for x in pool.ids])  # longer reviews were cut to max_len
    common.tqdm.write(f"{PROG}: pool {len(pool)}, validation {len(val)}, test {len(test)}, "
                      f"tokenizer + encoding {time.perf_counter() - start:.1f}s, device {device}; "
                      f"{cut:.0%} of pool reviews cut to their last {args.max_len} tokens")

    vectors = None
    if args.embedding_init == "ppmi":
        start = time.perf_counter()
        d_model = transformer.SIZES[args.teacher_size]["d_model"]
        # Texts, not labels, of the reviews the tokenizer was trained on (pool and validation).
        vectors = word_vectors(pool.ids + val.ids, len(tokenizer), d_model)
        common.tqdm.write(f"{PROG}: word vectors from the training texts {time.perf_counter() - start:.1f}s")

    pretrained, pretraining = None, None
    if args.pretrain_epochs:
        wanted = {k: v for k, v in settings(args).items() if k in PRETRAIN_SETTINGS}
        pretrained, pretraining = pretrained_encoder(args, tokenizer, pool.ids + val.ids, vectors, device,
                                                     args.out_dir / "al_state" / "pretrained", wanted, args.seed,
                                                     reuse=args.resume)

    strategies = [args.strategy] + (["random"] if args.compare_random and args.strategy != "random" else [])
    runs, teacher = [], None
    for strategy in strategies:
        for seed in seeds:
            t0 = time.perf_counter()
            model, state = run_active_learning(args, strategy, seed, pool, val, test, tokenizer, device, vectors,
                                               pretrained)
            final = state.get("self_distil", state["rounds"][-1])
            run_record = {"strategy": strategy, "seed": seed, "rounds": state["rounds"],
                          "self_distil": state.get("self_distil"),
                          "labeled_index": pool.index[state["labeled"]].tolist(),
                          "test_acc": common.evaluate(model, test.ids, test.labels),
                          "seconds": time.perf_counter() - t0}
            runs.append(run_record)
            common.append_result(
                args.results, PROG, model="teacher", strategy=strategy, labels_used=final["labels_used"],
                pool_size=len(pool), rounds=len(state["rounds"]) - 1, test_acc=run_record["test_acc"],
                val_acc=final["val_acc"], params=model.num_params(), train_seconds=run_record["seconds"],
                seed=seed, preset=args.preset, retrain=args.retrain, self_distilled="self_distil" in state,
                ensemble=args.ensemble if "self_distil" in state else 1,
                ngram_weight=args.ngram_weight if "self_distil" in state else 0,
                average_from="off" if args.average_from is None else args.average_from)
            if teacher is None:
                teacher = model

    metric = "test_acc" if args.eval_test_each_round else "val_acc"
    summary = curve_summary(runs, metric)
    history = {"settings": settings(args), "seeds": seeds, "teacher_strategy": args.strategy,
               "teacher_seed": seeds[0], "pool_index": pool.index.tolist(), "val_index": val.index.tolist(),
               "pool_fingerprint": common.fingerprint(pool.index, train.select(pool.index)["text"]),
               "test_index": test.index.tolist(), "revealed_index": runs[0]["labeled_index"],
               "labels_used": runs[0]["rounds"][-1]["labels_used"], "curve_metric": metric,
               "summary": summary, "pretraining": pretraining, "runs": runs}
    if "random" in summary and args.strategy != "random":
        history["label_fraction_to_match_random"] = label_savings(summary, args.strategy)
        history["gain_over_random_at_budget"] = summary[args.strategy]["mean"][-1] - summary["random"]["mean"][-1]
    folder = common.save_checkpoint(teacher, tokenizer, args.out_dir / "teacher",
                                    {"script": PROG, "params": teacher.num_params(),
                                     "non_embedding_params": teacher.num_params(non_embedding=True),
                                     "test_acc": runs[0]["test_acc"], "settings": settings(args)})
    common.write_json(folder / "al_history.json", history)
    plot_curves(summary, metric, args.out_dir / "al_curve.png")

    for strategy, c in summary.items():
        print(f"{strategy:>16}: final {metric} {c['mean'][-1]:.4f} ± {c['std'][-1]:.4f} "
              f"at {c['labels_used'][-1]} labels")
        distilled = [r["self_distil"][metric] for r in runs if r["strategy"] == strategy and r["self_distil"]]
        if distilled:
            print(f"{'':>16}  distilled on the whole pool: {metric} {np.mean(distilled):.4f} ± "
                  f"{np.std(distilled):.4f}")
    if "label_fraction_to_match_random" in history:
        frac = history["label_fraction_to_match_random"]
        print(f"{args.strategy} reaches random's final {metric} with "
              + (f"{frac:.0%} of its labels" if frac is not None else "no budget tried (not reached)")
              + f"; at the full budget it is {100 * history['gain_over_random_at_budget']:+.2f} points from random")
    print(f"teacher: test_acc {runs[0]['test_acc']:.4f}, {teacher.num_params():,} params -> {folder}")
    return {"test_acc": runs[0]["test_acc"], "labels_used": history["labels_used"], "teacher_dir": str(folder),
            "summary": summary, "runs": runs,
            **{k: history[k] for k in ("label_fraction_to_match_random", "gain_over_random_at_budget") if k in history}}


if __name__ == "__main__":
    main()
