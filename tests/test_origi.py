import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F

import common
import origi
import training


# --- the loss ---------------------------------------------------------------------------------


def test_alpha_0_is_cross_entropy():
    torch.manual_seed(0)
    s, t, y = torch.randn(8, 2), torch.randn(8, 2), torch.randint(0, 2, (8,))
    loss = common.distillation_loss(s, t, y, torch.ones(8, dtype=torch.bool), temperature=3.0, alpha=0.0)
    torch.testing.assert_close(loss, F.cross_entropy(s, y))


def test_hard_term_uses_revealed_rows_only():
    torch.manual_seed(0)
    s, t, y = torch.randn(8, 2), torch.randn(8, 2), torch.randint(0, 2, (8,))
    revealed = torch.tensor([1, 1, 0, 0, 1, 0, 0, 0], dtype=torch.bool)
    loss = common.distillation_loss(s, t, y, revealed, 2.0, alpha=0.0)
    torch.testing.assert_close(loss, F.cross_entropy(s[revealed], y[revealed]))
    flipped = torch.where(revealed, y, 1 - y)  # hidden labels changed: same loss
    torch.testing.assert_close(common.distillation_loss(s, t, flipped, revealed, 2.0, 0.5),
                               common.distillation_loss(s, t, y, revealed, 2.0, 0.5))
    none = torch.zeros(8, dtype=torch.bool)
    assert common.distillation_loss(s, t, y, none, 2.0, 0.0).item() == 0.0


def test_matching_teacher_gives_zero_soft_loss():
    t = torch.randn(16, 2)
    loss = common.distillation_loss(t.clone(), t, torch.zeros(16, dtype=torch.long), torch.ones(16, dtype=torch.bool),
                                    temperature=4.0, alpha=1.0)
    assert abs(loss.item()) < 1e-6
    assert common.distillation_loss(t + torch.randn(16, 2), t, torch.zeros(16, dtype=torch.long),
                                    torch.ones(16, dtype=torch.bool), 4.0, 1.0).item() > 1e-3


def test_t_squared_keeps_gradient_scale_across_temperatures():
    torch.manual_seed(0)
    t = torch.randn(256, 2) * 0.5  # logit gaps small next to T: the regime of Hinton et al.'s argument
    base = torch.randn(256, 2) * 0.5
    norms = {}
    for T in (2.0, 5.0, 10.0):
        s = base.clone().requires_grad_(True)
        common.distillation_loss(s, t, torch.zeros(256, dtype=torch.long), torch.ones(256, dtype=torch.bool),
                                 T, 1.0).backward()
        norms[T] = s.grad.norm().item()
    assert max(norms.values()) / min(norms.values()) < 1.5
    # Without T^2 the gradient would shrink by about 1/T^2: 25x between T=2 and T=10.


# --- the script, in process -------------------------------------------------------------------


def run_args(data, ck, results, *extra):
    return ["--preset", "smoke", "--data", str(data), "--out-dir", str(ck), "--results", str(results),
            "--no-progress", "--threads", "1", *extra]


@pytest.fixture
def teacher(parquet_dir, tmp_path):
    ck = tmp_path / "ck"
    training.main(run_args(parquet_dir, ck, tmp_path / "training.txt"))
    return ck


def test_smoke_run_writes_students_and_results(parquet_dir, teacher, tmp_path):
    results = tmp_path / "results.txt"
    out = origi.main(run_args(parquet_dir, teacher, results))
    records = common.read_results(results)
    assert [r["model"] for r in records] == ["student", "student_no_kd"]
    history = common.read_json(teacher / "teacher" / "al_history.json")
    s, b = records
    assert s["transfer_size"] == len(history["pool_index"]) == 240
    assert b["transfer_size"] == len(history["revealed_index"]) == 120
    assert s["labels_used"] == history["labels_used"] == 180
    assert s["test_acc"] == pytest.approx(out["student"]["test_acc"], abs=1e-4)
    assert 0 <= s["agreement"] <= 1 and s["temperature"] == 4.0 and s["alpha"] == 0.9 and b["alpha"] == 0.0
    for name in ("student", "student_no_kd"):
        model, _, info = common.load_checkpoint(teacher / name, "origi.py")
        assert info["distilled"] == (name == "student")


def test_unrevealed_labels_are_never_read(parquet_dir, teacher, tmp_path):
    before = origi.main(run_args(parquet_dir, teacher, tmp_path / "a.txt", "--skip-baseline"))
    history = common.read_json(teacher / "teacher" / "al_history.json")
    hidden = np.setdiff1d(history["pool_index"], history["revealed_index"])
    table = pq.read_table(parquet_dir / "train.parquet")
    labels = np.array(table["label"].to_pylist())
    labels[hidden] = 1 - labels[hidden]  # corrupt every label active learning did not reveal
    pq.write_table(pa.table({"text": table["text"], "label": labels}), parquet_dir / "train.parquet")
    after = origi.main(run_args(parquet_dir, teacher, tmp_path / "b.txt", "--skip-baseline"))
    assert after == before


def test_missing_teacher_exits_2_and_leaves_results_alone(tmp_path, parquet_dir, capsys):
    results = tmp_path / "results.txt"
    results.write_text("2026-01-01T00:00:00Z training.py model=teacher\n")
    with pytest.raises(SystemExit) as e:
        origi.main(run_args(parquet_dir, tmp_path / "nowhere", results))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"origi.py: error: no teacher at {tmp_path / 'nowhere' / 'teacher'}: "
                   "run `python training.py` first (or pass --out-dir)")
    assert results.read_text() == "2026-01-01T00:00:00Z training.py model=teacher\n"


def test_other_data_than_the_teachers_is_refused(teacher, tmp_path, capsys):
    from conftest import write_parquet

    other = write_parquet(tmp_path / "other", seed=7)
    with pytest.raises(SystemExit) as e:
        origi.main(run_args(other, teacher, tmp_path / "r.txt"))
    assert e.value.code == 2 and "is not the data the teacher was trained on" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--temperature", "0"], "--temperature must be positive"),
    (["--alpha", "1.5"], "--alpha must be between 0 and 1"),
    (["--no-distill", "--temperature", "8"], "--temperature and --alpha set the distillation, which --no-distill"),
    (["--no-distill", "--alpha", "0.5"], "--temperature and --alpha set the distillation, which --no-distill"),
])
def test_bad_options(parquet_dir, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as e:
        origi.main(run_args(parquet_dir, tmp_path, tmp_path / "r.txt", *extra))
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "r.txt").exists()
