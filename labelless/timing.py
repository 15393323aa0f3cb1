"""The benchmark both timing scripts run: accuracy, model-only and end-to-end speed, size.

On a seeded, stratified sample of the test split whose fingerprint is recorded: accuracy; model-only
throughput and p50/p95 latency per batch size (inputs tokenized beforehand); end-to-end throughput
from raw text (tokenization share reported); parameters, weights size, peak memory. Each model gets
one ``results.txt`` line per batch size; two measurements are compared only when they share data,
threads and device. ``both`` times the two models alternately (A B A B ...) and reports the median of
the per-pair ratios, the number to quote on a shared machine.
"""

import dataclasses
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import load_imdb, stratified_subset
from .fit import evaluate
from .runtime import autocast, progress, say
from .store import append_result, append_results, check_checkpoint, fingerprint, load_checkpoint, read_results
from .text import collate, encode, length_batches, tails

# Each timed model: its folder under the output folder, and the script that writes it.
MODELS = {"student": ("student", "origi.py"), "vanilla": ("teacher", "training.py")}
SCRIPTS = {"student": "compare_student.py", "vanilla": "vanilla_inference.py"}


@dataclass(frozen=True)
class TimingSettings:
    """What a timing run measures, on which sample, how often, and where it reads and writes."""

    out_dir: Path
    results: Path
    data: str | None
    seed: int
    n_reviews: int
    batch_sizes: tuple
    e2e_batch_size: int = 32
    warmup: int = 1
    repeats: int = 3
    both: bool = False
    progress: bool = True


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


def benchmark(model, tokenizer, texts, labels, settings, device):
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

    for bs in settings.batch_sizes:
        # Inputs tokenized and padded beforehand: this times the model alone.
        batches = [collate([ids[i] for i in b], model.config.pad_token_id, device)
                   for b in length_batches([len(x) for x in ids], bs)]
        timing = time_runs(model_only, batches, settings.warmup, settings.repeats, sync, settings.progress,
                           f"batch {bs}")
        out["per_batch_size"][bs] = summarise(timing, len(ids), n_tokens)

    # End to end: raw text in, label out, in the order users send it, tokenization included.
    size = settings.e2e_batch_size
    chunks = [list(texts[i:i + size]) for i in range(0, len(texts), size)]
    split = {"tokenize": 0.0, "model": 0.0}

    @torch.inference_mode()
    def end_to_end(chunk):
        t = time.perf_counter()
        enc = tokenizer(tails(tokenizer, chunk), truncation=True, padding=True, return_tensors="pt").to(device)
        t1 = time.perf_counter()
        with autocast(device):
            model(enc["input_ids"], attention_mask=enc["attention_mask"]).logits.argmax(-1).tolist()
        split["tokenize"] += t1 - t
        split["model"] += time.perf_counter() - t1

    time_runs(end_to_end, chunks, settings.warmup, 0, sync)  # warm-up, kept out of the split too
    split.update(tokenize=0.0, model=0.0)
    timing = time_runs(end_to_end, chunks, 0, settings.repeats, sync, settings.progress, "end to end")
    out["e2e_reviews_per_s"] = summarise(timing, len(texts), n_tokens)["reviews_per_s"]
    out["e2e_tokenize_share"] = split["tokenize"] / (split["tokenize"] + split["model"])
    return out


def peak_memory_mb(device):
    import resource

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def load_model(settings, name, device):
    """``(model, tokenizer, folder)`` of the timed model ``name`` (student or vanilla)."""
    folder_name, made_by = MODELS[name]
    folder = settings.out_dir / folder_name
    model, tokenizer, _ = load_checkpoint(folder, made_by, device, what=f"{name} model")
    return model, tokenizer, folder


def measure(settings, prog, name, sample, device, run_id):
    """Load model ``name``, benchmark it on ``sample`` (``inference_sample``), append its results lines."""
    _, texts, labels, data_fp = sample
    model, tokenizer, folder = load_model(settings, name, device)
    result = benchmark(model, tokenizer, texts, labels, settings, device)
    common_fields = dict(
        accuracy=result["accuracy"], n_reviews=len(texts), data_fingerprint=data_fp,
        e2e_reviews_per_s=result["e2e_reviews_per_s"], e2e_batch_size=settings.e2e_batch_size,
        e2e_tokenize_share=result["e2e_tokenize_share"], params=model.num_params(),
        non_embedding_params=model.num_params(non_embedding=True),
        size_mb=(folder / "model.safetensors").stat().st_size / 1e6, peak_mem_mb=peak_memory_mb(device),
        threads=torch.get_num_threads(), device=device.type, warmup=settings.warmup, repeats=settings.repeats,
        run_id=run_id)
    append_results(settings.results, prog, [dict(model=name, batch_size=bs, **stats, **common_fields)
                                            for bs, stats in result["per_batch_size"].items()])
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


