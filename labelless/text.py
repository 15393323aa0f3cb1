"""Text to tensors: the WordPiece tokenizer, encoding, length-bucketed batches and padding."""

import json
import re

import numpy as np
import torch

from .runtime import progress

SPECIAL_TOKENS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]",
                  "sep_token": "[SEP]", "mask_token": "[MASK]"}
N_SPECIAL = len(SPECIAL_TOKENS)  # their ids are 0 .. N_SPECIAL - 1


def train_tokenizer(texts, vocab_size, max_len):
    """A lower-cased WordPiece tokenizer trained on ``texts`` (training texts only; a sequence, read twice).

    The normalizer turns IMDB's ``<br />`` tags into spaces, so training, evaluation and a
    ``pipeline`` all see the same text. Long reviews keep their end (``truncation_side="left"``):
    reviews tend to close with the verdict.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    normalizer, pre_tokenizer = make_normalizer(), pre_tokenizers.BertPreTokenizer()
    specials = list(SPECIAL_TOKENS.values())
    # The trainer numbers each "##" continuation piece when it first meets it while walking a hash
    # map, and breaks ties between equally frequent merges by those numbers, so the same texts gave
    # another vocabulary from run to run (huggingface/tokenizers#1794). Handing it every continuation
    # piece up front, in sorted order, fixes their numbers and so the whole training.
    chars = set().union(*(normalizer.normalize_str(t) for t in texts))
    continuations = sorted("##" + c for c in chars if _stays_in_word(pre_tokenizer, c))
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials + continuations,
                                        show_progress=False)
    tok = Tokenizer(models.WordPiece(unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))

    # A fresh tokenizer on the learned vocabulary, numbered in a fixed order, where only the real
    # special tokens are special (the continuation pieces are ordinary tokens).
    rest = sorted(set(tok.get_vocab()) - set(specials), key=lambda t: (len(t), t))
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(specials + rest)}, unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.normalizer, tok.pre_tokenizer, tok.decoder = normalizer, pre_tokenizer, decoders.WordPiece()
    tok.add_special_tokens(specials)
    cls, sep = SPECIAL_TOKENS["cls_token"], SPECIAL_TOKENS["sep_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, model_max_length=max_len, truncation_side="left", padding_side="right",
        model_input_names=["input_ids", "attention_mask"], **SPECIAL_TOKENS)


BR_TAG = r"<br\s*/?>"
# What BERT's pre-tokenizer keeps of lower-case ASCII: runs of letters and digits, each punctuation mark alone.
ASCII_PIECES = r"[a-z0-9]+|[!-/:-@\[-`{-~]"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # BERT's normalizer deletes these


def make_normalizer():
    """IMDB's ``<br />`` tags to spaces, then BERT's normalizer: lower case, accents stripped, control
    characters dropped, CJK characters split."""
    from tokenizers import Regex, normalizers

    return normalizers.Sequence([normalizers.Replace(Regex(BR_TAG), " "),
                                 normalizers.BertNormalizer(lowercase=True, strip_accents=True)])


def is_plain_ascii(text):
    """Whether ``AsciiWordPiece`` gives ``text`` the saved tokenizer's ids: ASCII without control characters."""
    return text.isascii() and not _CONTROL.search(text)


class AsciiWordPiece:
    """The ids a ``train_tokenizer`` tokenizer gives plain ASCII (``is_plain_ascii``), in Python and faster:
    on such text BERT's normalizer only turns tags to spaces and lower-cases, its pre-tokenizer only splits
    as ``ASCII_PIECES`` does, and a word's WordPiece ids depend on the word alone, so each is worked out once
    and kept. ``of`` gives None for a tokenizer with other steps."""

    MAX_WORDS = 1 << 20  # words kept; a long-running server starts over beyond this

    def __init__(self, vocab, max_len, unk="[UNK]", prefix="##", max_chars=100, cls="[CLS]", sep="[SEP]"):
        self.vocab, self.keep, self.prefix, self.max_chars = vocab, max_len - 2, prefix, max_chars
        self.unk, self.cls, self.sep = (vocab[unk],), vocab[cls], vocab[sep]
        self.whole_words = {w: (i,) for w, i in vocab.items() if not w.startswith(prefix)}
        self.words = dict(self.whole_words)
        self.pieces_re, self.tag_re = re.compile(ASCII_PIECES), re.compile(BR_TAG)

    @classmethod
    def of(cls, tokenizer, max_len):
        """For a ``tokenizers.Tokenizer`` made by ``train_tokenizer`` that keeps its last ``max_len`` tokens;
        None if its steps differ or its ids on a probe text differ from this class's."""
        from tokenizers import Tokenizer, models, pre_tokenizers

        ours = Tokenizer(models.WordPiece({"[UNK]": 0}, unk_token="[UNK]"))
        ours.normalizer, ours.pre_tokenizer = make_normalizer(), pre_tokenizers.BertPreTokenizer()
        theirs, ours = json.loads(tokenizer.to_str()), json.loads(ours.to_str())
        if any(theirs[step] != ours[step] for step in ("normalizer", "pre_tokenizer")) or \
                theirs["model"]["type"] != "WordPiece" or not {"[CLS]", "[SEP]", "[UNK]"} <= set(tokenizer.get_vocab()):
            return None
        model = theirs["model"]
        fast = cls(tokenizer.get_vocab(), max_len, model["unk_token"], model["continuing_subword_prefix"],
                   model["max_input_chars_per_word"])
        saved = Tokenizer.from_str(tokenizer.to_str())
        saved.enable_truncation(max_len, direction="left")
        probe = "A probe<br />of 12 WORDS, 3.5 stars... unbelievably_long-ish!? " * 2
        return fast if fast.encode(probe)[0].tolist() == saved.encode(probe).ids else None

    def encode(self, text):
        """``(ids, dropped)``: the ids of ``text`` with ``[CLS]`` and ``[SEP]``, its last ``max_len``, and how
        many of its tokens that dropped."""
        words, get = self.pieces_re.findall(self.tag_re.sub(" ", text).lower()), self.words.get
        ids = [i for w in words for i in (get(w) or self._new(w))]
        dropped = max(0, len(ids) - self.keep)
        return np.array([self.cls, *ids[dropped:], self.sep], dtype=np.int64), dropped

    def _new(self, word):
        """WordPiece's ids of ``word``: the longest piece of the vocabulary at each step; ``[UNK]`` if one is
        missing."""
        if len(self.words) > self.MAX_WORDS:
            self.words = dict(self.whole_words)
        ids, start = [], 0
        while start < len(word) <= self.max_chars:
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                if piece in self.vocab:
                    ids.append(self.vocab[piece])
                    start = end
                    break
            else:
                break
        self.words[word] = ids = tuple(ids) if start == len(word) and ids else self.unk
        return ids


