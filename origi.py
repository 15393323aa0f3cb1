"""Distil the active-learning teacher into a small student with soft labels (Hinton et al. 2015).

Loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, y).
The transfer set is the whole active-learning pool and, with ``--unlabeled imdb`` (the default on ``quick`` and
``full``), IMDB's unlabeled reviews (a seeded subset on ``quick``): the teacher's soft labels cost nothing,
so the student learns from every training review, labeled or not. The hard-label term uses only the labels
active learning revealed (read from the teacher's ``al_history.json``); unrevealed labels are never read.
Unless ``--skip-baseline``, the same student is also trained without a teacher on the revealed labels
only (``student_no_kd``): the ablation that shows what distillation bought. The student can read fewer
tokens than the teacher (``--max-len``; 256 on ``full``, where the teacher reads 512): the teacher's soft labels
come from whole reviews, the student learns them from each review's end and serves faster. A teacher with a bag
of n-grams beside its encoder (``training.py``) gives its encoder's logits as the soft labels, and both students
get the bag itself: a student too small to learn a sum of n-gram weights from soft labels carries it instead.
The bag reads what it read in the teacher (all 512 tokens on ``full``), the student's encoder its ``--max-len``.

Writes ``<out-dir>/student/`` (and ``<out-dir>/student_no_kd/``), each with ONNX copies, and one ``results.txt``
line per model. Run again after an interruption, the same command reuses a model it already trained.

    python origi.py --preset smoke --data ../shared/data/imdb
    python origi.py --temperature 2 --alpha 0.7     # less weight on the teacher
    python origi.py --preset full --max-len 512      # the student reads as much as the teacher
"""

import json

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

import common
import transformer
from labelless import UserError, distributed, store
from labelless.data import Reviews, encode_rows, unlabeled_subset
from labelless.distill import ALPHA, TEMPERATURE, DistillSettings, distil
from labelless.fit import (ModelSettings, TrainSettings, accuracy, beside, encoder_logits, evaluate, fit, new_model,
                           predict_logits)
from labelless.runtime import say
from labelless.sources import data_source, load_corpus, load_unlabeled
from labelless.text import encode

PROG = "origi.py"


def parse_args(argv=None):
    p = common.make_parser(PROG, __doc__)
    common.add_common_args(p)
    p.add_argument("--temperature", type=float, default=TEMPERATURE, help="softmax temperature T")
    p.add_argument("--alpha", type=float, default=ALPHA, help="weight of the soft (teacher) term")
    p.add_argument("--student-size", choices=list(transformer.SIZES), help="model size of the student")
    p.add_argument("--distill-epochs", type=int, help="epochs, for the student and the baseline alike")
    p.add_argument("--lr", dest="distill_lr", metavar="LR", type=float, help="peak learning rate (one-cycle AdamW)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--unlabeled", dest="student_unlabeled", choices=["imdb", "none"],
                   help="imdb: IMDB's unlabeled reviews (a seeded subset on the small presets) join the student's "
                        "transfer set; none: the pool alone (default: imdb on quick and full, none on smoke)")
    p.set_defaults(unlabeled_samples=None)  # how many: set by the preset
    p.add_argument("--max-len", dest="student_max_len", type=int, metavar="N",
                   help="tokens the student's encoder reads, each review's last ones: at most the teacher's "
                        "(full: 256; else the teacher's); a bag of n-grams copied from the teacher reads the teacher's")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--no-distill", action="store_true",
                      help="train only the student without a teacher (revealed labels only)")
    kind.add_argument("--skip-baseline", action="store_true", help="train only the distilled student")
    return p.parse_args(argv)


def check_args(args):
    common.check_range(args, "temperature", 0, low_open=True)
    common.check_range(args, "alpha", 0, 1)
    if args.no_distill and (args.temperature != TEMPERATURE or args.alpha != ALPHA):
        raise UserError("--temperature and --alpha set the distillation, which --no-distill skips: "
                        "drop them or --no-distill")
    for name in ("distill_epochs", "batch_size"):
        common.check_range(args, name, 1)
    common.check_range(args, "distill_lr", 0, low_open=True, flag="--lr")
    common.check_range(args, "dropout", 0, 1, high_open=True)


