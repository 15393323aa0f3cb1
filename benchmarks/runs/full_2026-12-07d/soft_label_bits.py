"""The student's soft labels (the teacher's logits less its bag's, ``fit.encoder_logits``) against the teacher's
encoder run alone, on every 50th training review: how far they differ. From the repository root:
    PYTHONPATH=. python benchmarks/runs/full_2026-12-07d/soft_label_bits.py
"""
import copy, numpy as np, torch, transformer
from labelless import store
from labelless.fit import encoder_logits, predict_logits
from labelless.sources import load_imdb
torch.set_num_threads(2)
model, tok, _ = store.load_checkpoint("benchmarks/runs/full_2026-12-07d/checkpoints/teacher", "check", what="teacher")
cfg = copy.deepcopy(model.config); cfg.bag_dim = 0
enc = transformer.TransformerClassifier(cfg)
missing, unexpected = enc.load_state_dict(model.state_dict(), strict=False); assert not missing
train, _ = load_imdb(None)  # $IMDB_DATA, else the hub
texts = train.select(range(0, 25000, 50))["text"]
ids = [np.array(tok(t, truncation=True, max_length=512)["input_ids"]) for t in texts]
a, b = encoder_logits(model, ids), predict_logits(enc, ids)
d = np.abs(a - b)
print(f"{len(ids)} reviews: max |difference| {d.max():.3e}, mean {d.mean():.3e}, rows differing {np.mean((d > 0).any(1)):.3f}")
pa, pb = torch.tensor(a/4).softmax(-1), torch.tensor(b/4).softmax(-1)
print(f"soft labels at T=4: max |difference| {(pa-pb).abs().max():.3e}")
