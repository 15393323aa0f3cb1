"""The benchmark both timing scripts run: accuracy, model-only and end-to-end speed, size.

On a seeded, stratified sample of the test split (data without one: of the validation texts) whose
fingerprint is recorded, for each model (the student, the vanilla teacher, the bar): accuracy; model-only
throughput and p50/p95 latency per batch size (inputs prepared beforehand); end-to-end throughput from raw
text (``serve.Served.predict``; the median pass over at least ``E2E_MIN_SECONDS`` of passes; the share spent
tokenizing reported) and end-to-end latency one review at a time, the number a web
service sees; parameters, weights size, peak memory. Each model gets one ``results.txt`` line per
batch size; measurements are compared only when they share data, threads, device and (between the two
Transformers) runtime. ``both`` takes every ratio from passes run back to back, the student and one other
model in turn (``paired_passes``), and reports the median over the pairs: the numbers to quote on a shared
machine.
"""

import functools
import itertools
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import stratified_subset
from .runtime import progress, say
from .serve import ServedBar, ServedTransformer
from .sources import Columns, load_corpus
from .store import ALHistory, append_results, check_checkpoint, fingerprint, read_results
from .text import length_batches

# Each timed model: its folder under the output folder, and the script that writes it.
MODELS = {"student": ("student", "origi.py"), "vanilla": ("teacher", "training.py"), "bar": ("bar", "training.py")}
SCRIPTS = {"student": "compare_student.py", "vanilla": "vanilla_inference.py"}
# A fast model's end-to-end pass lasts a fraction of a second, one draw from a noisy clock: its median pass
# is taken over at least this many seconds of passes.
E2E_MIN_SECONDS = 2.0
# On a shared machine the speed of a pass drifts by a third within a minute, so two models timed minutes
# apart are not comparable. Passes run back to back see the same drift: ``both`` takes each ratio from at
# least this many such pairs (and ``pair_seconds``).
MIN_PAIRS = 5


@dataclass(frozen=True)
class TimingSettings:
    """What a timing run measures, on which sample, how often, with which runtime, where it reads and writes."""

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
    runtime: str = "torch"
    columns: Columns = Columns()
    pair_seconds: float = 20.0  # ``both``: seconds of back-to-back passes per pair of models and measure, at least


def time_runs(run_batch, batches, warmup, repeats, sync=None, progress_bar=False, desc="time", min_seconds=0.0):
    """Call ``run_batch(b)`` for every batch, ``warmup`` untimed runs then timed runs: ``repeats`` of them,
    and more until the timed runs add up to ``min_seconds``.

    Returns ``{"run_seconds": [...], "latencies": [...]}``: the seconds of each timed run and of each
    timed batch call. ``sync`` (e.g. ``torch.cuda.synchronize``) runs before every clock read.
    """
    sync = sync or (lambda: None)
    run_seconds, latencies = [], []
    # A known count keeps the progress bar's total; a minimum of seconds has none.
    runs = itertools.count() if min_seconds > 0 else range(warmup + repeats)
    for run in progress(runs, progress_bar, desc=desc, leave=False):
        if run >= warmup + repeats and sum(run_seconds) >= min_seconds:
            break
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
    """A seeded, stratified sample of ``test`` (the test split, else the validation texts): ``(index, texts,
    labels, fingerprint)``."""
    index = stratified_subset(test["label"], n, seed)
    rows = test.select(index)
    texts, labels = rows["text"], np.asarray(rows["label"])
    return index, texts, labels, fingerprint(index, texts)


def as_requests(texts, size):
    """``texts`` as users send them, in requests of ``size``."""
    return [texts[i:i + size] for i in range(0, len(texts), size)]


