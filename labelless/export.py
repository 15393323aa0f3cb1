"""ONNX copies of a checkpoint's model, for ONNX Runtime: fp32, and int8 by dynamic quantization.

``model.onnx`` is exported from the same weights with dynamic batch and length axes and the padding
mask as an input; ``model.int8.onnx`` quantizes its weights to int8 (activations stay float). Inputs
are at most the tokenizer's length: the model's ``max_len``, or its bag's ``bag_max_len`` where that is longer.

    python -m labelless.export checkpoints/student      # add both copies to a folder saved without them
"""

import logging
import sys
import warnings
from pathlib import Path

import torch

ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}


def export_onnx(model, folder):
    """Write ``model.onnx`` and ``model.int8.onnx`` of ``model`` (a ``TransformerClassifier``) into ``folder``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = Path(folder)
    was_training = model.training
    model.eval()
    # Longer than the encoder reads where the bag reads more, so that the encoder's crop is part of the graph.
    length = min(model.config.max_len + 8, model.config.bag_max_len) if model.config.bag_max_len else 8
    ids = torch.full((2, length), model.config.pad_token_id + 5, dtype=torch.long, device=model.device)
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0  # a padded row, so the mask's use is part of the traced graph
    axes = {"input_ids": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"}, "logits": {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on shape-dependent Python branches
        torch.onnx.export(model, (ids, mask), folder / ONNX_FILES["onnx"], input_names=["input_ids", "attention_mask"],
                          output_names=["logits"], dynamic_axes=axes, opset_version=17, dynamo=False)
    model.train(was_training)
    logging.disable(logging.WARNING)  # the quantizer's advice to pre-process, meant for image models
    try:
        quantize_dynamic(folder / ONNX_FILES["onnx"], folder / ONNX_FILES["onnx-int8"], weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)


def main(argv=None):
    from . import UserError
    from .store import load_checkpoint

    folders = sys.argv[1:] if argv is None else argv
    try:
        for folder in folders:
            model, _, _ = load_checkpoint(folder, "training.py or origi.py", what="model")
            export_onnx(model, folder)
            print(f"{folder}: {', '.join(ONNX_FILES.values())}")
    except UserError as e:
        raise SystemExit(f"labelless.export: error: {e}") from None


if __name__ == "__main__":
    main()
