import copy
import multiprocessing
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import common
from conftest import ROOT, make_reviews, write_parquet


# --- data sources -----------------------------------------------------------------------------


def write_aclimdb(root, n=20):
    for split in ("train", "test"):
        texts, labels = make_reviews(n, 0)
        for i, (text, label) in enumerate(zip(texts, labels)):
            folder = root / split / common.LABEL_NAMES[label]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i}_{7 if label else 2}.txt").write_text(text)
    # Invalid UTF-8 and non-ASCII text must load, decoded with replacement.
    (root / "train" / "pos" / "999_10.txt").write_bytes(b"caf\xc3\xa9 na\xefve \xff\xfe great")
    return root


def test_parquet_source(parquet_dir):
    train, test = common.load_imdb(str(parquet_dir))
    assert (len(train), len(test)) == (300, 100)
    assert set(train.column_names) >= {"text", "label"}
    assert sorted(set(train["label"])) == [0, 1]


def test_aclimdb_source(tmp_path):
    root = write_aclimdb(tmp_path / "aclImdb")
    for source in (root, tmp_path):  # the folder itself, or the folder it was extracted into
        train, test = common.load_imdb(str(source))
        assert (len(train), len(test)) == (21, 20)
        assert train["label"].count(1) == 11
        assert "\ufffd" in train["text"][-1] and "café" in train["text"][-1]


def test_imdb_data_environment_variable(parquet_dir, monkeypatch):
    monkeypatch.setenv("IMDB_DATA", str(parquet_dir))
    train, _ = common.load_imdb()
    assert len(train) == 300
    assert common.data_source("other") == "other"  # --data wins over the environment


@pytest.mark.parametrize("source", ["/no/such/imdb", "./missing-folder"])
def test_missing_path_names_it_and_the_fix(source):
    with pytest.raises(common.UserError, match="no IMDB folder at .*missing-folder|no IMDB folder at /no/such") as e:
        common.load_imdb(source)
    assert "--data" in str(e.value) and "\n" not in str(e.value)


def test_missing_split(parquet_dir):
    (parquet_dir / "test.parquet").unlink()
    with pytest.raises(common.UserError, match="missing .*test.parquet"):
        common.load_imdb(str(parquet_dir))


def test_label_outside_0_1(parquet_dir):
    pq.write_table(pa.table({"text": ["a", "b"], "label": [0, 2]}), parquet_dir / "train.parquet")
    with pytest.raises(common.UserError, match="label 2 outside"):
        common.load_imdb(str(parquet_dir))


def test_missing_column(parquet_dir):
    pq.write_table(pa.table({"review": ["a"], "label": [0]}), parquet_dir / "train.parquet")
    with pytest.raises(common.UserError, match="text and label"):
        common.load_imdb(str(parquet_dir))


def test_not_parquet(parquet_dir):
    (parquet_dir / "train.parquet").write_text("not parquet")
    with pytest.raises(common.UserError, match="cannot read"):
        common.load_imdb(str(parquet_dir))


def test_real_imdb_copy(real_imdb):
    train, test = common.load_imdb(real_imdb)
    assert (len(train), len(test)) == (25000, 25000)


# --- subsets ----------------------------------------------------------------------------------


def test_stratified_subset_keeps_both_classes_in_proportion():
    labels = np.array([0] * 750 + [1] * 250)  # sorted, like IMDB: a head slice is one class
    idx = common.stratified_subset(labels, 100, seed=3)
    assert len(idx) == len(set(idx)) == 100
    assert np.bincount(labels[idx]).tolist() == [75, 25]
    assert np.array_equal(idx, common.stratified_subset(labels, 100, seed=3))
    assert not np.array_equal(idx, common.stratified_subset(labels, 100, seed=4))
    assert np.array_equal(common.stratified_subset(labels, None, 0), np.arange(1000))


def test_split_off_is_disjoint_and_stratified():
    labels = np.array([0, 1] * 100)
    rest, held = common.split_off(np.arange(200), labels, 40, seed=0)
    assert len(rest) == 160 and len(held) == 40 and not set(rest) & set(held)
    assert np.bincount(labels[held]).tolist() == [20, 20]
    with pytest.raises(common.UserError, match="cannot hold out"):
        common.split_off(np.arange(10), labels[:10], 10, seed=0)


def test_split_off_in_blocks_holds_out_whole_runs_of_adjacent_rows():
    labels = np.repeat([0, 1], 500)  # sorted by class, as IMDB is
    rows = np.arange(0, 1000, 2)  # a subset: every other row
    rest, held = common.split_off(rows, labels, 100, seed=3, block=50)  # 25 subset rows per run
    runs = np.unique(held // 50)
    assert len(runs) == 4 and np.bincount(labels[held]).tolist() == [50, 50]
    for run in runs:  # every subset row of a held-out run is held out
        assert set(rows[rows // 50 == run]) <= set(held)
    assert not set(rest) & set(held) and len(rest) + len(held) == len(rows)
    one_by_one = common.split_off(rows, labels, 100, seed=3)[1]
    assert len(np.unique(one_by_one // 50)) > 4


# --- tokenizer and batching -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    return common.train_tokenizer(make_reviews(100, 0)[0], vocab_size=300, max_len=16)


def test_tokenizer_round_trip(tokenizer):
    text = "the movie was great<br /><br />and the plot was boring"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == "the movie was great and the plot was boring"
    assert "<" not in tokenizer.convert_ids_to_tokens(ids)


def test_tokenizer_ids_are_numbered_in_a_fixed_order(tokenizer):
    """The same tokens always get the same ids: specials first, then by (length, text)."""
    tokens = [t for t, _ in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])]
    specials = list(common.SPECIAL_TOKENS.values())
    assert tokens[: len(specials)] == specials
    assert tokens[len(specials):] == sorted(tokens[len(specials):], key=lambda t: (len(t), t))
    assert tokenizer.pad_token_id == 0


def test_tokenizer_training_is_deterministic():
    """Tie-prone texts: the trainer alone gave several vocabularies over repeated runs
    (huggingface/tokenizers#1794); every run must now give the same one, continuation pieces
    ordinary (not special) tokens that decode back into their word."""
    texts = ["Wel come to the 🤗 Tok en izers libr ary.", "A sweet little film, sweetly acted; ties often tie."]
    vocabularies = {tuple(sorted(common.train_tokenizer(texts, vocab_size=120, max_len=32).get_vocab().items()))
                    for _ in range(20)}
    assert len(vocabularies) == 1
    tok = common.train_tokenizer(texts, vocab_size=120, max_len=32)
    assert tok.all_special_tokens and not any(t.startswith("##") for t in tok.all_special_tokens)
    ids = tok("sweetly tokenizers")["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == "sweetly tokenizers"


def test_tokenizer_vocabulary_has_no_unusable_continuation_pieces():
    """Whitespace never continues a word and punctuation always splits off: a "## " or "##," piece
    could never be used and would waste a slot of the vocabulary."""
    tok = common.train_tokenizer(["a tab\there, a\u00a0nbsp; words!"] * 3, vocab_size=200, max_len=32)
    pieces = {t[2:] for t in tok.get_vocab() if t.startswith("##")}
    assert pieces and not any(c.isspace() or c in ",;!" for c in pieces)
    assert {"##b", "##t"} <= set(tok.get_vocab())


def test_tokenizer_keeps_the_end_of_long_reviews(tokenizer):
    ids = tokenizer("the " * 100 + "boring ending", truncation=True)["input_ids"]
    assert len(ids) == 16
    assert tokenizer.decode(ids, skip_special_tokens=True).endswith("boring ending")


def test_odd_texts_do_not_crash(tokenizer):
    texts = ["", "   ", "a" * 1_000_000, "naïve café 映画 \ufffd", "great " * 200_000]
    ids = common.encode(tokenizer, texts, progress_bar=False)
    assert all(2 <= len(x) <= 16 for x in ids)


def test_tokenizer_save_load(tokenizer, tmp_path):
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "a wonderful, touching film"
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert loaded.truncation_side == "left" and loaded.model_max_length == 16


def test_length_batches_cover_everything_once():
    lengths = np.random.default_rng(0).integers(1, 300, size=1000)
    for rng in (None, np.random.default_rng(1)):
        batches = common.length_batches(lengths, 32, rng)
        flat = np.concatenate(batches)
        assert sorted(flat.tolist()) == list(range(1000))
        assert all(len(b) <= 32 for b in batches)
    # Bucketing: inference batches are sorted, so padding is small.
    sorted_batches = common.length_batches(lengths, 32)
    padded = sum(len(b) * lengths[b].max() for b in sorted_batches)
    assert padded < 1.05 * lengths.sum()
    # Training batches are bucketed too, and random.
    rng_batches = common.length_batches(lengths, 32, np.random.default_rng(1))
    assert sum(len(b) * lengths[b].max() for b in rng_batches) < 1.1 * lengths.sum()
    assert not np.array_equal(np.concatenate(rng_batches), np.concatenate(sorted_batches))


def test_collate_pads_and_masks():
    ids, mask = common.collate([np.array([5, 6, 7]), np.array([8])], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_drop_tokens_deletes_real_tokens_only():
    ids = [np.array([2, *range(5, 1005), 3], dtype=np.int32), np.array([2, 3], dtype=np.int32)]
    out = common.drop_tokens(ids, 0.3, np.random.default_rng(0))
    assert np.array_equal(out[1], ids[1])  # special tokens always stay
    kept = out[0]
    assert kept[0] == 2 and kept[-1] == 3
    assert set(kept[1:-1]) <= set(ids[0][1:-1])
    assert np.all(np.diff(kept[1:-1]) > 0)  # deleted, never reordered or repeated
    assert 0.25 < 1 - (len(kept) - 2) / 1000 < 0.35  # about p of the real tokens
    again = common.drop_tokens(ids, 0.3, np.random.default_rng(0))
    assert np.array_equal(again[0], kept)
    assert all(np.array_equal(a, b) for a, b in zip(common.drop_tokens(ids, 0.0, np.random.default_rng(0)), ids))


def test_weight_averaging_keeps_the_mean_of_the_late_iterates(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    texts, labels = make_reviews(64, 0)
    ids = [np.array(tok(t, truncation=True)["input_ids"]) for t in texts]
    y = torch.tensor(labels)
    initial = copy.deepcopy(model.state_dict())

    def run(average_from, record=None):
        model.load_state_dict(initial)

        def loss_fn(logits, idx):
            if record is not None:  # the weights before each step: the iterate after the step before
                record.append({k: v.clone() for k, v in model.state_dict().items()})
            return torch.nn.functional.cross_entropy(logits, y[idx])

        common.fit(model, ids, loss_fn, epochs=2, lr=1e-2, batch_size=8, seed=0,
                   average_from=average_from, progress_bar=False)
        return {k: v.clone() for k, v in model.state_dict().items()}

    iterates = []
    last = run(None, iterates)
    iterates = iterates[1:] + [last]  # after steps 1..16
    averaged = run(0.5)  # mean over the iterates after steps 9..16
    for k, v in averaged.items():
        if v.is_floating_point():
            expected = torch.stack([it[k] for it in iterates[8:]]).mean(0)
            torch.testing.assert_close(v, expected, rtol=1e-4, atol=1e-6)
    assert any(not torch.equal(averaged[k], last[k]) for k in last)
    model.load_state_dict(initial)


# --- checkpoints ------------------------------------------------------------------------------


def test_interrupted_save_leaves_previous_checkpoint(tiny_model_and_tokenizer, tmp_path, monkeypatch):
    import torch

    model, tok = tiny_model_and_tokenizer
    folder = common.save_checkpoint(model, tok, tmp_path / "teacher", {"version": 1})
    before = {f.name: f.read_bytes() for f in folder.iterdir()}
    with torch.no_grad():
        model.head.weight.add_(1.0)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C after the weights were written, before the tokenizer

    monkeypatch.setattr(type(tok), "save_pretrained", crash)
    with pytest.raises(KeyboardInterrupt):
        common.save_checkpoint(model, tok, folder, {"version": 2})
    assert {f.name: f.read_bytes() for f in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["teacher"]  # no half folder left behind
    _, _, info = common.load_checkpoint(folder, "training.py")
    assert info == {"version": 1}


def test_missing_or_incomplete_checkpoint(tiny_model_and_tokenizer, tmp_path):
    with pytest.raises(common.UserError, match=r"no checkpoint at .*nothing: run `python training.py` first"):
        common.load_checkpoint(tmp_path / "nothing", "training.py")
    model, tok = tiny_model_and_tokenizer
    folder = common.save_checkpoint(model, tok, tmp_path / "student", {})
    (folder / "model.safetensors").unlink()
    with pytest.raises(common.UserError, match="incomplete checkpoint .*model.safetensors.*origi.py"):
        common.load_checkpoint(folder, "origi.py")


# --- results.txt ------------------------------------------------------------------------------


def test_append_and_read_results(tmp_path):
    path = tmp_path / "results.txt"
    line = common.append_result(path, "training.py", model="teacher", test_acc=0.87654321, params=12, tag="a_b")
    assert line.split()[1:] == ["training.py", "model=teacher", "test_acc=0.8765", "params=12", "tag=a_b"]
    assert line.split()[0].endswith("Z") and "T" in line.split()[0]
    common.append_result(path, "origi.py", model="student")
    records = common.read_results(path)
    assert records[0] | {} == {"time": records[0]["time"], "script": "training.py", "model": "teacher",
                               "test_acc": 0.8765, "params": 12, "tag": "a_b"}
    assert records[1]["model"] == "student"
    with pytest.raises(ValueError, match="whitespace"):
        common.append_result(path, "x.py", note="two words")
    assert len(common.read_results(path)) == 2
    assert common.read_results(tmp_path / "absent.txt") == []
    path.write_text(path.read_text() + "garbage line\n")
    with pytest.raises(common.UserError, match="results.txt:3 is not a results line"):
        common.read_results(path)


def _writer(path, worker):
    for i in range(100):
        common.append_result(path, "worker.py", worker=worker, i=i, pad="x" * 200)


def test_concurrent_appends_never_interleave(tmp_path):
    path = tmp_path / "results.txt"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, w)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert all(p.exitcode == 0 for p in procs)
    records = common.read_results(path)
    assert len(records) == 800
    assert {(r["worker"], r["i"]) for r in records} == {(w, i) for w in range(8) for i in range(100)}
    assert all(r["pad"] == "x" * 200 for r in records)


# --- plumbing ---------------------------------------------------------------------------------


def test_presets_fill_only_what_is_unset():
    import argparse

    args = common.add_common_args(argparse.ArgumentParser()).parse_args(["--preset", "smoke"])
    args.max_len, args.vocab_size = None, 123
    common.apply_preset(args)
    assert args.max_len == common.PRESETS["smoke"]["max_len"] and args.vocab_size == 123
    auto = common.apply_preset(common.add_common_args(argparse.ArgumentParser()).parse_args([]))
    assert auto.preset == "quick"  # no GPU here
    with pytest.raises(common.UserError, match="--max-test-samples must be at least 1"):
        common.apply_preset(common.add_common_args(argparse.ArgumentParser()).parse_args(["--max-test-samples", "0"]))


def test_device_choice():
    import torch

    assert common.choose_device("cpu").type == "cpu"
    assert common.choose_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(common.UserError, match="--device cpu"):
            common.choose_device("cuda")


def test_set_seed_makes_torch_and_numpy_repeat():
    import torch

    common.set_seed(5)
    a = (np.random.rand(), torch.rand(1).item())
    common.set_seed(5)
    assert (np.random.rand(), torch.rand(1).item()) == a


@pytest.mark.parametrize("script", ["training.py", "origi.py", "compare_student.py", "vanilla_inference.py"])
def test_cli_bad_data_path_is_one_line_exit_2(script, tmp_path):
    if not (ROOT / script).exists():
        pytest.skip(f"{script} not written yet")
    results = tmp_path / "results.txt"
    results.write_text("keep me\n")
    proc = subprocess.run([sys.executable, str(ROOT / script), "--data", "/no/such/imdb", "--preset", "smoke",
                           "--out-dir", str(tmp_path), "--results", str(results), "--no-progress"],
                          capture_output=True, text=True, cwd=tmp_path, env=os.environ | {"IMDB_DATA": ""})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith(f"{script}: error:")
    assert results.read_text() == "keep me\n"


def test_fingerprint_covers_every_item(parquet_dir):
    _, test = common.load_imdb(str(parquet_dir))
    column = test.select(range(50))["text"]  # a datasets Column, not a list
    texts = list(column)
    assert common.fingerprint(np.arange(50), column) == common.fingerprint(np.arange(50), texts)
    changed = texts[:49] + [texts[49] + "!"]
    assert common.fingerprint(np.arange(50), changed) != common.fingerprint(np.arange(50), texts)
    assert common.fingerprint(np.arange(50), texts) != common.fingerprint(np.arange(1, 51), texts)