def load_transfer_data(data, columns, history, tokenizer, progress_bar, unlabeled_samples=0, required=True):
    """``(transfer, val, test)`` ``Reviews`` (``test`` None: the data has no test split). Transfer labels
    are -1 except where active learning revealed them. The transfer set is the pool, then ``unlabeled_samples``
    unlabeled reviews (None: all; their ``index`` counts rows of the unlabeled split), chosen with the teacher's
    data seed; data without them is an error only if ``required``."""
    corpus = load_corpus(data, columns)
    train, test = corpus.train, corpus.test
    pool_index = np.asarray(history.pool_index)
    pool_texts = train.select(pool_index)["text"] if pool_index.max() < len(train) else None
    if pool_texts is None or store.fingerprint(pool_index, pool_texts) != history.pool_fingerprint:
        raise UserError(f"the data at {data_source(data)} is not the data the teacher was "
                        f"trained on ({history.settings['data']}): pass that --data (and its --text-column)")
    transfer = Reviews(pool_index, encode(tokenizer, pool_texts, progress_bar), np.full(len(pool_index), -1))
    revealed = np.asarray(history.revealed_index)
    position = {i: n for n, i in enumerate(pool_index)}
    # Only these labels are read: the run's own record of them (a person's answers), else the data's.
    transfer.labels[[position[i] for i in revealed]] = (history.revealed_labels if history.revealed_labels is not None
                                                        else train.select(revealed)["label"])
    unsup = None
    if unlabeled_samples != 0:
        try:
            unsup = load_unlabeled(data)
        except UserError:
            if required:
                raise
            say(f"{PROG}: {data_source(data)} has no unlabeled reviews: the student's transfer set is the pool alone")
    if unsup is not None:
        rows = unlabeled_subset(len(unsup), unlabeled_samples, history.settings["seed"])
        more = encode_rows(unsup, rows, tokenizer, progress_bar)
        transfer = Reviews(np.concatenate([transfer.index, more.index]), transfer.ids + more.ids,
                           np.concatenate([transfer.labels, more.labels]))
    val = encode_rows(train, history.val_index, tokenizer, progress_bar)
    if history.val_labels is not None:
        val.labels = np.asarray(history.val_labels)
    test = encode_rows(test, history.test_index, tokenizer, progress_bar) if test is not None else None
    return transfer, val, test


def shorten(reviews, max_len):
    """``reviews`` with each id array cut to its last ``max_len`` ids, ``[CLS]`` kept in front: what the same
    tokenizer truncating at ``max_len`` gives."""
    ids = [x if len(x) <= max_len else np.concatenate([x[:1], x[len(x) - max_len + 1:]]) for x in reviews.ids]
    return Reviews(reviews.index, ids, reviews.labels)


def train_student(args, teacher_config, transfer, teacher_logits, val, device, distill, w):
    """A student trained with the teacher's soft labels (``distill``) or on revealed labels alone (data-
    parallel over the ranks of ``World`` ``w``)."""
    label_names = tuple(teacher_config.id2label[i] for i in range(teacher_config.num_labels))
    model = new_model(ModelSettings(args.student_size, teacher_config.vocab_size, args.student_max_len,
                                    teacher_config.pad_token_id, args.dropout, label_names=label_names),
                      args.seed).to(device)
    train = TrainSettings(args.distill_epochs, args.distill_lr, args.batch_size, progress=args.progress)
    desc = "student" if distill else "student_no_kd"
    if distill:
        return model, distil(model, transfer.ids, teacher_logits, transfer.labels,
                             DistillSettings(args.temperature, args.alpha), train, args.seed,
                             val=(val.ids, val.labels), desc=desc, w=w)
    keep = np.flatnonzero(transfer.labels >= 0)
    labels = torch.from_numpy(transfer.labels[keep]).long().to(device)
    return model, fit(model, [transfer.ids[i] for i in keep], lambda logits, idx: F.cross_entropy(logits, labels[idx]),
                      train, args.seed, val=(val.ids, val.labels), desc=desc, w=w)


