"""Learning curves of active-learning runs: mean and spread over seeds, labels saved, the plot."""

import numpy as np


def curve_summary(runs, metric):
    """Per strategy: mean and std of ``metric`` over seeds at each labels_used, and the mean share of
    stop-set predictions that changed since the round before (``changed``; None in round 0). Runs
    stopped early by ``--stop-when-stable`` are summarised over the rounds all of them have."""
    out = {}
    for strategy in dict.fromkeys(r["strategy"] for r in runs):
        curves = [r for r in runs if r["strategy"] == strategy]
        n = min(len(r["rounds"]) for r in curves)
        x = [rec["labels_used"] for rec in curves[0]["rounds"][:n]]
        ys = np.array([[rec[metric] for rec in r["rounds"][:n]] for r in curves])
        changed = [None if None in [r["rounds"][i].get("changed") for r in curves]
                   else float(np.mean([r["rounds"][i]["changed"] for r in curves])) for i in range(n)]
        out[strategy] = {"labels_used": x, "mean": ys.mean(0).tolist(), "std": ys.std(0).tolist(), "changed": changed}
    return out


def label_savings(summary, strategy):
    """Labels ``strategy`` needs to reach random's final mean accuracy, as a fraction of random's
    (None: not reached within the budget). Equal means count as reached: means of the same counts of
    correct reviews, summed in another order, can differ in their last bits."""
    rnd, ours = summary["random"], summary[strategy]
    target = rnd["mean"][-1]
    for x, y in zip(ours["labels_used"], ours["mean"]):
        if y >= target - 1e-9:
            return x / rnd["labels_used"][-1]
    return None


def plot_curves(summary, metric, path):
    """The curves of ``summary`` with a ±std band, as a PNG written atomically to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, stop) = plt.subplots(2, 1, figsize=(6, 6), sharex=True, height_ratios=(2, 1))
    for strategy, c in summary.items():
        x, m, s = np.array(c["labels_used"]), np.array(c["mean"]), np.array(c["std"])
        ax.plot(x, m, marker="o", label=strategy)
        ax.fill_between(x, m - s, m + s, alpha=0.2)
        changed = [(xi, ci) for xi, ci in zip(x, c.get("changed", [])) if ci is not None]
        if changed:
            stop.plot(*zip(*changed), marker="o", label=strategy)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title("Active learning: mean ± std over seeds")
    stop.set_xlabel("labels used (validation included)")
    stop.set_ylabel("predictions changed")
    stop.set_title("stopping signal: stop-set predictions changed since the last round", fontsize=9)
    for a in (ax, stop):
        a.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
