"""The one Transformer architecture of the project: an encoder-only text classifier.

Teacher and student are two sizes of the same classes (see ``SIZES``), after Vaswani et al. 2017,
"Attention is All You Need": token + learned position embeddings (and, optionally, embeddings of the
hashed bigrams and trigrams ending at each position), ``n_layer`` pre-LN encoder blocks
(multi-head self-attention with a padding mask, feed-forward, residuals), mean pooling over the
non-pad tokens, and a 2-way classification head.

It is a Hugging Face model: importing this module registers it with ``AutoConfig`` and
``AutoModelForSequenceClassification``, so a saved folder works with ``from_pretrained`` and with

    >>> import transformer, transformers
    >>> transformers.pipeline("text-classification", model="checkpoints/teacher")("A great film.")
    [{'label': 'pos', 'score': 0.97}]
"""

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers import initialization as init
from transformers.modeling_outputs import SequenceClassifierOutput

# Named sizes. The student has far fewer non-embedding parameters than the teacher (one thin layer
# against a deep wide stack) because inference time grows with them, while the embedding lookup is
# nearly free. ``tiny`` exists for tests.
SIZES = {
    "teacher": dict(n_layer=3, d_model=128, n_head=4, d_ff=512),
    "student": dict(n_layer=1, d_model=32, n_head=1, d_ff=64),
    "tiny": dict(n_layer=1, d_model=16, n_head=2, d_ff=32),
}



class TransformerConfig(PreTrainedConfig):
    model_type = "label-less-transformer"

    def __init__(
        self,
        vocab_size=16000,
        max_len=256,
        n_layer=1,
        d_model=64,
        n_head=2,
        d_ff=128,
        dropout=0.1,
        attn_dropout=0.0,
        ngram_buckets=0,
        ngram_orders=(2, 3),
        bag_dim=0,
        bag_buckets=131072,
        bag_max_len=0,
        initializer_range=0.02,
        pad_token_id=0,
        **kwargs,
    ):
        if d_model % n_head != 0:
            raise ValueError(f"d_model={d_model} must be divisible by n_head={n_head}")
        # Folders saved before pooling became fixed name it; any other pooling needs another head.
        if kwargs.pop("pooling", "mean") != "mean":
            raise ValueError("this model was saved with a pooling other than mean, which this version cannot run")
        self.vocab_size = vocab_size
        self.max_len = max_len
        self.n_layer = n_layer
        self.d_model = d_model
        self.n_head = n_head
        self.d_ff = d_ff
        self.dropout = dropout
        # Off by default: on a CPU, drawing a (B, n_head, T, T) dropout mask costs more than the
        # attention itself, and it forces SDPA off its fused kernel.
        self.attn_dropout = attn_dropout
        # n-gram embeddings (0 buckets: none): each position also gets the embedding of the hashed n-gram of
        # every order in ``ngram_orders`` that ends there, so the first layer sees phrases, not only words.
        self.ngram_buckets = ngram_buckets
        self.ngram_orders = list(ngram_orders)
        # A bag of n-grams beside the encoder (0 dimensions: none): its logits are added to the encoder's.
        self.bag_dim = bag_dim
        self.bag_buckets = bag_buckets
        # The bag reads the last ``bag_max_len`` tokens of a review (0: ``max_len``), the encoder the last ``max_len``
        # of those: a lookup can read more of the review than attention can afford (the ``full`` student's bag).
        self.bag_max_len = bag_max_len
        self.initializer_range = initializer_range
        kwargs.setdefault("id2label", {0: "neg", 1: "pos"})
        kwargs.setdefault("label2id", {"neg": 0, "pos": 1})
        super().__init__(pad_token_id=pad_token_id, **kwargs)

    @classmethod
    def from_size(cls, size, **kwargs):
        """A config of one of the named ``SIZES``; ``kwargs`` set the rest (vocab_size, max_len...)."""
        if size not in SIZES:
            raise ValueError(f"unknown model size {size!r}: choose one of {', '.join(SIZES)}")
        return cls(**SIZES[size], **kwargs)


