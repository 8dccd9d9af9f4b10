"""Supertokens: a tokenizer whose tokens may span several words ("of the", " in order to").

SuperBPE-style two-stage BPE (Liu et al. 2025): stage 1 is ordinary byte-level
BPE with whitespace pre-tokenization (or an existing `base_tokenizer`); stage 2
goes on merging **without** the whitespace split, so frequent word sequences
become single tokens. Lines stay apart (no token spans a newline).

How stage 2 runs: every stage-1 token becomes one private-use character, the
corpus is rewritten in those characters, and the `tokenizers` BPE trainer
(Rust, fast) learns merges over them; each learned merge is then spelled back
in bytes and appended, in order, after the stage-1 merges. The result is a
plain byte-level BPE `tokenizer.json` (ByteLevel without its word-splitting
regex, split on newlines), loadable by `transformers` and by `ByteVocab`.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from tokenshift.bytelevel import ByteVocab
from tokenshift.bytelevel.readers import bytes_to_unicode

PRIVATE = 0xF0000  # Supplementary Private Use Area-A: 65,534 code points, one per stage-1 token


def _stage1(texts: list[str], vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return tok


def _bpe_spec(tok: Any) -> dict:
    """The BPE model of a `tokenizers.Tokenizer` (or an HF fast tokenizer) as JSON."""
    backend = getattr(tok, "backend_tokenizer", tok)
    spec = json.loads(backend.to_str())
    if spec["model"]["type"] != "BPE" or not any(
            "ByteLevel" in json.dumps(spec.get(k)) for k in ("pre_tokenizer", "decoder")):
        raise ValueError("learn_supertokens extends a byte-level BPE tokenizer (GPT-2 style); got "
                         f"{spec['model']['type']}")
    return spec


def learn_supertokens(texts: Iterable[str | bytes], base_tokenizer: Any = None, vocab_size: int = 32000,
                      stage1_size: int | None = None, max_words: int = 4) -> Any:
    """A `PreTrainedTokenizerFast` with `vocab_size` tokens, the last ones multi-word.

    `base_tokenizer`: a byte-level BPE to extend (its vocabulary is stage 1);
    without it, stage 1 is trained on `texts` up to `stage1_size` (default 80%
    of `vocab_size`, SuperBPE's transition point is a choice of this kind).
    `max_words` bounds how many words a supertoken may join.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [t.decode("utf-8") if isinstance(t, (bytes, bytearray)) else t for t in texts]
    if not texts or not any(texts):
        raise ValueError("learn_supertokens: no text to learn from")
    base = base_tokenizer if base_tokenizer is not None else _stage1(texts, stage1_size or int(vocab_size * 0.8))
    spec = _bpe_spec(base)
    vocab: dict[str, int] = dict(spec["model"]["vocab"])
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in spec["model"]["merges"]]
    if len(vocab) >= vocab_size:
        raise ValueError(f"vocab_size {vocab_size} leaves no room for supertokens after {len(vocab)} base tokens")
    if len(vocab) > 65534:
        raise ValueError("stage 1 has more tokens than private-use characters (65,534)")
    to_char = {i: chr(PRIVATE + i) for i in vocab.values()}
    by_id = {i: s for s, i in vocab.items()}
    encoder = Tokenizer.from_str(json.dumps(spec))
    lines = [line for text in texts for line in text.split("\n") if line]
    coded = ["".join(to_char[i] for i in enc.ids) for enc in encoder.encode_batch(lines, add_special_tokens=False)]

    # stage 2: BPE over stage-1 tokens, whitespace no longer a boundary
    stage2 = Tokenizer(models.BPE())
    stage2.pre_tokenizer = pre_tokenizers.Split("\n", behavior="removed")
    alphabet = sorted(set("".join(coded)))
    room = vocab_size - len(vocab)  # ask for more merges than room: some are skipped below
    trainer = trainers.BpeTrainer(vocab_size=len(alphabet) + 2 * room + 64, show_progress=False,
                                  initial_alphabet=alphabet, limit_alphabet=len(alphabet))
    stage2.train_from_iterator(coded, trainer)
    learned = json.loads(stage2.to_str())["model"]["merges"]
    space = bytes_to_unicode()[ord(" ")]

    def spell(chars: str) -> str:
        return "".join(by_id[ord(c) - PRIVATE] for c in chars)

    for merge in learned:
        left, right = merge.split(" ") if isinstance(merge, str) else merge
        left, right = spell(left), spell(right)
        token = left + right
        if token in vocab or left not in vocab or right not in vocab or token.strip(space).count(space) >= max_words:
            continue  # an earlier merge was skipped, or it joins too many words
        merges.append((left, right))
        vocab[token] = len(vocab)
        if len(vocab) >= vocab_size:
            break

    spec["model"]["vocab"] = vocab
    spec["model"]["merges"] = [list(m) for m in merges]
    spec["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"String": "\n"}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    tok = Tokenizer.from_str(json.dumps(spec))
    eot = "<|endoftext|>" if "<|endoftext|>" in vocab else None
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=eot, eos_token=eot)


def bytes_per_token(tokenizer: Any, texts: Iterable[bytes]) -> float:
    """Compression of `texts` (bytes per token, higher = fewer tokens)."""
    vocab = ByteVocab.from_tokenizer(tokenizer)
    texts = list(texts)
    return sum(len(t) for t in texts) / max(1, sum(len(vocab.encode(t, strict=False)) for t in texts))
