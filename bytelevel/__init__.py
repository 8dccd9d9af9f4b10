"""tokenshift.bytelevel: the byte view of any tokenizer and exact byte-level probabilities.

Imports none of tokenshift's other packages (docs/ARCHITECTURE.md).
"""
from .exact import EOT, ByteModel, ByteState, TokenByteModel
from .sampling import generate_bytes
from .scoring import bits_per_byte, plain_token_bits, score_bytes, score_texts
from .trie import TokenTrie
from .vocab import ByteVocab

__all__ = ["EOT", "ByteModel", "ByteState", "ByteVocab", "TokenByteModel", "TokenTrie", "bits_per_byte",
           "generate_bytes", "plain_token_bits", "score_bytes", "score_texts"]
