"""Tokenizer audit: compression per language, unreachable and duplicate tokens.

Users pick a tokenizer for a language (before a transplant, or to see what a
model pays per byte) by bytes per token and by how many more tokens a language
costs than English: the "tokenizer unfairness" ratio. Bytes per token is the
comparable unit; tokens per word or per character are not (scripts differ).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .vocab import ByteVocab


@dataclass
class TextStats:
    """Compression of one text under one tokenizer."""

    name: str
    bytes: int
    tokens: int
    bytes_per_token: float
    tokens_per_kb: float  # tokens per 1000 bytes
    ratio_to_en: float | None = None  # tokens_per_kb / English tokens_per_kb


@dataclass
class VocabStats:
    """What a tokenizer's vocabulary holds, seen as bytes."""

    name: str
    family: str
    size: int
    special: int
    lossless: bool
    lossy_reason: str
    dummy_prefix: bool
    duplicate_groups: int
    duplicate_ids: int
    unreachable: int
    unreachable_examples: list[str] = field(default_factory=list)
    texts: list[TextStats] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def text_stats(vocab: ByteVocab, name: str, data: bytes) -> TextStats:
    """Bytes per token of `data` (plain encoding, no BOS/EOS; dummy prefix counts as a byte of overhead)."""
    if not data:
        raise ValueError(f"text {name!r} is empty: there is nothing to measure")
    tokens = len(vocab.encode(data, strict=False))  # counting: a dropped character costs nothing
    return TextStats(name, len(data), tokens, len(data) / tokens, 1000.0 * tokens / len(data))


def audit_vocab(vocab: ByteVocab, texts: dict[str, bytes], reference: str = "en") -> VocabStats:
    """Audit `vocab` on named texts; `ratio_to_en` is filled when `reference` is among them."""
    dups = vocab.duplicates()
    unreachable = vocab.unreachable()
    stats = VocabStats(
        name=vocab.name,
        family=vocab.family,
        size=len(vocab),
        special=len(vocab.special),
        lossless=vocab.lossless,
        lossy_reason=vocab.lossy_reason,
        dummy_prefix=bool(vocab.prefix_bytes),
        duplicate_groups=len(dups),
        duplicate_ids=sum(len(g) for g in dups),
        unreachable=len(unreachable),
        unreachable_examples=[repr(vocab.token_bytes(i)) for i in unreachable[:5]],
    )
    stats.texts = [text_stats(vocab, name, data) for name, data in texts.items()]
    ref = next((t for t in stats.texts if t.name == reference), None)
    if ref is not None:
        for t in stats.texts:
            t.ratio_to_en = t.tokens_per_kb / ref.tokens_per_kb
    return stats
