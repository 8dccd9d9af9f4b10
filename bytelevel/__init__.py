"""tokenshift.bytelevel: the byte view of any tokenizer and exact byte-level probabilities.

Imports none of tokenshift's other packages (see DESIGN.md).
"""
from .trie import TokenTrie
from .vocab import ByteVocab

__all__ = ["ByteVocab", "TokenTrie"]
