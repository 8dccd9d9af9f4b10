"""tokenshift.models: byte-level language models trained from scratch, each a `ByteModel`.

`HATLM` (hierarchical bytes -> words -> bytes), `FlexiTokensLM` (bytes -> learned
segments -> bytes), `ByteLM` (flat bytes) and the BPE baseline `TokenLM`; training
lives in `lit.py`, `data.py` and `train.py` (imported on demand: they pull in Lightning).
"""
from .base import load_pretrained
from .bytelm import ByteLM, ByteLMConfig
from .flexitokens import FlexiTokensConfig, FlexiTokensLM
from .hat import HATConfig, HATLM
from .splitter import split_words
from .tokenlm import TokenLM, TokenLMConfig

__all__ = ["ByteLM", "ByteLMConfig", "FlexiTokensConfig", "FlexiTokensLM", "HATConfig", "HATLM", "TokenLM",
           "TokenLMConfig", "load_pretrained", "split_words"]
