"""What every script shares: the command-line shell around the ``labelless`` library.

The parser and its one-line errors, the shared flags, the presets, setup (seed, threads, device), and
the one range check of options. The scripts (``training.py``, ``origi.py``, ``compare_student.py``,
``vanilla_inference.py``) import it; the library itself never reads an argparse namespace.
"""

import argparse
import contextlib
import os
import sys
from pathlib import Path

import torch

from labelless import UserError, distributed
from labelless.runtime import choose_device, set_seed
from labelless.serve import RUNTIMES
from labelless.sources import DEFAULT_SOURCE

__all__ = ["UserError", "PRESETS", "user_errors", "make_parser", "add_common_args", "add_inference_args",
           "apply_preset", "setup", "check_outputs", "parse_ints", "columns", "check_range", "timing_main"]

# Sizes of each preset. smoke: seconds, for tests. quick: minutes on a 2-core CPU, on a stratified
# subset of IMDB. full: the whole 25k pool and 25k test split. ``auto`` picks full on a GPU, else quick.
PRESETS = {
    "smoke": dict(
        max_train_samples=300, max_test_samples=100, val_size=60, vocab_size=600, max_len=64,
        teacher_size="tiny", student_size="tiny", batch_size=16, lr=3e-3, distill_lr=3e-3,
        initial_labels=40, query_size=40, label_budget=180, epochs=2, pool_sample=0, ensemble=1,
        unlabeled_samples=200, distill_epochs=2, n_reviews=40, batch_sizes="1,8", warmup=1, repeats=3,
        pair_seconds=0,  # the timing scripts' --both
        student_unlabeled="none", student_max_len=None,  # origi.py: its transfer set; None: the teacher's length
    ),
    "quick": dict(
        max_train_samples=12500, max_test_samples=2000, val_size=500, vocab_size=16000, max_len=256,
        teacher_size="teacher", student_size="student", batch_size=32, lr=1e-3, distill_lr=3e-3,
        initial_labels=500, query_size=2000, label_budget=8500, epochs=2, pool_sample=4000, ensemble=1,
        unlabeled_samples=12500, distill_epochs=3, n_reviews=1000, batch_sizes="1,32,128", warmup=1, repeats=3,
        pair_seconds=20,  # the timing scripts' --both
        student_unlabeled="imdb", student_max_len=None,  # origi.py: its transfer set; None: the teacher's length
    ),
    "full": dict(
        max_train_samples=None, max_test_samples=None, val_size=1000, vocab_size=16000, max_len=512,
        teacher_size="teacher", student_size="student", batch_size=32, lr=1e-3, distill_lr=3e-3,
        initial_labels=2000, query_size=2000, label_budget=15000, epochs=2, pool_sample=8000, ensemble=3,
        unlabeled_samples=None, distill_epochs=4, n_reviews=1000, batch_sizes="1,32,128", warmup=1, repeats=3,
        pair_seconds=20,  # the timing scripts' --both
        student_unlabeled="imdb", student_max_len=256,  # origi.py: its transfer set; the tokens it reads
    ),
}


DEFAULT_RUNTIME = "torch"
MAX_SEED = 2**32 - 1  # numpy's seeds are unsigned 32-bit integers


@contextlib.contextmanager
def user_errors(prog):
    """Turn a ``UserError`` into one line on stderr and exit code 2, with no traceback. Under
    ``torchrun`` with several processes, a rank that fails says which it is before its traceback (the
    others stop when ``torchrun`` sees it end, or when their next collective times out), and the
    process group is left at the end."""
    w = distributed.world()
    try:
        yield
    except UserError as e:
        print(f"{prog}: error: {e}" if w.main else f"{prog}: error on rank {w.rank}: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as e:
        if w.size > 1:
            print(f"{prog}: rank {w.rank} of {w.size} failed ({type(e).__name__}: {e}); the job ends", file=sys.stderr)
        raise
    distributed.finish(w)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults; an option sized by the preset says so instead of "None"."""

    def _get_help_string(self, action):
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            return action.help
        if action.default is None:
            sized = any(action.dest in preset for preset in PRESETS.values())
            return (action.help or "") + (" (default: from --preset)" if sized else "")
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """A bad option is one line on stderr, with the way to the help, and exit code 2 (no usage dump)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def make_parser(prog, doc):
    """The parser of a script: its name, the first paragraph of its docstring, defaults in --help."""
    return ArgumentParser(prog=prog, description=doc.split("\n\n")[0], formatter_class=HelpFormatter)


def add_common_args(parser, subsets=()):
    """The flags every script takes, and ``--max-train-samples`` / ``--max-test-samples`` for the splits
    named in ``subsets`` (the others' subsets are the preset's). Preset-sized options
    default to None and are filled by ``apply_preset``, so an explicit flag always wins over the preset."""
    parser.add_argument("--data", default=None,
                        help="a CSV, JSON Lines or parquet file, a folder of train.* (test.*, unlabeled.*), an aclImdb "
                             f"folder, or a hub dataset id (default: $IMDB_DATA, else {DEFAULT_SOURCE})")
    parser.add_argument("--text-column", default="text", help="the data's column of texts")
    parser.add_argument("--label-column", default=None,
                        help="the data's column of labels, integers or class names; a row without one is unlabeled "
                             "(default: label, if the data has it)")
    parser.add_argument("--out-dir", default="checkpoints", type=Path, help="where model folders live")
    parser.add_argument("--results", default="results.txt", type=Path, help="results file to append to")
    parser.add_argument("--seed", default=1, type=int, help="seed of data subsets, initialisation and sampling")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                        help="auto = cuda if available, else cpu")
    parser.add_argument("--threads", default=None, type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--preset", default="auto", choices=["auto", *PRESETS],
                        help="sizes: smoke (tests), quick (CPU minutes), full; auto = full on a GPU, else quick")
    if "train" in subsets:
        parser.add_argument("--max-train-samples", default=None, type=int,
                            help="stratified subset of the training split (pool + validation)")
    if "test" in subsets:
        parser.add_argument("--max-test-samples", default=None, type=int, help="stratified subset of the test split")
    parser.set_defaults(**{f"max_{split}_samples": None for split in ("train", "test") if split not in subsets})
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    return parser


