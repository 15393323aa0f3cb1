"""Learning curves of active-learning runs: mean and spread over seeds, labels saved, the plot."""

import numpy as np


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
    """Labels ``strategy`` needs to reach random's final mean accuracy, as a fraction of random's
    (None: not reached within the budget)."""
    rnd, ours = summary["random"], summary[strategy]
    target = rnd["mean"][-1]
    for x, y in zip(ours["labels_used"], ours["mean"]):
        if y >= target:
            return x / rnd["labels_used"][-1]
    return None


def plot_curves(summary, metric, path):
    """The curves of ``summary`` with a ±std band, as a PNG written atomically to ``path``."""
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