def benchmark(served, texts, labels, settings, device):
    """Accuracy, model-only speed per batch size, end-to-end speed and latency of one ``Served`` model."""
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    texts = list(texts)
    inputs = served.inputs(texts)
    lengths = served.lengths(inputs)
    n_tokens = int(np.sum(lengths))
    out = {"accuracy": float((served.predict(texts) == np.asarray(labels)).mean()), "per_batch_size": {}}
    for bs in settings.batch_sizes:
        # Inputs prepared (tokenized, or vectorized) beforehand: this times the model alone.
        batches = [served.batch(inputs, b) for b in length_batches(lengths, bs)]
        timing = time_runs(served.scores, batches, settings.warmup, settings.repeats, sync, settings.progress,
                           f"{served.runtime} batch {bs}")
        out["per_batch_size"][bs] = summarise(timing, len(texts), n_tokens)

    # End to end: raw text in, labels out, in the order users send it, in requests and one at a time.
    chunks = as_requests(texts, settings.e2e_batch_size)
    time_runs(served.predict, chunks, settings.warmup, 0, sync)  # warm-up, kept out of the clock too
    served.clock = dict.fromkeys(served.clock, 0.0)
    timing = time_runs(served.predict, chunks, 0, settings.repeats, sync, settings.progress, "end to end",
                       min_seconds=E2E_MIN_SECONDS)
    out["e2e_reviews_per_s"] = summarise(timing, len(texts), n_tokens)["reviews_per_s"]
    total = sum(served.clock.values())
    out["e2e_tokenize_share"], out["e2e_batching_share"], out["e2e_model_share"] = (
        served.clock[key] / total for key in ("prepare", "batch", "model"))
    timing = time_runs(served.predict, [[t] for t in texts], 0, settings.repeats, sync, settings.progress, "one by one")
    one = summarise(timing, len(texts), n_tokens)
    out["e2e_latency_ms_p50"], out["e2e_latency_ms_p95"] = one["latency_ms_p50"], one["latency_ms_p95"]
    return out


def timed_passes(served, texts, settings, sync=None):
    """One timed pass over ``texts`` of each measure of ``both``, as callables returning the pass's cost in
    seconds: ``bs{B}``, the model alone in batches of B (inputs prepared beforehand); ``e2e``, raw text in
    requests of ``e2e_batch_size``; ``e2e_latency``, one review at a time, whose cost is the median review's."""

    def seconds(run_batch, batches):
        return time_runs(run_batch, batches, 0, 1, sync)["run_seconds"][0]

    def median_review():
        return float(np.median(time_runs(served.predict, [[t] for t in texts], 0, 1, sync)["latencies"]))

    inputs = served.inputs(texts)
    lengths = served.lengths(inputs)
    passes = {f"bs{bs}": functools.partial(seconds, served.scores, [served.batch(inputs, b) for b in
                                                                    length_batches(lengths, bs)])
              for bs in settings.batch_sizes}
    return passes | {"e2e": functools.partial(seconds, served.predict, as_requests(texts, settings.e2e_batch_size)),
                     "e2e_latency": median_review}


def paired_passes(first, second, min_seconds):
    """The costs of passes ``first()`` and ``second()`` run back to back, the order alternating, until there are
    ``MIN_PAIRS`` pairs and ``min_seconds`` have passed, after one untimed pass of each: ``(first_costs,
    second_costs)``, arrays of one entry per pair."""
    first()  # warm-up
    second()
    costs = {first: [], second: []}
    start = time.perf_counter()
    while len(costs[first]) < MIN_PAIRS or time.perf_counter() - start < min_seconds:
        # The order alternates, so that neither model always runs right after the other.
        for one_pass in (first, second) if len(costs[first]) % 2 == 0 else (second, first):
            costs[one_pass].append(one_pass())
    return np.asarray(costs[first]), np.asarray(costs[second])


def peak_memory_mb(device):
    import resource

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def load_served(settings, name, device):
    """The timed model ``name`` (student, vanilla or bar) as a ``Served`` model."""
    folder_name, made_by = MODELS[name]
    folder = settings.out_dir / folder_name
    if name == "bar":
        return ServedBar(folder)
    return ServedTransformer(folder, settings.runtime, device, made_by, what=f"{name} model")


def measure(settings, name, sample, device, run_id):
    """Benchmark model ``name`` on ``sample`` (``inference_sample``); returns its results lines' fields by
    batch size, and the measurement."""
    _, texts, labels, data_fp = sample
    served = load_served(settings, name, device)
    result = benchmark(served, texts, labels, settings, device)
    params, non_embedding, size_mb = served.size()
    fields = dict(
        runtime=served.runtime, accuracy=result["accuracy"], n_reviews=len(texts), data_fingerprint=data_fp,
        e2e_reviews_per_s=result["e2e_reviews_per_s"], e2e_batch_size=settings.e2e_batch_size,
        e2e_tokenize_share=result["e2e_tokenize_share"], e2e_batching_share=result["e2e_batching_share"],
        e2e_model_share=result["e2e_model_share"], e2e_latency_ms_p50=result["e2e_latency_ms_p50"],
        e2e_latency_ms_p95=result["e2e_latency_ms_p95"], params=params, non_embedding_params=non_embedding,
        size_mb=size_mb, peak_mem_mb=peak_memory_mb(device), threads=torch.get_num_threads(), device=device.type,
        warmup=settings.warmup, repeats=settings.repeats, run_id=run_id)
    lines = [dict(model=name, batch_size=bs, **stats, **fields) for bs, stats in result["per_batch_size"].items()]
    return lines, result | fields