def add_inference_args(parser):
    """The flags of the two timing scripts."""
    add_common_args(parser)
    parser.add_argument("--n-reviews", type=int, help="size of the stratified test-split sample")
    parser.add_argument("--batch-sizes", help="comma-separated batch sizes for model-only timing")
    parser.add_argument("--e2e-batch-size", type=int, default=32, help="batch size of the end-to-end timing")
    parser.add_argument("--warmup", type=int, help="untimed runs before the timed ones")
    parser.add_argument("--repeats", type=int, help="timed runs (one run = every review once)")
    parser.add_argument("--both", action="store_true",
                        help="time the student against vanilla and the bar in this process, in back-to-back pairs of "
                             "passes; quote the median ratios")
    parser.add_argument("--pair-seconds", type=float,
                        help="with --both: seconds of passes run back to back, the student and each other model in "
                             "turn, per measure")
    parser.add_argument("--runtime", default=DEFAULT_RUNTIME, choices=RUNTIMES,
                        help="what runs the two Transformers: torch, or ONNX Runtime on model.onnx or model.int8.onnx")
    return parser


def apply_preset(args):
    """Fill every option left at None from the preset; returns ``args`` with ``args.preset`` resolved."""
    if args.preset == "auto":
        args.preset = "full" if torch.cuda.is_available() else "quick"
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key, "absent") is None:
            setattr(args, key, value)
    for key in ("max_train_samples", "max_test_samples", "threads"):
        check_range(args, key, 1)
    return args


def setup(args):
    """Seed, threads and device from the shared flags; returns the torch device. Under ``torchrun`` it
    joins the process group (each rank its own GPU), and ranks other than 0 print nothing."""
    check_range(args, "seed", 0, MAX_SEED)
    if args.threads:
        torch.set_num_threads(args.threads)  # torchrun's default is 1 per process
    if not args.progress:
        from transformers.utils import logging

        logging.disable_progress_bar()
    set_seed(args.seed)
    device = choose_device(args.device)
    w = distributed.world()
    if w.size > 1:
        if device.type == "cuda":
            device = torch.device("cuda", w.local_rank)
            torch.cuda.set_device(device)
        distributed.init(device)
        if not w.main:
            sys.stdout = open(os.devnull, "w")  # one report, rank 0's; errors still reach stderr
    return device


def check_outputs(args, out_dir=True):
    """``--results`` (and ``--out-dir``) can be written: checked before any work."""
    from labelless.store import check_writable

    check_writable(args.results, "--results")
    if out_dir:
        check_writable(args.out_dir, "--out-dir", folder=True)


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


def columns(args):
    """The data's ``Columns`` named by ``--text-column`` and ``--label-column`` (and ``--classes``)."""
    from labelless.sources import Columns

    classes = getattr(args, "classes", None)
    names = tuple(name.strip() for name in classes.split(",")) if classes else None
    if names is not None and (len(names) < 2 or len(set(names)) < len(names) or not all(names)):
        raise UserError(f"--classes takes two or more distinct comma-separated names, e.g. neg,pos; got {classes!r}")
    return Columns(args.text_column, args.label_column, names)


def check_range(args, name, low, high=None, low_open=False, high_open=False, flag=None):
    """The one range check of options: a one-line ``UserError`` if option ``name`` of ``args`` (None: unset,
    fine) lies outside [low, high], an end excluded where ``*_open``; ``high=None``: no upper end. ``flag``:
    the option's name on the command line, when it is not ``--name``."""
    value = getattr(args, name, None)
    if value is None:
        return
    too_low = value <= low if low_open else value < low
    too_high = high is not None and (value >= high if high_open else value > high)
    if not (too_low or too_high):
        return
    if high is not None:
        rule = f"in [{low}, {high})" if high_open else f"between {low} and {high}"
    elif low == 0:
        rule = "positive" if low_open else "not negative"
    else:
        rule = f"above {low}" if low_open else f"at least {low}"
    verb = "must not be negative" if rule == "not negative" else f"must be {rule}"
    raise UserError(f"{flag or '--' + name.replace('_', '-')} {verb}, got {value}")


def timing_main(args, prog, name):
    """``main`` of the two timing scripts: options into ``TimingSettings``, then ``timing.run_timing``
    for the model ``name`` (``student`` or ``vanilla``)."""
    from labelless.timing import TimingSettings, run_timing

    with user_errors(prog):
        apply_preset(args)
        batch_sizes = parse_ints(args.batch_sizes, "--batch-sizes", "1,32,128", positive=True)
        for key in ("n_reviews", "e2e_batch_size", "repeats"):
            check_range(args, key, 1)
        check_range(args, "warmup", 0)
        check_range(args, "pair_seconds", 0)
        check_outputs(args, out_dir=False)
        if distributed.world().size > 1:
            raise UserError(f"{prog} times one process on one machine: run it without torchrun")
        device = setup(args)
        settings = TimingSettings(args.out_dir, args.results, args.data, args.seed, args.n_reviews,
                                  tuple(batch_sizes), args.e2e_batch_size, args.warmup, args.repeats, args.both,
                                  args.progress, args.runtime, columns(args), args.pair_seconds)
        return run_timing(settings, name, prog, device)
