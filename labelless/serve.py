"""Raw text in, labels out, fast: a checkpoint or the bar, ready to serve.

``load(folder, runtime)`` returns a ``Served`` model for a checkpoint folder (run by torch, or by ONNX
Runtime from its ``model.onnx`` / ``model.int8.onnx``) or for the bar's folder. ``predict(texts)`` is
the end-to-end path the timing scripts measure: each text cut to the tail that gives the same token
ids, plain ASCII tokenized by a faster Python copy of the tokenizer that gives the same ids and the rest by
the Rust tokenizer, then run in micro-batches of similar lengths.

    served = load("checkpoints/student", runtime="onnx")
    served.predict(["A wonderful film.", "Dull."])    # array([1, 0])
"""

import time
from pathlib import Path

import numpy as np
import torch

from . import UserError
from .bar import Bar
from .export import ONNX_FILES
from .runtime import autocast
from .store import load_checkpoint
from .text import CUT_MARGIN, AsciiWordPiece, collate, cut_at_space, is_plain_ascii, tails

RUNTIMES = ("torch", *ONNX_FILES)
CLOCK = ("prepare", "batch", "model", "other")  # where ``predict``'s time goes
MICRO_BATCH = 8  # reviews per model call in ``predict``, sorted by length: less padding
# IMDB averages ~4.4 characters per token: a tail of 6 per kept token holds them for ~98% of long reviews.
SERVE_CHARS_PER_TOKEN = 6


class Served:
    """A served model: ``inputs`` prepares texts (tokenizer or vectorizer), ``batch`` gathers some of the
    prepared inputs, ``scores`` runs the model alone on a batch, ``predict`` does all of it for raw texts.
    ``clock`` adds up where ``predict``'s seconds go: preparing the texts, building the padded batches,
    the model, and the rest (sorting, gathering the scores, the labels)."""

    runtime, folder, micro_batch = "", None, MICRO_BATCH

    def __init__(self):
        self.clock = dict.fromkeys(CLOCK, 0.0)

    def predict(self, texts):
        """Labels of raw ``texts`` (an array of class ids)."""
        t0 = time.perf_counter()
        inputs = self.inputs(list(texts))
        spent = {"prepare": time.perf_counter() - t0, "batch": 0.0, "model": 0.0}
        lengths = self.lengths(inputs)
        order = np.argsort(lengths, kind="stable")
        scores = None  # (N, K), K known from the first batch
        step = self.micro_batch or len(order)
        for start in range(0, len(order), step):
            t1 = time.perf_counter()
            batch = self.batch(inputs, order[start:start + step])
            t2 = time.perf_counter()
            out = self.scores(batch)
            if scores is None:
                scores = np.empty((len(lengths), out.shape[1]), dtype=np.float64)
            scores[order[start:start + step]] = out
            spent["batch"], spent["model"] = spent["batch"] + t2 - t1, spent["model"] + time.perf_counter() - t2
        labels = scores.argmax(1) if scores is not None else np.zeros(0, dtype=np.int64)
        spent["other"] = time.perf_counter() - t0 - sum(spent.values())
        for key, seconds in spent.items():
            self.clock[key] += seconds
        return labels