def comparable(a, b, same_runtime=True):
    """Why two measurements cannot be compared (``measured on other ...``), or None when they can."""
    keys = (("data_fingerprint", "data"), ("threads", "threads"), ("device", "device"), ("n_reviews", "sample size"))
    for key, what in keys + ((("runtime", "runtime"),) if same_runtime else ()):
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


def comparison_table(runs):
    """Lines of the side-by-side table of measurements ``runs`` (model name -> {batch_size: record}),
    the student's speed against each other model's."""
    names = list(runs)
    first = {name: next(iter(lines.values())) for name, lines in runs.items()}
    others = [n for n in names if n != "student"]
    lines = [f"{'':<26}" + "".join(f"{n + ' (' + first[n]['runtime'] + ')':>22}" for n in names)
             + "".join(f"{'student/' + n:>16}" for n in others)]

    def row(label, values, higher_is_faster=True):
        ratios = [values["student"] / values[n] if higher_is_faster else values[n] / values["student"] for n in others]
        return (f"{label:<26}" + "".join(f"{values[n]:>22,.1f}" for n in names)
                + "".join(f"{r:>15.1f}x" for r in ratios))

    for bs in sorted(set.intersection(*(set(lines) for lines in runs.values()))):
        lines.append(row(f"model only, batch {bs} rev/s", {n: runs[n][bs]["reviews_per_s"] for n in names}))
    lines.append(row(f"end to end, batch {first['student']['e2e_batch_size']} rev/s",
                     {n: first[n]["e2e_reviews_per_s"] for n in names}))
    lines.append(row("end to end, one review, p50 ms", {n: first[n]["e2e_latency_ms_p50"] for n in names}, False))
    lines.append(row("end to end, one review, p95 ms", {n: first[n]["e2e_latency_ms_p95"] for n in names}, False))
    lines.append(f"{'accuracy':<26}" + "".join(f"{first[n]['accuracy']:>22.4f}" for n in names))
    for key, what in (("tokenize", "tokenizing"), ("batching", "building batches"), ("model", "in the model")):
        lines.append(f"{what + ', share':<26}" + "".join(f"{first[n].get(f'e2e_{key}_share', 0):>22.0%}" for n in names))
    lines.append(f"{'parameters':<26}" + "".join(f"{first[n]['params']:>22,}" for n in names))
    lines.append(f"{'weights, MB':<26}" + "".join(f"{first[n]['size_mb']:>22.2f}" for n in names))
    return lines


def run_timing(settings, name, prog, device):
    """The body of compare_student.py (``name="student"``) and vanilla_inference.py (``"vanilla"``): the
    model, and the bar beside it (both Transformers too with ``both``)."""
    names = ["student", "vanilla"] if settings.both else [name]
    for model_name in names:  # fail before measuring anything
        folder_name, made_by = MODELS[model_name]
        check_checkpoint(settings.out_dir / folder_name, made_by, f"{model_name} model")
    if (settings.out_dir / MODELS["bar"][0]).is_dir():
        names.append("bar")
    else:
        say(f"{prog}: the bar is not timed: no {settings.out_dir / MODELS['bar'][0]} (`python training.py` fits it)")
    corpus = load_corpus(settings.data, settings.columns)
    split = "test"
    if corpus.test is None:  # the labels known without a test split: the validation set's
        split, history = "validation", ALHistory.load(settings.out_dir / MODELS["vanilla"][0])
        val = corpus.train.select(history.val_index)
        if history.val_labels is not None:  # a person's answers
            val = val.remove_columns("label").add_column("label", history.val_labels)
        sample = inference_sample(val, settings.n_reviews, settings.seed)
    else:
        sample = inference_sample(corpus.test, settings.n_reviews, settings.seed)
    run_id = uuid.uuid4().hex[:8]
    say(f"{prog}: {len(sample[1])} {split} texts (fingerprint {sample[3]}), {torch.get_num_threads()} threads, "
        f"{device}, runtime {settings.runtime}")
    if settings.both:
        return compare_in_pairs(settings, prog, names, sample, device, run_id)
    measured = {n: measure(settings, n, sample, device, run_id) for n in names}
    append_results(settings.results, prog, [line for lines, _ in measured.values() for line in lines])
    for n, (_, result) in measured.items():
        print_single(n, result)
    return measured[name][1] | {"compared": compare_latest(settings, prog)}


