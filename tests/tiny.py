"""Tiny tokenizers and models built on the spot (no hub): shared by the tests."""
from __future__ import annotations

import functools

import torch

TRAIN_TEXT = (
    "ab ba aab abba a b  ab\nba ab ab. b'a aa bb ab ab ba é ab é é 1234 12 ab ab\n" * 20
)


FIM_SPECIALS = ("<|endoftext|>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>")


@functools.lru_cache(maxsize=None)
def byte_bpe(vocab_size: int = 300, specials: tuple[str, ...] = ("<|endoftext|>",), text: str = "") -> "object":
    """Byte-level BPE with GPT-2's pre-tokenizer, trained on a tiny text (FIM_SPECIALS for FIM tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(specials), initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([text or TRAIN_TEXT], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")


@functools.lru_cache(maxsize=None)
def sp_bpe(tmp_dir: str, model_type: str = "bpe", vocab_size: int = 40) -> "object":
    """SentencePiece (BPE or Unigram) with byte fallback and the dummy prefix."""
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TRAIN_TEXT.splitlines()), model_writer=model, vocab_size=vocab_size,
        model_type=model_type, byte_fallback=True, character_coverage=1.0, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=True, split_digits=False, minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    return sp


FAMILIES = ("byte_bpe", "sp_bpe", "sp_unigram")


def family_tokenizer(family: str):
    """A tiny tokenizer of each family the exact tests cover: byte-level BPE, SentencePiece BPE and Unigram."""
    if family == "byte_bpe":
        return byte_bpe()
    return sp_bpe("", "bpe" if family == "sp_bpe" else "unigram", 270)


def tiny_llama(vocab_size: int, seed: int = 0, dtype=torch.float64):
    """A 2-layer random Llama: cheap, deterministic, and a real HF causal LM with a KV cache."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).to(dtype).eval()
    with torch.no_grad():  # sharpen the random logits so probabilities are far from uniform
        model.lm_head.weight.mul_(20.0)
    return model