def _stays_in_word(pre_tokenizer, char):
    """Whether ``char`` can continue a word (punctuation splits off, whitespace is dropped)."""
    return [word for word, _ in pre_tokenizer.pre_tokenize_str("a" + char)] == ["a" + char]


def encode(tokenizer, texts, progress_bar=True, chunk=2000):
    """Token ids of each text (truncated to the tokenizer's max length) as int32 arrays."""
    ids = []
    for start in progress(range(0, len(texts), chunk), progress_bar, desc="tokenize", leave=False):
        batch = tokenizer(tails(tokenizer, texts[start:start + chunk]), truncation=True)["input_ids"]
        ids.extend(np.asarray(x, dtype=np.int32) for x in batch)
    return ids


# Characters kept per token of the tokenizer's max length before a text is cut (IMDB's longest review,
# ~14k characters, is never cut at 512 tokens), and the tokens a cut may disturb at its start.
CHARS_PER_TOKEN, CUT_MARGIN = 32, 8


def tails(tokenizer, texts):
    """``texts`` as strings, each cut to a tail that the tokenizer (which keeps a review's last
    ``model_max_length`` tokens) turns into the very same ids as the whole text: tokenizing a 1 MB
    review costs about 170 MB, and all but its end is thrown away. A long text is cut at a space
    ``CHARS_PER_TOKEN`` characters per token from its end, and the cut is taken only when the tail
    still yields ``CUT_MARGIN`` tokens more than are kept (else twice as long a tail is tried)."""
    keep = tokenizer.model_max_length
    out = []
    for text in texts:
        limit = CHARS_PER_TOKEN * keep
        while len(text) > limit:
            tail = cut_at_space(text, limit)
            if tail is text:
                break
            if len(tokenizer(tail, add_special_tokens=False, verbose=False)["input_ids"]) >= keep + CUT_MARGIN:
                text = tail
                break
            limit *= 2
        out.append(text)
    return out


def cut_at_space(text, limit):
    """The end of ``text`` from the first space that leaves at most ``limit`` characters after it
    (``text`` itself when it is that short, or has no such space)."""
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, len(text) - limit)
    return text if cut < 0 else text[cut + 1:]


def length_batches(lengths, batch_size, rng=None):
    """Index batches of similar lengths, so that short reviews are not padded to the longest.

    Without ``rng``: sorted by length (inference). With ``rng``: shuffled, sorted by length within
    windows of 50 batches, then the batch order shuffled (training keeps its randomness).
    """
    lengths = np.asarray(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    order = rng.permutation(len(lengths))
    window = 50 * batch_size
    batches = []
    for start in range(0, len(order), window):
        chunk = order[start:start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(ids, pad_id, device="cpu"):
    """Pad a list of id arrays to their longest: ``(input_ids, attention_mask)``, each ``(B, T)``."""
    T = max(len(x) for x in ids)
    input_ids = np.full((len(ids), T), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), T), dtype=np.int64)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = x
        mask[row, : len(x)] = 1
    return _to(input_ids, device), _to(mask, device)


def _to(array, device):
    """A numpy array as a tensor on ``device``; to a GPU through pinned memory, without waiting for the copy."""
    tensor = torch.from_numpy(array)
    if torch.device(device).type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor
