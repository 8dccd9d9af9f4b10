"""ZeTT's tokenizer sampler: a fresh UnigramLM tokenizer from the text of recent batches.

A hypernetwork trained on one tokenizer learns that tokenizer; ZeTT trains on
a new one every step, made from the batch's own text (`rust_utils/src/lib.rs`
and `zett/collator.py` in `bminixhofer/zett`):

1. pre-tokenize each text (a prefix space, GPT-2's split regex, the byte-level
   alphabet) and score every substring of a pre-token, up to `max_piece_bytes`
   bytes, starting at every `stride`-th character: frequency x length in bytes;
2. keep those scores for the last `queue_size` batches and sum them;
3. normalise to probabilities, add Gaussian noise whose std is itself drawn
   log-normally (mean `noise_mean`, sigma `noise_sigma`) so that every step's
   vocabulary differs, take the log;
4. the vocabulary: the 256 byte-level characters (at the smallest log-prob, so
   every text is spellable), runs of whitespace (log-prob 0, as the reference),
   then the best substrings until `vocab_size` pieces; a UnigramLM over them.

Differences, on purpose: the special tokens come first (ids 0..k-1) instead of
at the base tokenizer's ids; substring starts are character starts (the
reference's offsets drift after a multi-byte first character); the RNG is
seeded, so a run is reproducible. The vocab size is fixed (`vocab_size`; the
reference draws it from N(mean, std), std 0 in its configs).
"""
from __future__ import annotations

from collections import Counter, deque
from typing import Any, Iterable

import numpy as np

from tokenshift.bytelevel.vocab import bytes_to_unicode

SPLIT_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
WHITESPACE = ("Ġ", "Ċ", "ĉ")  # space, newline, tab in the byte-level alphabet


def pre_tokenizer() -> Any:
    """GPT-2's split regex, then the byte-level alphabet (no prefix space, no second regex)."""
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_REGEX), "removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


def substring_scores(texts: Iterable[str], max_piece_bytes: int = 16, stride: int = 4) -> Counter:
    """Frequency x byte length of pre-token substrings, keyed by byte-level strings.

    Example (stride 1): "ab" -> pre-token "Ġab": "Ġ" 1, "Ġa" 2, "Ġab" 3, "a" 1, "ab" 2, "b" 1.
    Substrings are shorter than `max_piece_bytes` (the reference's `1..max_length`).
    """
    pretok = pre_tokenizer()
    scores: Counter = Counter()
    for text in texts:
        text = " " + text
        for _, (lo, hi) in pretok.pre_tokenize_str(text):
            raw = text[lo:hi].encode("utf-8")
            chars = "".join(bytes_to_unicode()[b] for b in raw)
            starts, at = [], 0
            for ch in text[lo:hi]:
                starts.append(at)
                at += len(ch.encode("utf-8"))
            for s in starts[::stride]:
                for k in range(1, min(max_piece_bytes, len(chars) - s + 1)):
                    scores[chars[s : s + k]] += k
    return scores


def unigram_pieces(scores: Counter, vocab_size: int, noise_std: float, rng: np.random.Generator,
                   max_piece_bytes: int = 16) -> list[tuple[str, float]]:
    """(piece, log-prob) for a UnigramLM: byte alphabet, whitespace runs, then the best noised substrings."""
    alphabet = [bytes_to_unicode()[b] for b in range(256)]
    runs = [c2 + c1 * i for c1 in WHITESPACE for i in range(1, max_piece_bytes) for c2 in WHITESPACE]
    if vocab_size < len(alphabet) + len(runs):
        raise ValueError(f"vocab_size {vocab_size} is too small: a sampled tokenizer holds the 256 bytes and "
                         f"{len(runs)} whitespace runs before any substring; use >= {len(alphabet) + len(runs) + 1}")
    keys = sorted(scores)
    values = np.array([scores[k] for k in keys], dtype=np.float64)
    total = values.sum() if len(values) else 1.0
    min_logp = float(np.log(values.min() / total)) if len(values) else -20.0
    noised = values / total + (rng.normal(0.0, noise_std, len(values)) if noise_std > 0 else 0.0)
    logp = np.where(noised > 0, np.log(np.maximum(noised, 1e-300)), -1e5)
    out = [(c, min_logp) for c in alphabet]
    seen = set(alphabet)
    for run in runs:  # the reference adds them with log-prob 0: whitespace runs are always one token
        if run not in seen:
            out.append((run, 0.0))
            seen.add(run)
    for i in np.lexsort((np.arange(len(keys)), -logp)):  # best first, ties by piece order
        if len(out) >= vocab_size:
            break
        piece = keys[i]
        if len(piece) == 1 or sum(c in WHITESPACE for c in piece) >= 2 or piece in seen:
            continue
        out.append((piece, float(logp[i])))
        seen.add(piece)
    return out


