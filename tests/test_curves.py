"""labelless.curves: mean curves over seeds, and the labels a strategy needs to match random."""

import pytest

from labelless.curves import curve_summary, label_savings, plot_curves


def test_label_savings():
    summary = {"random": {"labels_used": [100, 200, 300, 400], "mean": [0.6, 0.7, 0.75, 0.8]},
               "margin": {"labels_used": [100, 200, 300, 400], "mean": [0.6, 0.78, 0.81, 0.83]}}
    assert label_savings(summary, "margin") == pytest.approx(300 / 400)
    summary["margin"]["mean"] = [0.6, 0.7, 0.7, 0.79]
    assert label_savings(summary, "margin") is None


def test_a_tie_with_random_counts_as_reached():
    # 5,188 correct of 6,000 on both sides (al_seed500_val2000): the float means differ in their last bit.
    summary = curve_summary([{"strategy": s, "rounds": [{"labels_used": n, "val_acc": a} for n, a in zip((10, 20), accs)]}
                             for s, accs in [("margin", (0.86, 0.9)), ("margin", (0.8605, 0.9)), ("margin", (0.8735, 0.9)),
                                             ("random", (0.5, 0.867)), ("random", (0.5, 0.8665)),
                                             ("random", (0.5, 0.8605))]], "val_acc")
    assert summary["margin"]["mean"][0] < summary["random"]["mean"][-1]  # the float artefact this guards against
    assert label_savings(summary, "margin") == pytest.approx(10 / 20)


def test_curve_summary_over_seeds_and_plot(tmp_path):
    def run(strategy, accs):
        return {"strategy": strategy, "rounds": [{"labels_used": n, "val_acc": a} for n, a in zip((10, 20), accs)]}

    summary = curve_summary([run("margin", (0.6, 0.8)), run("margin", (0.8, 0.8)), run("random", (0.6, 0.7))],
                            "val_acc")
    assert list(summary) == ["margin", "random"]
    assert summary["margin"]["labels_used"] == [10, 20]
    assert summary["margin"]["mean"] == pytest.approx([0.7, 0.8]) and summary["margin"]["std"] == pytest.approx([0.1, 0])
    plot_curves(summary, "val_acc", tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 1000 and [p.name for p in tmp_path.iterdir()] == ["curve.png"]


def test_the_stopping_signal_is_averaged_and_runs_stopped_early_are_cut_to_the_shortest(tmp_path):
    def run(changed):
        return {"strategy": "margin", "rounds": [{"labels_used": 10 * (i + 1), "val_acc": 0.5 + i / 10}
                                                 | ({} if c is None else {"changed": c}) for i, c in enumerate(changed)]}

    summary = curve_summary([run([None, 0.2, 0.1]), run([None, 0.4])], "val_acc")["margin"]
    assert summary["labels_used"] == [10, 20] and summary["changed"] == [None, pytest.approx(0.3)]
    plot_curves({"margin": summary}, "val_acc", tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 1000