def run_timing(settings, name, prog, device):
    """The body of compare_student.py (``name="student"``) and vanilla_inference.py (``"vanilla"``)."""
    other = "vanilla" if name == "student" else "student"
    for model_name in ([name, other] if settings.both else [name]):  # fail before measuring anything
        folder_name, made_by = MODELS[model_name]
        check_checkpoint(settings.out_dir / folder_name, made_by, f"{model_name} model")
    _, test = load_imdb(settings.data)
    sample = inference_sample(test, settings.n_reviews, settings.seed)
    run_id = uuid.uuid4().hex[:8]
    say(f"{prog}: {len(sample[1])} test reviews (fingerprint {sample[3]}), {torch.get_num_threads()} threads, {device}")
    if settings.both:
        return compare_alternately(settings, prog, name, other, sample, device, run_id)
    result = measure(settings, prog, name, sample, device, run_id)
    print_single(name, result)
    records = read_results(settings.results)
    mine, theirs = latest_run(records, name), latest_run(records, other)
    if theirs is None:
        print(f"not compared: no {other} measurement in {settings.results} yet: run `python {SCRIPTS[other]}`")
        return result
    why = comparable(next(iter(mine.values())), next(iter(theirs.values())))
    if why:
        print(f"not compared: the latest {other} measurement was {why}")
        return result
    student, vanilla = (mine, theirs) if name == "student" else (theirs, mine)
    print("\n".join(["", f"student vs vanilla, from {settings.results}"] + comparison_table(student, vanilla)))
    result["compared"] = True
    return result


def print_single(name, result):
    print(f"\n{name}: accuracy {result['accuracy']:.4f} on {result['n_reviews']} reviews, "
          f"{result['params']:,} params, {result['size_mb']:.2f} MB, peak memory {result['peak_mem_mb']:.0f} MB")
    print(f"{'batch':>6} {'rev/s':>10} {'tokens/s':>12} {'p50 ms':>9} {'p95 ms':>9}")
    for bs, s in result["per_batch_size"].items():
        print(f"{bs:>6} {s['reviews_per_s']:>10.1f} {s['tokens_per_s']:>12.0f} "
              f"{s['latency_ms_p50']:>9.2f} {s['latency_ms_p95']:>9.2f}")
    print(f"end to end (batch {result['e2e_batch_size']}): {result['e2e_reviews_per_s']:.1f} rev/s, "
          f"tokenization {result['e2e_tokenize_share']:.0%} of the time")


def compare_alternately(settings, prog, first, second, sample, device, run_id):
    """Measure the two models A B A B ... (``repeats`` pairs of one timed run each) and report the
    speedup of every pair and its median: drift on a shared machine hits both sides of a pair."""
    _, texts, labels, data_fp = sample
    models = {name: load_model(settings, name, device)[:2] for name in (first, second)}
    one_run = dataclasses.replace(settings, repeats=1, progress=False)
    runs = {first: [], second: []}
    for _ in progress(range(settings.repeats), settings.progress, desc="pairs"):
        for name in (first, second):
            runs[name].append(benchmark(*models[name], texts, labels, one_run, device))
    pairs = list(zip(runs["student"], runs["vanilla"]))
    ratios = {f"speedup_bs{bs}": [s["per_batch_size"][bs]["reviews_per_s"] / v["per_batch_size"][bs]["reviews_per_s"]
                                  for s, v in pairs] for bs in settings.batch_sizes}
    ratios["speedup_e2e"] = [s["e2e_reviews_per_s"] / v["e2e_reviews_per_s"] for s, v in pairs]
    medians = {key: float(np.median(vals)) for key, vals in ratios.items()}
    acc = {name: runs[name][0]["accuracy"] for name in runs}
    append_result(settings.results, prog, model="pair", n_reviews=len(texts), data_fingerprint=data_fp,
                  pairs=settings.repeats, **medians, accuracy_student=acc["student"], accuracy_vanilla=acc["vanilla"],
                  threads=torch.get_num_threads(), device=device.type, run_id=run_id)
    print(f"\nstudent vs vanilla, measured alternately in one process ({settings.repeats} pairs):")
    for key, vals in ratios.items():
        print(f"  {key:>14}: median {medians[key]:.1f}x  (pairs: {', '.join(f'{v:.1f}' for v in vals)})")
    print(f"  accuracy: student {acc['student']:.4f}, vanilla {acc['vanilla']:.4f} "
          f"({100 * (acc['student'] - acc['vanilla']):+.2f} points)")
    return {"ratios": ratios, "medians": medians, "accuracy": acc}