def unigram_tokenizer(pieces: list[tuple[str, float]], specials: tuple[str, ...] = ("<|endoftext|>",),
                      bos: str | None = None, eos: str | None = None) -> Any:
    """A byte-level UnigramLM as a `PreTrainedTokenizerFast`; specials take ids 0..k-1."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    low = min(score for _, score in pieces) if pieces else 0.0
    vocab = [(s, low) for s in specials] + [(p, sc) for p, sc in pieces if p not in specials]
    tok = Tokenizer(models.Unigram(vocab, unk_id=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(specials))
    first = specials[0] if specials else None
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos or first, eos_token=eos or first,
                                   clean_up_tokenization_spaces=False)


class TokenizerSampler:
    """Keeps substring scores of the last `queue_size` batches; `sample(texts)` returns a new tokenizer.

    Defaults are the reference's (`vocab_size` 32768, pieces < 16 bytes,
    stride 4, noise mean 1e-5 and sigma 4); on a CPU use a smaller vocab_size
    (the sampled vocabulary's output matrix dominates memory, see train.py).
    """

    def __init__(self, vocab_size: int = 32768, queue_size: int = 16, max_piece_bytes: int = 16, stride: int = 4,
                 noise_mean: float = 1e-5, noise_sigma: float = 4.0, specials: tuple[str, ...] = ("<|endoftext|>",),
                 seed: int = 0):
        if queue_size < 1 or stride < 1 or max_piece_bytes < 2:
            raise ValueError(f"queue_size and stride must be >= 1 and max_piece_bytes >= 2, got "
                             f"{queue_size}, {stride}, {max_piece_bytes}")
        self.vocab_size, self.queue_size, self.max_piece_bytes, self.stride = vocab_size, queue_size, max_piece_bytes, stride
        self.noise_mean, self.noise_sigma, self.specials = noise_mean, noise_sigma, tuple(specials)
        self.rng = np.random.default_rng(seed)
        self._queue: deque[Counter] = deque()
        self._total: Counter = Counter()

    @property
    def queue_length(self) -> int:
        return len(self._queue)

    def push(self, texts: list[str]) -> None:
        """Add a batch's substring scores; the oldest batch leaves once the queue is full."""
        if not texts or not any(texts):
            raise ValueError("push: no text in the batch; the sampler builds its vocabulary from batch text")
        scores = substring_scores(texts, self.max_piece_bytes, self.stride)
        self._queue.append(scores)
        self._total.update(scores)
        while len(self._queue) > self.queue_size:
            self._total.subtract(self._queue.popleft())
            self._total = +self._total  # drop zero counts

    def sample(self, texts: list[str] | None = None) -> Any:
        """Push `texts` (if given), then draw a tokenizer from the queue's scores."""
        if texts is not None:
            self.push(texts)
        if not self._queue:
            raise ValueError("sample: the queue is empty; pass texts or push() some batches first")
        noise = float(self.rng.lognormal(np.log(self.noise_mean), self.noise_sigma)) if self.noise_mean > 0 else 0.0
        pieces = unigram_pieces(self._total, self.vocab_size - len(self.specials), noise, self.rng,
                                self.max_piece_bytes)
        return unigram_tokenizer(pieces, self.specials)