def size_on_disk(folder):
    return (folder / "model.safetensors").stat().st_size


def main(argv=None):
    args = parse_args(argv)
    with common.user_errors(PROG):
        return run(args)


def run(args):
    check_args(args)  # before the preset fills in what the command line left unset
    asked_unlabeled = args.student_unlabeled == "imdb"  # not the preset's: then data without them is no error
    asked_max_len = args.student_max_len is not None  # the preset's length is capped by the teacher's, not refused
    common.apply_preset(args)
    if args.no_distill:  # no soft labels: nothing to read the unlabeled reviews for
        args.student_unlabeled = "none"
    common.check_outputs(args)
    device = common.setup(args)
    w = distributed.world()
    teacher_dir = args.out_dir / "teacher"
    teacher, tokenizer, _ = store.load_checkpoint(teacher_dir, "training.py", device, what="teacher")
    if not asked_max_len:
        args.student_max_len = min(args.student_max_len or teacher.config.max_len, teacher.config.max_len)
    common.check_range(args, "student_max_len", 8, teacher.config.max_len, flag="--max-len")  # the teacher's positions
    history = store.ALHistory.load(teacher_dir)
    transfer, val, test = load_transfer_data(args.data, common.columns(args), history, tokenizer, args.progress,
                                             args.unlabeled_samples if args.student_unlabeled == "imdb" else 0,
                                             required=asked_unlabeled)
    n_revealed, n_unlabeled = int((transfer.labels >= 0).sum()), len(transfer) - len(history.pool_index)
    # Models are scored on the test split; on data without one, on the validation set.
    held, split = (test, "test") if test is not None else (val, "val")

    # Computed once: the soft targets of every transfer review for all epochs. They are the teacher's encoder's:
    # the student gets the teacher's bag of n-grams itself (JOURNAL, "The student with the teacher's bag").
    teacher_logits = encoder_logits(teacher, transfer.ids, progress_bar=args.progress, desc="teacher logits", w=w)
    teacher_held_logits = predict_logits(teacher, held.ids, progress_bar=args.progress, w=w)
    teacher_acc, teacher_held = accuracy(teacher_held_logits, held.labels), teacher_held_logits.argmax(1)
    say(f"{PROG}: transfer set {len(transfer)} reviews ({n_revealed} with revealed labels, {n_unlabeled} unlabeled), "
        f"teacher {split}_acc {teacher_acc:.4f}" + ("" if test is not None else " (the data has no test split)")
        + f"; the student's encoder reads the last {args.student_max_len} tokens"
        + (f", its bag of n-grams {teacher.config.max_len}" if teacher.bag is not None else ""))
    train_set, train_val = transfer, val  # what the student's encoder is trained and chosen on
    if args.student_max_len < teacher.config.max_len:  # the teacher read whole reviews; the student's encoder their ends
        train_set, train_val = (shorten(r, args.student_max_len) for r in (transfer, val))
        # With a bag, the student reads what the teacher read: the bag all of it, the encoder its end (the model crops).
        if teacher.bag is None:
            tokenizer = AutoTokenizer.from_pretrained(teacher_dir, model_max_length=args.student_max_len)

    variants = [] if args.no_distill else [("student", True)]
    variants += [] if args.skip_baseline else [("student_no_kd", False)]
    rows, results = [], {f"teacher_{split}_acc": teacher_acc}
    if w.main:  # an interrupted save is repaired before any rank looks for a model trained already
        for name, _ in variants:
            store.recover(args.out_dir / name)
    distributed.barrier(w)
    for name, distill in variants:
        folder, run_id = args.out_dir / name, run_key(args, teacher_dir, history, name)
        info = trained_by(folder, run_id)
        if info is None:
            model, fit_history = train_student(args, teacher.config, train_set, teacher_logits, train_val, device,
                                               distill, w)
            if teacher.bag is not None:
                model = beside(model, teacher.bag)
            logits = predict_logits(model, held.ids, w=w)
            acc, agreement = accuracy(logits, held.labels), float((logits.argmax(1) == teacher_held).mean())
            result = dict(
                model=name, **({"test_acc": acc} if test is not None else {}),
                val_acc=evaluate(model, val.ids, val.labels, w=w),
                **{f"teacher_{split}_acc": teacher_acc}, agreement=agreement, scored_on=split,
                params=model.num_params(), teacher_params=teacher.num_params(),
                non_embedding_params=model.num_params(non_embedding=True),
                teacher_non_embedding_params=teacher.num_params(non_embedding=True),
                temperature=args.temperature, alpha=args.alpha if distill else 0.0,
                transfer_size=len(transfer) if distill else n_revealed, unlabeled=n_unlabeled if distill else 0,
                labels_used=history.labels_used,
                train_seconds=fit_history["seconds"], epochs=args.distill_epochs, max_len=args.student_max_len,
                seed=args.seed, preset=args.preset, run_id=run_id)
            info = {"script": PROG, "distilled": distill, "teacher": str(teacher_dir), "temperature": args.temperature,
                    "alpha": args.alpha, "fit": fit_history, f"{split}_acc": acc, "seed": args.seed, "run_id": run_id,
                    "result": result}
            if w.main:  # saved before the results line: no work lost
                store.save_checkpoint(model, tokenizer, folder, info, onnx=True)
        else:
            model = store.load_checkpoint(folder, PROG, device, what=name)[0]
            say(f"{PROG}: {folder} was trained by this same command already: reused (delete it to train again)")
        if w.main:
            store.append_results(args.results, PROG, [info["result"]], once=True)
        acc = info["result"][f"{split}_acc"]
        rows.append((name, acc, info["result"]["agreement"], model, size_on_disk(folder) if w.main else 0))
        results[name] = {f"{split}_acc": acc, "agreement": info["result"]["agreement"], "folder": str(folder)}
    report(teacher, teacher_acc, teacher_dir, rows, split)
    return results


def run_key(args, teacher_dir, history, name):
    """What one model of this script depends on, hashed: the teacher's weights, its data, every setting."""
    settings = {k: getattr(args, k) for k in ("temperature", "alpha", "student_size", "distill_epochs", "distill_lr",
                                              "batch_size", "dropout", "student_max_len", "seed", "preset")}
    settings["unlabeled"] = args.student_unlabeled
    return store.fingerprint(store.file_digest(teacher_dir / "model.safetensors"), history.pool_fingerprint, name,
                             json.dumps(settings, sort_keys=True))[:8]


def trained_by(folder, run_id):
    """The info of the model in ``folder`` if this same command (``run_id``) trained it, else None."""
    try:
        info = store.read_json(folder / store.INFO_FILE)
    except (OSError, ValueError):
        return None
    complete = not store.missing_files(folder)
    return info if complete and info.get("run_id") == run_id and "result" in info else None


def report(teacher, teacher_acc, teacher_dir, rows, split):
    print(f"\n{'model':<14} {split + ' acc':>8} {'agree':>6} {'params':>10} {'non-emb':>9} {'disk MB':>8}")
    print(f"{'teacher':<14} {teacher_acc:>8.4f} {'1.0000':>6} {teacher.num_params():>10,} "
          f"{teacher.num_params(non_embedding=True):>9,} {size_on_disk(teacher_dir) / 1e6:>8.2f}")
    for name, acc, agreement, model, disk in rows:
        print(f"{name:<14} {acc:>8.4f} {agreement:>6.4f} {model.num_params():>10,} "
              f"{model.num_params(non_embedding=True):>9,} {disk / 1e6:>8.2f}")


if __name__ == "__main__":
    main()