class SelfAttention(nn.Module):
    """Multi-head self-attention; padded keys are masked out so padding never changes the result."""

    def __init__(self, config):
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.attn_dropout = config.attn_dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, key_mask):
        B, T, C = x.shape  # (B, T, C)
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, n_head, T, head_dim)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=key_mask, dropout_p=self.attn_dropout if self.training else 0.0
        )  # (B, n_head, T, head_dim)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.proj(y))


class FeedForward(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.up = nn.Linear(config.d_model, config.d_ff)
        self.down = nn.Linear(config.d_ff, config.d_model)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.down(F.gelu(self.up(x))))  # (B, T, C)


class EncoderBlock(nn.Module):
    """Pre-LN block: trains stably at the high learning rates small from-scratch models need."""

    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.d_model)
        self.attn = SelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.d_model)
        self.ff = FeedForward(config)

    def forward(self, x, key_mask):
        x = x + self.attn(self.ln_1(x), key_mask)
        x = x + self.ff(self.ln_2(x))
        return x  # (B, T, C)


class NgramBag(nn.Module):
    """fastText beside the encoder (Joulin et al. 2017): the mean embedding of a review's tokens and hashed token
    bigrams, then a linear layer to the classes. The encoder reads phrases only through attention learned from
    the labels; this sums a weight per n-gram present, as the bag-of-n-grams models that do well on IMDB do."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.emb = nn.Embedding(config.vocab_size + config.bag_buckets, config.bag_dim)  # tokens, then bigrams
        self.head = nn.Linear(config.bag_dim, config.num_labels)

    def forward(self, input_ids, keep):
        c = self.config
        bigrams = c.vocab_size + hash_ngrams(input_ids, 2, c.bag_buckets, c.pad_token_id)  # (B, T)
        grams = torch.cat([input_ids, bigrams], 1)  # (B, 2T)
        w = torch.cat([keep, keep], 1).unsqueeze(-1).to(self.emb.weight.dtype)  # (B, 2T, 1): real tokens only
        pooled = (self.emb(grams) * w).sum(1) / w.sum(1).clamp(min=1.0)  # (B, bag_dim)
        return self.head(pooled)  # (B, num_labels)


def keep_last_tokens(input_ids, attention_mask, max_len):
    """Crop each row to its first real token (``[CLS]``) and its last ``max_len - 1``, whatever the padding side
    (a row's real tokens are contiguous): ``(input_ids, attention_mask)``, each ``(B, max_len)``.

    The tokenizer truncates the same way (the end of a review carries its verdict); this makes untruncated input,
    e.g. from a plain ``pipeline`` call, work too instead of failing, and lets the encoder read the end of what the
    bag of n-grams reads. Gathers, no sort: it exports to ONNX.
    """
    mask = attention_mask.long()  # (B, T)
    n = mask.sum(1, keepdim=True)  # (B, 1): real tokens
    first = mask.argmax(1, keepdim=True)  # (B, 1): where they start
    rest = first + (n - (max_len - 1)).clamp(min=1) + torch.arange(max_len - 1, device=input_ids.device)  # (B, L-1)
    keep = torch.cat([n > 0, rest < first + n], 1)  # (B, max_len)
    index = torch.where(keep, torch.cat([first, rest], 1), first)  # a dropped slot reads a valid position
    return input_ids.gather(1, index), keep.long()


# Multipliers of the n-gram hash: odd, below 2^20, so that a trigram of ids below 2^15 stays within int64.
NGRAM_HASH = (1_000_003, 917_503)


def hash_ngrams(input_ids, order, buckets, pad_id):
    """Bucket ``(B, T)`` of the n-gram of ``order`` tokens ending at each position (the positions before the
    first token read as ``pad_id``): a polynomial of the token ids modulo ``buckets``, the same in every
    process and in ONNX (not Python's salted ``hash``)."""
    padded = F.pad(input_ids, (order - 1, 0), value=pad_id)  # (B, T + order - 1)
    T = input_ids.shape[1]
    h = padded[:, :T]
    for k in range(1, order):
        h = (h * NGRAM_HASH[k - 1] + padded[:, k:k + T]) % buckets  # kept small: no int64 overflow
    return h  # (B, T)


class TransformerClassifier(PreTrainedModel):
    """Embeddings -> encoder blocks -> mean over non-pad tokens -> 2 logits (+ the logits of a bag of n-grams)."""

    config_class = TransformerConfig
    base_model_prefix = "encoder"
    main_input_name = "input_ids"
    _supports_sdpa = True

    def __init__(self, config):
        super().__init__(config)
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.ngram_emb = nn.Embedding(config.ngram_buckets, config.d_model) if config.ngram_buckets else None
        self.pos_emb = nn.Embedding(config.max_len, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(EncoderBlock(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.num_labels)
        self.bag = NgramBag(config) if config.bag_dim else None
        self.post_init()

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)):
            init.normal_(module.weight, mean=0.0, std=std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            init.zeros_(module.bias)
        if isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        # GPT-2's scaled init of the residual projections keeps the residual stream's variance
        # independent of depth.
        if isinstance(module, (SelfAttention, FeedForward)):
            out = module.proj if isinstance(module, SelfAttention) else module.down
            init.normal_(out.weight, mean=0.0, std=std / math.sqrt(2 * self.config.n_layer))

    def num_params(self, non_embedding=False):
        """Parameter count; ``non_embedding=True`` leaves out the token, position and n-gram tables."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.tok_emb.weight.numel() + self.pos_emb.weight.numel()
            n -= self.ngram_emb.weight.numel() if self.ngram_emb is not None else 0
            n -= self.bag.emb.weight.numel() if self.bag is not None else 0
        return n

    def encode(self, input_ids, attention_mask):
        """Token states ``(B, T, C)`` of ``input_ids`` (at most ``max_len`` tokens) and their mask ``(B, T)``."""
        B, T = input_ids.shape  # (B, T)
        keep = attention_mask.bool()  # (B, T)
        pos = torch.arange(T, device=input_ids.device)
        x = self.tok_emb(input_ids) + self.pos_emb(pos)  # (B, T, C)
        for order in self.config.ngram_orders if self.ngram_emb is not None else ():
            buckets = hash_ngrams(input_ids, order, self.config.ngram_buckets, self.config.pad_token_id)
            x = x + self.ngram_emb(buckets)  # (B, T, C)
        x = self.drop(x)
        key_mask = keep[:, None, None, :]  # (B, 1, 1, T): every query sees only real tokens
        for block in self.blocks:
            x = block(x, key_mask)
        return self.ln_f(x), keep  # (B, T, C), (B, T)

    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        bag_len = self.config.bag_max_len or self.config.max_len
        if input_ids.shape[1] > bag_len:
            input_ids, attention_mask = keep_last_tokens(input_ids, attention_mask, bag_len)
        bag_ids, bag_keep = input_ids, attention_mask.bool()  # (B, T_bag): what the bag reads
        if input_ids.shape[1] > self.config.max_len:
            input_ids, attention_mask = keep_last_tokens(input_ids, attention_mask, self.config.max_len)
        x, keep = self.encode(input_ids, attention_mask)  # (B, T, C), (B, T)
        w = keep.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        pooled = (x * w).sum(1) / w.sum(1).clamp(min=1.0)  # (B, C)
        logits = self.head(pooled)  # (B, num_labels)
        if self.bag is not None:
            logits = logits + self.bag(bag_ids, bag_keep)  # (B, num_labels)
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


AutoConfig.register(TransformerConfig.model_type, TransformerConfig)
AutoModelForSequenceClassification.register(TransformerConfig, TransformerClassifier)
