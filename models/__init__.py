"""tokenshift.models: byte-level language models trained from scratch, each a `ByteModel`.

`HATLM` (hierarchical bytes -> words -> bytes), `FlexiTokensLM` (bytes -> learned
segments -> bytes), `ByteLM` (flat bytes) and the BPE baseline `TokenLM`; training
lives in `lit.py`, `data.py` and `train.py` (imported on demand: they pull in Lightning).
"""
from .base import load_pretrained

# Importing the model modules registers their classes (registry.py) in this order, which LitLM's
# config Union keeps: LightningCLI tries its types in turn for a config given without class_path.
from .hat import HATConfig, HATLM
from .flexitokens import FlexiTokensConfig, FlexiTokensLM
from .bytelm import ByteLM, ByteLMConfig
from .tokenlm import TokenLM, TokenLMConfig
from .splitter import split_words

__all__ = ["ByteLM", "ByteLMConfig", "FlexiTokensConfig", "FlexiTokensLM", "HATConfig", "HATLM", "TokenLM",
           "TokenLMConfig", "load_pretrained", "split_words"]
