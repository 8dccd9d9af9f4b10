"""TokenLM: the BPE baseline, a small Hugging Face Llama with a byte-level BPE trained on the same text.

It is judged on the byte scale like the byte models: in training by token
cross-entropy over the bytes its targets spell, and exactly through
`bytelevel.TokenByteModel` (`byte_model()`). Saved as an ordinary Hugging Face
folder (model + tokenizer), so `tokenshift score/generate DIR` and
`AutoModelForCausalLM.from_pretrained(DIR)` read it like any other model.
Packed rows keep documents apart through `position_ids` that restart at each
document: transformers then builds a block-diagonal causal mask (no 2-D
attention mask may be passed for that). Not here: untied/tied choice beyond
the flag, grouped-query attention beyond `n_kv_heads`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from .layers import _hidden, check_sizes, segments_from_bos
from .registry import Registered

FIM_SPECIALS = ("<fim_prefix>", "<fim_suffix>", "<fim_middle>")
DOC = "<|endoftext|>"  # starts and ends every document (GPT-2 convention; bytelevel starts documents after it)


@dataclass
class TokenLMConfig:
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int | None = None  # None: as many as n_heads
    mlp_ratio: float = 8 / 3
    vocab_size: int = 0  # 0: the tokenizer's size (set when the model is built)
    max_positions: int = 4096  # context window in tokens
    rope_theta: float = 10000.0
    tie_embeddings: bool = False
    init_std: float = 0.02

    def __post_init__(self):
        check_sizes(self, ("d_model", "n_layers", "n_heads", "max_positions"))
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")


def train_tokenizer(texts: Iterable[str], vocab_size: int, fim: bool = False) -> Any:
    """A byte-level BPE (GPT-2 pre-tokenizer) trained on `texts`; `<|endoftext|>` (+ FIM tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 256 + 1 + 3 * fim:
        raise ValueError(f"vocab_size {vocab_size} is too small: a byte-level BPE needs 256 bytes + specials")
    specials = [DOC, *(FIM_SPECIALS if fim else ())]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=DOC, eos_token=DOC)


class TokenLM(Registered, nn.Module):
    """An HF `LlamaForCausalLM` plus its tokenizer; `forward` reads packed rows like the byte models."""

    model_type = "tokenlm"
    config_class = TokenLMConfig
    needs_tokenizer = True

    def __init__(self, config: TokenLMConfig, tokenizer: Any, hf_model: Any = None):
        super().__init__()
        from transformers import LlamaConfig, LlamaForCausalLM

        from tokenshift.bytelevel import ByteVocab
        from tokenshift.bytelevel.scoring import document_start_id

        self.tokenizer = tokenizer
        self.vocab = ByteVocab.from_tokenizer(tokenizer)
        self.bos = document_start_id(self.vocab)
        c = config
        if hf_model is None:
            size = c.vocab_size or len(self.vocab)
            if size < len(self.vocab):
                raise ValueError(f"vocab_size {size} is smaller than the tokenizer's {len(self.vocab)} ids")
            hf_config = LlamaConfig(
                vocab_size=size, hidden_size=c.d_model, intermediate_size=_hidden(c.d_model, c.mlp_ratio),
                num_hidden_layers=c.n_layers, num_attention_heads=c.n_heads,
                num_key_value_heads=c.n_kv_heads or c.n_heads, max_position_embeddings=c.max_positions,
                rope_theta=c.rope_theta, tie_word_embeddings=c.tie_embeddings, initializer_range=c.init_std,
                bos_token_id=self.bos, eos_token_id=self.bos, attn_implementation="sdpa",
            )
            hf_model = LlamaForCausalLM(hf_config)
        self.config = c
        self.hf = hf_model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) packed rows (documents start with `<|endoftext|>`) -> logits (B, T, vocab)."""
        _, positions = segments_from_bos(ids, self.bos)
        return self.hf(input_ids=ids, position_ids=positions, use_cache=False).logits  # no cache: packed mask

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def target_bytes(self) -> torch.Tensor:
        """(vocab,) bytes each target id spells (0 for specials): bits per byte = bits / their sum."""
        size = self.hf.get_output_embeddings().weight.shape[0]
        out = torch.zeros(size)
        out[: len(self.vocab)] = torch.tensor([len(p or b"") for p in self.vocab.pieces], dtype=torch.float)
        return out

    def byte_model(self) -> Any:
        """The exact `ByteModel` view (bits per byte on the same scale as HAT and ByteLM)."""
        from tokenshift.bytelevel import TokenByteModel

        return TokenByteModel(self.hf.eval(), self.tokenizer)

    def save_pretrained(self, path: str | Path) -> Path:
        path = Path(path)
        self.hf.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> "TokenLM":
        from transformers import AutoTokenizer, LlamaForCausalLM

        hf = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32)
        hc = hf.config
        config = TokenLMConfig(d_model=hc.hidden_size, n_layers=hc.num_hidden_layers, n_heads=hc.num_attention_heads,
                               n_kv_heads=hc.num_key_value_heads, vocab_size=hc.vocab_size,
                               max_positions=hc.max_position_embeddings, tie_embeddings=hc.tie_word_embeddings)
        return cls(config, AutoTokenizer.from_pretrained(path), hf).to(device).eval()