def compare_latest(settings, prog):
    """Print the table of the latest comparable measurements of the student, vanilla and the bar in the
    results file; returns whether it could."""
    records = read_results(settings.results)
    runs = {n: latest_run(records, n) for n in ("student", "vanilla", "bar")}
    missing = [n for n in ("student", "vanilla") if runs[n] is None]
    if missing:
        print(f"not compared: no {missing[0]} measurement in {settings.results} yet: run `python {SCRIPTS[missing[0]]}`")
        return False
    first = {n: next(iter(lines.values())) for n, lines in runs.items() if lines}
    why = comparable(first["student"], first["vanilla"])
    if why:
        print(f"not compared: the latest student and vanilla measurements were {why}")
        return False
    if "bar" in first and comparable(first["student"], first["bar"], same_runtime=False):
        del runs["bar"]
    print("\n".join(["", f"side by side, from {settings.results}"]
                    + comparison_table({n: lines for n, lines in runs.items() if lines})))
    return True


def print_single(name, result):
    print(f"\n{name} ({result['runtime']}): accuracy {result['accuracy']:.4f} on {result['n_reviews']} reviews, "
          f"{result['params']:,} params, {result['size_mb']:.2f} MB, peak memory {result['peak_mem_mb']:.0f} MB")
    print(f"{'batch':>6} {'rev/s':>10} {'tokens/s':>12} {'p50 ms':>9} {'p95 ms':>9}")
    for bs, s in result["per_batch_size"].items():
        print(f"{bs:>6} {s['reviews_per_s']:>10.1f} {s['tokens_per_s']:>12.0f} "
              f"{s['latency_ms_p50']:>9.2f} {s['latency_ms_p95']:>9.2f}")
    print(f"end to end (batch {result['e2e_batch_size']}): {result['e2e_reviews_per_s']:.1f} rev/s; of its time "
          f"{result['e2e_tokenize_share']:.0%} tokenizing, {result['e2e_batching_share']:.0%} building batches, "
          f"{result['e2e_model_share']:.0%} in the model; one review at a time: "
          f"p50 {result['e2e_latency_ms_p50']:.2f} ms, p95 {result['e2e_latency_ms_p95']:.2f} ms")


def compare_in_pairs(settings, prog, names, sample, device, run_id):
    """The student's speedup over each other model, measure by measure (``timed_passes``), from passes run back
    to back (``paired_passes``): drift on a shared machine hits both passes of a pair. Each ratio is the median
    over the pairs, reported with their quartiles and count."""
    _, texts, labels, data_fp = sample
    texts = list(texts)
    served = {name: load_served(settings, name, device) for name in names}
    acc = {name: float((s.predict(texts) == np.asarray(labels)).mean()) for name, s in served.items()}
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    student = timed_passes(served["student"], texts, settings, sync)
    ratios, speeds = {}, {}
    for other, prefix in (("vanilla", "speedup"), ("bar", "vs_bar")):
        if other not in served:
            continue
        theirs = timed_passes(served[other], texts, settings, sync)
        for measure in progress(student, settings.progress, desc=f"student against {other}", leave=False):
            student_cost, other_cost = paired_passes(student[measure], theirs[measure], settings.pair_seconds)
            ratios[f"{prefix}_{measure}"] = (other_cost / student_cost).tolist()
            if measure == "e2e":
                speeds[other] = (len(texts) / student_cost, len(texts) / other_cost)
    medians = {key: float(np.median(vals)) for key, vals in ratios.items()}
    quartiles = {f"{key}_{q}": float(np.percentile(vals, p)) for key, vals in ratios.items()
                 for q, p in (("q1", 25), ("q3", 75))}
    counts = {f"{key}_pairs": len(vals) for key, vals in ratios.items()}
    append_results(settings.results, prog, [dict(
        model="pair", runtime=settings.runtime, n_reviews=len(texts), data_fingerprint=data_fp, **medians,
        **quartiles, **counts, **{f"accuracy_{n}": a for n, a in acc.items()}, threads=torch.get_num_threads(),
        device=device.type, run_id=run_id)])
    print(f"\nthe student against each model, passes run back to back in pairs in one process (runtime {settings.runtime}):")
    for key, vals in ratios.items():
        print(f"  {key:>22}: median {medians[key]:.2f}x  (quartiles {quartiles[key + '_q1']:.2f}-"
              f"{quartiles[key + '_q3']:.2f}x; {len(vals)} pairs)")
    for other, (student_rate, other_rate) in speeds.items():
        print(f"  {'':>22}  end to end, reviews/s in those passes: student {_spread(student_rate)}, "
              f"{other} {_spread(other_rate)}")
    print("  accuracy: " + ", ".join(f"{n} {a:.4f}" for n, a in acc.items()))
    return {"ratios": ratios, "medians": medians, "quartiles": quartiles, "accuracy": acc}


def _spread(rates):
    """``median (min-max)`` of reviews/s."""
    return f"{np.median(rates):,.0f} ({rates.min():,.0f}-{rates.max():,.0f})"
