"""labelless.export: ONNX copies give torch's logits (fp32) or close to them (int8), padding honoured."""

import numpy as np
import pytest
import torch

from labelless.export import ONNX_FILES, export_onnx
from labelless.store import save_checkpoint


def session(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_onnx_copies_match_torch_on_padded_batches_of_mixed_lengths(tiny_model_and_tokenizer, tmp_path):
    model, tok = tiny_model_and_tokenizer
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)  # away from the near-zero init, so differences would show
    export_onnx(model, tmp_path)
    texts = ["a great and moving film", "dull", "the plot was boring, the actors awful and the ending a mess"]
    enc = tok(texts, padding=True, truncation=True, return_tensors="np")
    with torch.no_grad():
        expected = model(torch.from_numpy(enc["input_ids"]), attention_mask=torch.from_numpy(enc["attention_mask"])).logits
    feeds = {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)}
    fp32 = session(tmp_path / ONNX_FILES["onnx"]).run(None, feeds)[0]
    np.testing.assert_allclose(fp32, expected.numpy(), atol=1e-4)
    int8 = session(tmp_path / ONNX_FILES["onnx-int8"]).run(None, feeds)[0]
    assert np.abs(int8 - expected.numpy()).max() < 0.1 and not np.array_equal(int8, fp32)
    # Padding changes nothing: the short review alone gives its padded row's logits.
    alone = tok(texts[1:2], return_tensors="np")
    one = session(tmp_path / ONNX_FILES["onnx"]).run(None, {k: v.astype(np.int64) for k, v in alone.items()})[0]
    np.testing.assert_allclose(one[0], fp32[1], atol=1e-5)
    assert model.training is False


def test_checkpoints_saved_with_onnx_hold_both_copies(tiny_model_and_tokenizer, tmp_path):
    model, tok = tiny_model_and_tokenizer
    folder = save_checkpoint(model, tok, tmp_path / "student", {}, onnx=True)
    assert {"model.onnx", "model.int8.onnx"} <= {p.name for p in folder.iterdir()}


def test_the_export_command_adds_the_copies_to_an_old_folder(tiny_model_and_tokenizer, tmp_path, capsys):
    from labelless import export

    model, tok = tiny_model_and_tokenizer
    folder = save_checkpoint(model, tok, tmp_path / "teacher", {})
    export.main([str(folder)])
    assert (folder / "model.int8.onnx").is_file() and "model.onnx" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="labelless.export: error: no model at"):
        export.main([str(tmp_path / "absent")])
