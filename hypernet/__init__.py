"""tokenshift.hypernet: ZeTT hypernetworks that predict a base LM's embeddings for any tokenizer.

`HyperNetwork` (model.py), the UnigramLM tokenizer sampler (sampling.py), and
Lightning training (train.py: `train_hypernet`, `tokenshift train-hypernet`; its
text windows: data.py; imported lazily, they need `lightning`).
"""
from .model import HyperNetConfig, HyperNetwork
from .sampling import TokenizerSampler

__all__ = ["HyperNetConfig", "HyperNetwork", "TokenizerSampler", "train_hypernet"]


def __getattr__(name: str):
    if name == "train_hypernet":
        from .train import train_hypernet

        return train_hypernet
    raise AttributeError(f"module 'tokenshift.hypernet' has no attribute {name!r}")
