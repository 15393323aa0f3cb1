"""Resuming an interrupted ``training.py`` run: where each run's state lives, and whether a saved state
can be read and was started with this command's settings.

Every round of an active-learning run is saved to ``<out-dir>/al_state/<strategy>_seed<seed>/`` (an HF
folder whose ``training_info.json`` holds the run's state); ``--resume`` goes on from there.
"""

import uuid
from pathlib import Path

from . import UserError, distributed, store
from .runtime import say

# Settings that earlier versions saved with a run's state, at the values that mean "off": such a state
# resumes only if it left them off (benchmarks/JOURNAL.md names the commits that had them on).
RETIRED_SETTINGS = {
    "retrain": "cold", "embedding_init": "ppmi", "mc_samples": 10, "val_block": 100, "pooling": "mean",
    "token_dropout": 0.0, "label_smoothing": 0.0, "average_from": None, "pretrain_epochs": 0, "self_distil": False,
    "self_distil_epochs": None, "self_distil_start": "fresh", "self_distil_crops": 0, "self_distil_token_dropout": 0.0,
    "ngram_weight": 0.0, "temperature": 4.0, "alpha": 0.9, "rounds": None}
# Settings added later, at the values that earlier states ran with.
ADDED_SETTINGS = {"unlabeled": "none", "unlabeled_samples": None, "text_column": "text", "label_column": None,
                  "classes": None, "oracle": "simulated", "stop_when_stable": None}


def state_dir(out_dir, strategy, seed):
    return Path(out_dir) / "al_state" / f"{strategy}_seed{seed}"


def saved_tokenizer(out_dir, strategy, seeds):
    """The tokenizer saved by an interrupted run of ``strategy``, or None: its weights were trained on
    those ids (another version of ``tokenizers`` could train other ones), and it saves the time of
    training it."""
    from transformers import AutoTokenizer

    for seed in seeds:
        folder = state_dir(out_dir, strategy, seed)
        if (folder / "tokenizer.json").is_file():
            return AutoTokenizer.from_pretrained(folder)
    return None


def check_resumable(out_dir, strategies, seeds, made_by, w):
    """The states a resume will read can be read: an interrupted save is repaired (by rank 0, while the
    others wait) and a damaged state is found, before any work."""
    folders = [state_dir(out_dir, strategy, seed) for strategy in strategies for seed in seeds]
    if w.main:
        for folder in folders:
            store.recover(folder)
    distributed.barrier(w)
    for folder in folders:
        if folder.exists():
            try:
                store.load_checkpoint(folder, made_by)
            except UserError:
                raise UserError(f"cannot --resume {folder}: its saved state is damaged; rerun without --resume "
                                "to start that run afresh") from None


def resumed_state(folder, run_settings, defaults, tokenizer, device, made_by):
    """``(model, state)`` of the interrupted run saved in ``folder``, or ``(None, None)`` if there is
    none; refused if it was started with other ``run_settings`` than this one's (an option missing from
    the saved ones was added later: that run had its value in ``ADDED_SETTINGS``, else ``defaults``)."""
    if not folder.exists():
        return None, None
    model, their_tokenizer, state = store.load_checkpoint(folder, made_by, device)
    if their_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise UserError(f"cannot --resume {folder}: its tokenizer differs from this run's "
                        "(other data?); rerun with the same --data or without --resume")
    saved = state["settings"]
    diff = [k for k in run_settings if saved.get(k, ADDED_SETTINGS.get(k, defaults.get(k))) != run_settings[k]]
    diff += [k for k, off in RETIRED_SETTINGS.items() if saved.get(k, off) != off]
    if diff:
        raise UserError(f"cannot --resume {folder}: it was started with other settings "
                        f"({', '.join(sorted(diff))}); rerun with those or without --resume")
    if "self_distil" in state:  # the ensemble step's record, as earlier versions named it
        state["ensemble_step"] = state.pop("self_distil")
    state.setdefault("run_id", uuid.uuid4().hex[:8])  # states of earlier versions had none
    say(f"{made_by}: resuming {run_settings['strategy']} seed {run_settings['run_seed']} "
        + (f"after round {state['rounds'][-1]['round']}" if state["rounds"] else "before round 0"))
    return model, state