class ServedTransformer(Served):
    """A checkpoint folder's model and tokenizer, run by torch or ONNX Runtime (``runtime``)."""

    def __init__(self, folder, runtime="torch", device="cpu", made_by="origi.py", what="model"):
        super().__init__()
        self.folder, self.runtime, self.device = Path(folder), runtime, torch.device(device)
        self.model, tokenizer, _ = load_checkpoint(folder, made_by, device, what=what)
        self.pad_id = self.model.config.pad_token_id
        self.session = None
        if runtime != "torch":
            self.session = _session(self.folder / ONNX_FILES[runtime], self.folder, made_by)
        self.hf_tokenizer = tokenizer
        backend, max_len = tokenizer.backend_tokenizer, tokenizer.model_max_length
        self.tokenizer = _serving(backend.__class__.from_str(backend.to_str()), max_len)
        self.ascii_tokenizer = AsciiWordPiece.of(backend, max_len)  # plain ASCII (most reviews): the same ids, faster

    def inputs(self, texts):
        """Token ids of each text, as the saved tokenizer gives them (its last ``max_len`` tokens). A long
        text is first cut, at a space, to ``SERVE_CHARS_PER_TOKEN`` characters per kept token; the cut
        stands when the tokenizer still drops ``CUT_MARGIN`` of the tail's tokens (so the kept ones are the
        whole text's), else that text is tokenized again from ``tails``, which verifies a longer tail."""
        cut = [cut_at_space(t, SERVE_CHARS_PER_TOKEN * self.hf_tokenizer.model_max_length) for t in texts]
        encodings = self.encode(cut)
        redo = [i for i, (_, dropped) in enumerate(encodings) if cut[i] is not texts[i] and dropped < CUT_MARGIN]
        if redo:
            again = self.encode(tails(self.hf_tokenizer, [texts[i] for i in redo]))
            for i, e in zip(redo, again):
                encodings[i] = e
        return [ids for ids, _ in encodings]

    def encode(self, texts):
        """``(ids, tokens truncation dropped)`` of each text as the saved tokenizer gives them; plain ASCII
        ones come from its Python copy."""
        fast = self.ascii_tokenizer
        out = [fast.encode(t) if fast is not None and is_plain_ascii(t) else None for t in texts]
        rest = [i for i, o in enumerate(out) if o is None]
        # encode_batch_fast: the same ids without the character offsets, which serving never reads.
        for i, e in zip(rest, self.tokenizer.encode_batch_fast([texts[i] for i in rest]) if rest else ()):
            out[i] = np.asarray(e.ids, dtype=np.int64), _dropped(e)
        return out

    def lengths(self, inputs):
        return [len(x) for x in inputs]

    def batch(self, inputs, idx):
        ids, mask = collate([inputs[i] for i in idx], self.pad_id, self.device)
        return (ids, mask) if self.session is None else (ids.numpy(), mask.numpy())

    @torch.inference_mode()
    def scores(self, batch):
        if self.session is not None:
            return self.session.run(None, {"input_ids": batch[0], "attention_mask": batch[1]})[0]
        with autocast(self.device):
            return self.model(batch[0], attention_mask=batch[1]).logits.float().cpu().numpy()

    def size(self):
        """(parameters, non-embedding parameters, MB of weights on disk for this runtime)."""
        weights = self.folder / ("model.safetensors" if self.session is None else ONNX_FILES[self.runtime])
        return self.model.num_params(), self.model.num_params(non_embedding=True), weights.stat().st_size / 1e6


class ServedBar(Served):
    """The bar's TF-IDF vectorizer and logistic regression (scikit-learn)."""

    runtime, micro_batch = "sklearn", None  # a sparse product costs the same in one call: no micro-batches

    def __init__(self, folder):
        super().__init__()
        self.folder = Path(folder)
        self.bar = Bar.load(folder)

    def inputs(self, texts):
        return self.bar.vectorizer.transform(texts)  # (N, n_features) CSR

    def lengths(self, inputs):
        return np.diff(inputs.indptr)  # n-grams per review

    def batch(self, inputs, idx):
        return inputs[idx]

    def scores(self, batch):
        return self.bar.scores(batch)

    def size(self):
        n = self.bar.classifier.coef_.size + self.bar.classifier.intercept_.size
        return n, n, sum(f.stat().st_size for f in self.folder.iterdir()) / 1e6


def _serving(tokenizer, max_len):
    """``tokenizer`` (a Rust one) set to keep a text's last ``max_len`` tokens and never pad."""
    tokenizer.enable_truncation(max_len, direction="left")  # the end of a review
    tokenizer.no_padding()
    return tokenizer


def _dropped(encoding):
    """Real tokens the tokenizer's truncation dropped from an encoding."""
    return sum(mask.count(0) for mask in (o.special_tokens_mask for o in encoding.overflowing))


def _session(path, folder, made_by):
    import onnxruntime as ort

    if not path.is_file():
        raise UserError(f"no {path.name} in {folder}: run `python -m labelless.export {folder}` (or `python {made_by}` "
                        "again), or pass --runtime torch")
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load(folder, runtime="torch", device="cpu"):
    """The ``Served`` model in ``folder``: the bar (a folder with ``bar.safetensors``) or a checkpoint."""
    folder = Path(folder)
    if (folder / "bar.safetensors").is_file():
        return ServedBar(folder)
    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    return ServedTransformer(folder, runtime, device)
