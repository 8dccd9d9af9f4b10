"""What every native byte model here shares: its vocabulary, the ByteModel entry point, save/load.

Inputs are 256 bytes plus id 256, the start of a document (BOS); outputs are
256 bytes plus slot 256, end of text (`bytelevel.exact.EOT`). Packed training
rows are documents each starting with BOS, so the same id marks "a document
ends here" as a target and "a document starts here" as an input.

Saved models are a folder: `config.json` (format version, model type, the
config dataclass) and `model.safetensors`. `load_pretrained(dir)` reads any of
them; a folder without our `config.json` is a Hugging Face model instead.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tokenshift.bytelevel.exact import EOT

from . import registry

BOS = 256  # input id that starts a document
VOCAB = 257  # 256 bytes + BOS (inputs) / + end of text (outputs)
FORMAT = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
assert EOT == BOS == 256


class PretrainedByteLM(registry.Registered, nn.Module):
    """Base of `HATLM`, `ByteLM` and `FlexiTokensLM`: the `ByteModel` protocol and safetensors save/load.

    Subclasses set `model_type`, `config_class` (which registers them, `registry.py`)
    and implement `start(prefix)`.
    """

    def __init__(self, config: Any):
        super().__init__()
        self.config = config

    def start(self, prefix: bytes = b""):  # pragma: no cover - each model has its own state
        raise NotImplementedError

    def next_byte_logprobs(self, prefix: bytes) -> torch.Tensor:
        """(257,) log-probs of the next byte (or end of text, slot 256) after `prefix`."""
        return self.start(prefix).logprobs()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save_pretrained(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "tokenshift_model": self.model_type, "config": asdict(self.config)}
        (path / CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n")
        save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}, str(path / WEIGHTS_NAME))
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> "PretrainedByteLM":
        from safetensors.torch import load_file

        meta = read_meta(path)
        if meta["tokenshift_model"] != cls.model_type:
            raise ValueError(f"{path} holds a {meta['tokenshift_model']!r} model, not {cls.model_type!r}; "
                             f"load it with tokenshift.models.load_pretrained")
        model = cls(cls.config_class(**meta["config"]))
        model.load_state_dict(load_file(str(Path(path) / WEIGHTS_NAME)))
        return model.to(device).eval()


class CachedByteState:
    """The `ByteState` protocol shared by the byte models here: they differ only in their caches.

    A subclass sets its caches up in `_setup` and implements `_step`, which runs
    the new ids through the model; `_feed` checks the context window around it
    and keeps the last log-probs. The prompt is fed after the document start (BOS).
    """

    def __init__(self, model: Any, prefix: bytes = b""):
        if not isinstance(prefix, (bytes, bytearray)):
            raise TypeError(f"prefix must be bytes, got {type(prefix).__name__}; use text.encode('utf-8')")
        if len(prefix) + 1 > model.config.max_bytes:
            raise ValueError(f"the prompt is {len(prefix)} bytes but the model's context window is "
                             f"{model.config.max_bytes - 1}; shorten the prompt")
        self.model = model
        self.n = 0  # ids fed (BOS included)
        self._logprobs: torch.Tensor | None = None
        self._setup()
        self._feed([BOS, *prefix])

    def _setup(self) -> None:
        raise NotImplementedError

    def _step(self, ids: list[int], x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """(1, T, 257) logits after each new id; x (1, T) holds `ids`, positions (1, T) count on from `n`."""
        raise NotImplementedError

    @torch.no_grad()
    def _feed(self, ids: list[int]) -> None:
        model = self.model
        if self.n + len(ids) > model.config.max_bytes:
            raise ValueError(f"the text reached the model's context window of {model.config.max_bytes - 1} bytes")
        x = torch.tensor([ids], device=model.device)
        positions = torch.arange(self.n, self.n + len(ids), device=model.device)[None]
        logits = self._step(ids, x, positions)
        self._logprobs = F.log_softmax(logits[0, -1].double(), -1)
        self.n += len(ids)

    def logprobs(self) -> torch.Tensor:
        """(257,) float64 log-probs of the next byte; slot 256 is end of text."""
        return self._logprobs

    def advance(self, byte: int) -> None:
        if not 0 <= int(byte) < 256:
            raise ValueError(f"advance: a byte is 0..255, got {byte}; end of text (256) ends the document")
        self._feed([int(byte)])

    def extend(self, data: bytes) -> None:
        """Advance over many bytes in one batched step (same result as advancing one at a time)."""
        if data:
            self._feed(list(data))


def read_meta(path: str | Path) -> dict:
    """The checked `config.json` of a saved native model."""
    file = Path(path) / CONFIG_NAME
    if not file.is_file():
        raise FileNotFoundError(f"{path} has no {CONFIG_NAME}; save the model with save_pretrained(dir)")
    meta = json.loads(file.read_text())
    if "tokenshift_model" not in meta:
        raise ValueError(f"{file} is not a tokenshift byte model (a Hugging Face model? load it with transformers)")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{file} has format {meta.get('format')!r}; this version reads format {FORMAT}")
    return meta


def is_native(path: str | Path) -> bool:
    """True for a folder written by `PretrainedByteLM.save_pretrained`."""
    file = Path(path) / CONFIG_NAME
    try:
        return file.is_file() and "tokenshift_model" in json.loads(file.read_text())
    except (OSError, ValueError):
        return False


def load_pretrained(path: str | Path, device: str | torch.device = "cpu") -> PretrainedByteLM:
    """Any saved native model (HAT, ByteLM, FLEXITOKENS), by the type its config names.

    The registry is full here: importing this module ran `tokenshift.models/__init__.py` first.
    """
    kinds = native_types()
    kind = read_meta(path)["tokenshift_model"]
    if kind not in kinds:
        raise ValueError(f"unknown model type {kind!r} in {path}; known: {', '.join(kinds)}")
    return kinds[kind].from_pretrained(path, device)


def native_types() -> dict[str, type[PretrainedByteLM]]:
    """model_type -> class of the registered models saved in our own format (TokenLM saves an HF folder)."""
    return {kind: cls for kind, cls in registry.MODELS.items() if issubclass(cls, PretrainedByteLM)}
