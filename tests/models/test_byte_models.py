"""HAT and ByteLM as ByteModels: autoregressive in training and generation, cached == full forward,
no leakage across packed documents, save/load, and errors for bad input."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenshift.bytelevel import generate_bytes, score_bytes
from tokenshift.models.base import BOS, is_native, load_pretrained
from tokenshift.models.bytelm import ByteLM, ByteLMConfig
from tokenshift.models.hat import HATConfig, HATLM, backbone_slots, word_layout

TEXT = "Hi, wörld! 日本語です。 camelCase\n\tx = y.z  ".encode() + b"\xff\xe6\x97"


def tiny(kind: str, seed: int = 0, dtype: torch.dtype = torch.float32):
    torch.manual_seed(seed)
    if kind == "hat":
        model = HATLM(HATConfig(d_byte=32, d_word=48, n_enc=1, n_backbone=2, n_dec=1, n_heads_byte=2,
                                n_heads_word=2, max_word_bytes=6, max_bytes=512, init_std=0.2))
    else:
        model = ByteLM(ByteLMConfig(d_model=32, n_layers=2, n_heads=2, max_bytes=512, init_std=0.2))
    return model.to(dtype).eval()


KINDS = ["hat", "bytelm"]


def full_logprobs(model, data: bytes) -> torch.Tensor:
    """(len(data) + 1, 257) next-byte log-probs from one training-style forward pass."""
    with torch.no_grad():
        return torch.log_softmax(model(torch.tensor([[BOS, *data]]))[0].double(), -1)


@pytest.mark.parametrize("kind", KINDS)
def test_next_byte_logprobs_sum_to_one(kind):
    model = tiny(kind)
    for prefix in (b"", b"a", "日".encode()[:2], TEXT):
        lp = model.next_byte_logprobs(prefix)
        assert lp.shape == (257,)
        torch.testing.assert_close(torch.logsumexp(lp, 0), torch.tensor(0.0, dtype=lp.dtype), atol=1e-9, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_training_forward_is_autoregressive(kind):
    """Changing byte t changes no output before t (outputs at index i predict byte i from bytes < i)."""
    model = tiny(kind)
    base = full_logprobs(model, TEXT)
    for t in range(len(TEXT)):
        for new in {0x20, 0x41, 0xE6, TEXT[t] ^ 0x01} - {TEXT[t]}:
            changed = TEXT[:t] + bytes([new]) + TEXT[t + 1 :]
            out = full_logprobs(model, changed)
            torch.testing.assert_close(out[: t + 1], base[: t + 1], atol=1e-5, rtol=0,
                                       msg=f"byte {t} -> {new:#x} changed an earlier output")
            assert not torch.allclose(out[t + 1 :], base[t + 1 :], atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_cached_generation_matches_full_forward(kind):
    """In float64, so that a real difference is not lost in float32 round-off (which reaches 1e-5
    here with two threads: the cached and full paths sum in different orders)."""
    model = tiny(kind, dtype=torch.float64)
    full = full_logprobs(model, TEXT)
    state = model.start(b"")
    for i, byte in enumerate(TEXT):
        torch.testing.assert_close(state.logprobs(), full[i], atol=1e-9, rtol=0, msg=f"position {i}")
        state.advance(byte)
    torch.testing.assert_close(state.logprobs(), full[-1], atol=1e-9, rtol=0)
    chunked = model.start(TEXT[:7])  # a prefill, then a batched extension
    chunked.extend(TEXT[7:20])
    torch.testing.assert_close(chunked.logprobs(), full[20], atol=1e-9, rtol=0)


@given(st.binary(min_size=1, max_size=40), st.sampled_from(KINDS))
@settings(max_examples=25, deadline=None)
def test_cached_matches_full_on_any_bytes(data, kind):
    model = _MODELS[kind]
    full = full_logprobs(model, data)
    state = model.start(data[: len(data) // 2])
    for i in range(len(data) // 2, len(data)):
        torch.testing.assert_close(state.logprobs(), full[i], atol=1e-9, rtol=0)
        state.advance(data[i])
    torch.testing.assert_close(state.logprobs(), full[-1], atol=1e-9, rtol=0)


_MODELS = {kind: tiny(kind, dtype=torch.float64) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_packed_documents_do_not_see_each_other(kind):
    model = tiny(kind)
    a, b = b"first doc, quite long. ", "второй документ".encode()
    with torch.no_grad():
        packed = model(torch.tensor([[BOS, *a, BOS, *b]]))[0]
        alone = model(torch.tensor([[BOS, *b]]))[0]
    torch.testing.assert_close(packed[len(a) + 1 :], alone, atol=1e-5, rtol=0)


def test_hat_layout_uses_words_complete_before_each_byte():
    """'ab cd': words 'ab' (revealed at 1) and ' cd' (at 3); the bytes of ' cd' read word 'ab'."""
    layout = word_layout(torch.tensor([[BOS, *b"ab cd"]]), 32)
    assert layout.start.tolist() == [0, 1, 3]  # BOS, "ab", " cd"
    assert layout.length.tolist() == [1, 2, 3]
    # BOS reads the learned first word; "a", "b" read BOS's word (0); " ", "c", "d" read "ab" (1)
    assert layout.context.tolist() == [[-1, 0, 0, 1, 1, 1]]


def test_hat_rows_are_independent_when_they_share_a_backbone_row():
    """Short rows are placed together in one backbone row (`backbone_slots`); each row's logits are
    still those of that row alone, and every word keeps its own pooled bytes."""
    model = tiny("hat", dtype=torch.float64)
    rows = [[BOS, *b"x" * 39], [BOS, *b" a" * 19, 32], [BOS, *b"yy \xff\xe6 z", *b"q" * 32]]  # 8, 21, 10 words
    ids = torch.tensor(rows)
    layout = word_layout(ids, model.config.max_word_bytes)
    slot, _, n_bins, width = backbone_slots(layout, len(rows))
    assert n_bins < len(rows) and width == int(torch.bincount(layout.row).max())
    with torch.no_grad():
        together = model(ids)
        for r in range(len(rows)):
            torch.testing.assert_close(together[r], model(ids[r : r + 1])[0], atol=1e-10, rtol=0)


def test_hat_backbone_steps_only_at_word_starts():
    model = tiny("hat")
    state = model.start(b"")
    steps = []
    for byte in b"ab cd, ef":
        before = state.table.shape[0]
        state.advance(byte)
        steps.append(state.table.shape[0] - before)
    # a new word ("ab", " cd,", " ef") completes the one before it: the backbone runs at " " and " "
    assert steps == [1, 0, 1, 0, 0, 0, 1, 0, 0]  # the first byte completes the BOS word


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_roundtrip(kind, tmp_path):
    model = tiny(kind)
    model.save_pretrained(tmp_path / "m")
    assert is_native(tmp_path / "m")
    loaded = load_pretrained(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.config == model.config
    torch.testing.assert_close(full_logprobs(loaded, TEXT), full_logprobs(model, TEXT), atol=0, rtol=0)
    other = ByteLM if kind == "hat" else HATLM
    with pytest.raises(ValueError, match="load it with tokenshift.models.load_pretrained"):
        other.from_pretrained(tmp_path / "m")


BLOCK_WEIGHTS = ["norm1", "attn.qkv", "attn.out", "norm2", "mlp.gate", "mlp.up", "mlp.down"]


def test_layer_weights_keep_the_names_saved_models_have():
    """Saved safetensors are read back by these names: renaming one would orphan every checkpoint."""
    def stacks(*sizes):
        return [f"{name}.{i}.{w}.weight" for name, n in sizes for i in range(n) for w in BLOCK_WEIGHTS]

    assert list(tiny("bytelm").state_dict()) == ["embed.weight", *stacks(("blocks", 2)), "norm.weight", "head.weight"]
    hat = [k for k in tiny("hat").state_dict() if k.split(".")[0] in ("encoder", "backbone", "decoder")]
    assert hat == stacks(("encoder", 1), ("backbone", 2), ("decoder", 1))


@pytest.mark.parametrize("kind", KINDS)
def test_generate_and_score_through_bytelevel(kind):
    model = tiny(kind)
    out1 = generate_bytes(model, b"Hi", max_bytes=12, temperature=1.0, seed=3)
    out2 = generate_bytes(model, b"Hi", max_bytes=12, temperature=1.0, seed=3)
    assert out1 == out2 and len(out1) <= 12
    full = full_logprobs(model, TEXT)
    expected = sum(float(full[i, b]) for i, b in enumerate(TEXT)) / torch.log(torch.tensor(2.0)).item()
    assert score_bytes(model, TEXT, progress=False) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_errors(kind):
    model = tiny(kind)
    with pytest.raises(TypeError, match="bytes"):
        model.start("text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="context window"):
        model.start(b"x" * 600)
    state = model.start(b"")
    with pytest.raises(ValueError, match="0..255"):
        state.advance(256)


def test_hat_rows_must_start_with_bos_and_configs_are_checked(tmp_path):
    with pytest.raises(ValueError, match="start with BOS"):
        tiny("hat")(torch.tensor([[65, 66]]))
    with pytest.raises(ValueError, match="divide into heads"):
        HATConfig(d_byte=30, n_heads_byte=4)
    with pytest.raises(ValueError, match="max_word_bytes"):
        HATConfig(max_word_bytes=2)
    with pytest.raises(ValueError, match="n_layers"):
        ByteLMConfig(n_layers=0)
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_pretrained(tmp_path)
