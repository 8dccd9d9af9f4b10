"""Bad input is refused before any model loads: exit 2, one line naming the option, nothing written.

A table of bad invocations of every subcommand (each option that takes a number, a path or a
choice) runs `tokenshift.cli.main` in-process with the model loaders replaced by a spy that
fails the test if called; the working folder and the temporary tree must be unchanged after.
The library checks the same values (`generate_bytes`, `plain_token_bits`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tokenshift.cli import main

TEXT = "The cat sat on the mat. Der Hund lief über die Straße.\n" * 4


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, Path]:
    """A tiny HF model folder with its tokenizer, a tokenizer folder, and text files good and bad."""
    from tiny import byte_bpe, tiny_llama

    root = tmp_path_factory.mktemp("bad_input_assets")
    tok = byte_bpe()
    model_dir = root / "model"
    tiny_llama(len(tok)).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    no_tok = root / "model_without_tokenizer"
    tiny_llama(len(tok)).save_pretrained(no_tok)
    tok_dir = root / "tok"
    tok.save_pretrained(tok_dir)
    (root / "good.txt").write_text(TEXT, encoding="utf-8")
    (root / "empty.txt").write_bytes(b"")
    (root / "latin1.txt").write_bytes("Grüße aus Köln\n".encode("latin-1"))
    (root / "a_file").write_text("not a folder")
    (root / "foreign").mkdir()
    (root / "foreign" / "thesis.tex").write_text("years of work")
    (root / "previous").mkdir()
    (root / "previous" / "transplant_report.json").write_text("{}")
    (root / "plain_folder").mkdir()
    (root / "plain_folder" / "config.json").write_text("{}")
    return {"root": root, "model": model_dir, "no_tok": no_tok, "tok": tok_dir}


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def bad_invocations() -> list[tuple[str, list[str], str]]:
    """(id, argv with {placeholders}, the word the one-line error must contain)."""
    gen = ["generate", "{model}", "--prompt", "x"]
    score = ["score", "{model}", "--text", "{root}/good.txt"]
    tp = ["transplant", "--model", "{model}", "--tokenizer", "{tok}", "--method", "mean", "--out", "{root}/new_out"]
    fim = ["fim", "{model}", "--prefix-file", "{root}/good.txt", "--suffix-file", "{root}/good.txt"]
    dyn = ["dynamic", "{model}", "--text", "{root}/good.txt"]
    seg = ["segment", "{model}", "--text", "x"]
    return [
        # generate: numbers, choices, models
        ("gen-max-bytes-negative", gen + ["--max-bytes", "-3"], "--max-bytes"),
        ("gen-max-bytes-zero", gen + ["--max-bytes", "0"], "--max-bytes"),
        ("gen-max-bytes-text", gen + ["--max-bytes", "many"], "--max-bytes"),
        ("gen-temperature-inf", gen + ["--temperature", "inf"], "--temperature"),
        ("gen-temperature-nan", gen + ["--temperature", "nan"], "--temperature"),
        ("gen-temperature-negative", gen + ["--temperature", "-1"], "--temperature"),
        ("gen-top-p-zero", gen + ["--top-p", "0"], "--top-p"),
        ("gen-top-p-above-one", gen + ["--top-p", "1.5"], "--top-p"),
        ("gen-top-p-nan", gen + ["--top-p", "nan"], "--top-p"),
        ("gen-seed-text", gen + ["--seed", "abc"], "--seed"),
        ("gen-ensemble-choice", gen + ["--ensemble", "sum"], "--ensemble"),
        ("gen-two-models-no-ensemble", ["generate", "{model}", "{model}", "--prompt", "x"], "--ensemble"),
        ("gen-weights-negative", ["generate", "{model}", "{model}", "--prompt", "x", "--ensemble", "mixture",
                                  "--weights", "-1", "1"], "--weights"),
        ("gen-weights-count", ["generate", "{model}", "{model}", "--prompt", "x", "--ensemble", "mixture",
                               "--weights", "1"], "--weights"),
        ("gen-weights-no-ensemble", gen + ["--weights", "1"], "--weights"),
        ("gen-model-missing", ["generate", "{root}/nowhere", "--prompt", "x"], "model"),
        ("gen-model-not-a-model", ["generate", "{root}/foreign", "--prompt", "x"], "model"),
        # score
        ("score-max-bytes-negative", score + ["--max-bytes", "-5"], "--max-bytes"),
        ("score-max-bytes-zero", score + ["--max-bytes", "0"], "--max-bytes"),
        ("score-text-missing", ["score", "{model}", "--text", "{root}/missing.txt"], "--text"),
        ("score-text-empty", ["score", "{model}", "--text", "{root}/empty.txt"], "--text"),
        ("score-text-latin1", ["score", "{model}", "--text", "{root}/latin1.txt"], "--text"),
        ("score-text-folder", ["score", "{model}", "--text", "{root}/foreign"], "--text"),
        ("score-text-builtin-unknown", ["score", "{model}", "--text", "builtin:klingon"], "--text"),
        ("score-model-no-tokenizer", ["score", "{no_tok}", "--text", "{root}/good.txt"], "tokenizer"),
        ("score-model-no-config", ["score", "{root}/foreign", "--text", "{root}/good.txt"], "model"),
        # transplant: --out first, then the rest
        ("tp-out-dot", tp[:-1] + ["."] + ["--force"], "--out"),
        ("tp-out-dotdot", tp[:-1] + [".."] + ["--force"], "--out"),
        ("tp-out-home", tp[:-1] + ["~"] + ["--force"], "--out"),
        ("tp-out-root", tp[:-1] + ["/"] + ["--force"], "--out"),
        ("tp-out-is-file", tp[:-1] + ["{root}/a_file"] + ["--force"], "--out"),
        ("tp-out-parent-is-file", tp[:-1] + ["{root}/a_file/out"], "--out"),
        ("tp-out-proc", tp[:-1] + ["/proc/tokenshift-out"], "--out"),
        ("tp-out-foreign-force", tp[:-1] + ["{root}/foreign", "--force"], "--out"),
        ("tp-out-foreign", tp[:-1] + ["{root}/foreign"], "--out"),
        ("tp-out-previous-no-force", tp[:-1] + ["{root}/previous"], "--force"),
        ("tp-eval-bytes-zero", tp + ["--eval", "{root}/good.txt", "--eval-bytes", "0"], "--eval-bytes"),
        ("tp-eval-bytes-negative", tp + ["--eval", "{root}/good.txt", "--eval-bytes", "-1"], "--eval-bytes"),
        ("tp-eval-missing", tp + ["--eval", "{root}/missing.txt"], "--eval"),
        ("tp-eval-builtin-unknown", tp + ["--eval", "builtin:nope"], "--eval"),
        ("tp-method-choice", tp[:6] + ["bogus"] + tp[7:], "--method"),
        ("tp-top-k-zero", tp + ["--top-k", "0"], "--top-k"),
        ("tp-temperature-zero", tp + ["--temperature", "0"], "--temperature"),
        ("tp-temperature-nan", tp + ["--temperature", "nan"], "--temperature"),
        ("tp-weight-above-one", tp + ["--weight", "2"], "--weight"),
        ("tp-finetune-zero", tp + ["--finetune", "0"], "--finetune"),
        ("tp-finetune-negative", tp + ["--finetune", "-2"], "--finetune"),
        ("tp-finetune-lr-zero", tp + ["--finetune", "2", "--finetune-lr", "0"], "--finetune-lr"),
        ("tp-finetune-batch-zero", tp + ["--finetune", "2", "--finetune-batch-size", "0"], "--finetune-batch-size"),
        ("tp-finetune-bytes-zero", tp + ["--finetune", "2", "--finetune-bytes", "0"], "--finetune-bytes"),
        ("tp-finetune-text-alone", tp + ["--finetune-text", "{root}/good.txt"], "--finetune"),
        ("tp-distill-zero", tp + ["--distill", "0"], "--distill"),
        ("tp-distill-and-finetune", tp + ["--distill", "2", "--finetune", "2"], "--distill"),
        ("tp-finetune-text-missing", tp + ["--finetune", "2", "--finetune-text", "{root}/missing.txt"],
         "--finetune-text"),
        ("tp-tokenizer-missing", tp[:4] + ["{root}/no_tokenizer"] + tp[5:], "--tokenizer"),
        ("tp-zett-no-hypernet", tp[:6] + ["zett"] + tp[7:], "--hypernet"),
        ("tp-hypernet-missing", tp[:6] + ["zett"] + tp[7:] + ["--hypernet", "{root}/no_hypernet"], "--hypernet"),
        ("tp-omp-no-donor", tp[:6] + ["omp"] + tp[7:], "--donor"),
        ("tp-donor-without-omp", tp + ["--donor", "{model}"], "--donor"),
        ("tp-donor-missing", tp[:6] + ["omp"] + tp[7:] + ["--donor", "{root}/nowhere"], "--donor"),
        ("tp-model-missing", tp[:2] + ["{root}/nowhere"] + tp[3:], "--model"),
        ("tp-model-no-tokenizer", tp[:2] + ["{no_tok}"] + tp[3:], "tokenizer"),
        # fim
        ("fim-max-bytes-zero", fim + ["--max-bytes", "0"], "--max-bytes"),
        ("fim-temperature-inf", fim + ["--temperature", "inf"], "--temperature"),
        ("fim-order-choice", fim + ["--order", "mps"], "--order"),
        ("fim-prefix-missing", ["fim", "{model}", "--prefix-file", "{root}/missing.py", "--suffix-file",
                                "{root}/good.txt"], "--prefix-file"),
        ("fim-suffix-folder", ["fim", "{model}", "--prefix-file", "{root}/good.txt", "--suffix-file",
                               "{root}/foreign"], "--suffix-file"),
        ("fim-no-fim-tokens", fim, "tokenshift generate"),
        # dynamic
        ("dyn-merges-negative", dyn + ["--merges", "-1"], "--merges"),
        ("dyn-batch-size-zero", dyn + ["--batch-size", "0"], "--batch-size"),
        ("dyn-chunk-bytes-small", dyn + ["--chunk-bytes", "8"], "--chunk-bytes"),
        ("dyn-max-bytes-negative", dyn + ["--max-bytes", "-1"], "--max-bytes"),
        ("dyn-text-missing", ["dynamic", "{model}", "--text", "{root}/missing.txt"], "--text"),
        ("dyn-hypernet-missing", dyn + ["--hypernet", "{root}/no_hypernet"], "--hypernet"),
        # segment
        ("seg-max-bytes-zero", seg + ["--max-bytes", "0"], "--max-bytes"),
        ("seg-not-native", seg, "model"),
        ("seg-boundaries-choice", seg + ["--boundaries", "sometimes"], "--boundaries"),
        ("seg-text-and-file", seg + ["--file", "{root}/good.txt"], "--text"),
        # audit
        ("audit-json-parent-file", ["audit", "{tok}", "--text", "{root}/good.txt", "--json", "{root}/a_file/x.json"],
         "--json"),
        ("audit-text-missing", ["audit", "{tok}", "--text", "{root}/missing.txt"], "--text"),
        ("audit-tokenizer-missing", ["audit", "{root}/nowhere", "--text", "{root}/good.txt"], "tokenizer"),
    ]


CASES = bad_invocations()


@pytest.fixture
def no_loading(monkeypatch):
    """Model loaders that fail the test if anything reaches them."""
    import tokenshift.assets
    import tokenshift.models.base

    def spy(*args, **kwargs):
        raise AssertionError(f"a model loader was called with {args}: the bad input was not caught first")

    monkeypatch.setattr(tokenshift.assets, "load_model", spy)
    monkeypatch.setattr(tokenshift.models.base, "load_pretrained", spy)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_invocation_exits_2_with_one_line_before_loading(case, assets, tmp_path, monkeypatch, capsys,
                                                             no_loading):
    _, argv, word = case
    work = tmp_path / "work"
    work.mkdir()
    (work / "a").write_text("the user's file")
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("keep me")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    argv = [a.format(**{k: str(v) for k, v in assets.items()}) for a in argv]
    before_tmp, before_assets = _tree(tmp_path), _tree(assets["root"])
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "error:" in lines[0] and word in lines[0], lines[0]
    assert _tree(tmp_path) == before_tmp and _tree(assets["root"]) == before_assets  # nothing written
    assert (work / "a").read_text() == "the user's file" and (home / "notes.txt").exists()


def test_a_bug_shows_its_traceback(monkeypatch, assets, capsys):
    """Only user-facing errors become one line: a TypeError inside a command propagates."""
    import tokenshift.cli as cli

    def broken(args):
        raise TypeError("a bug")

    monkeypatch.setitem(cli.COMMANDS, "score", (broken, "broken"))
    with pytest.raises(TypeError, match="a bug"):
        main(["score", str(assets["model"]), "--text", str(assets["root"] / "good.txt")])


# -- the library refuses the same values ---------------------------------------------------------


class _Uniform:
    """A ByteModel that is uniform over the 256 bytes and end of text."""

    def start(self, prefix: bytes = b""):
        import torch

        class State:
            def logprobs(self):
                return torch.full((257,), -torch.log(torch.tensor(257.0)).item())

            def advance(self, byte: int) -> None:
                pass

        return State()


@pytest.mark.parametrize("kwargs", [{"temperature": float("inf")}, {"temperature": float("nan")},
                                    {"temperature": -0.5}, {"top_p": 0.0}, {"top_p": float("nan")},
                                    {"top_p": 1.01}, {"max_bytes": -3}])
def test_generate_bytes_refuses_unusable_settings(kwargs):
    from tokenshift.bytelevel.sampling import generate_bytes

    with pytest.raises(ValueError, match=next(iter(kwargs))):
        generate_bytes(_Uniform(), b"ab", **kwargs)


def test_generate_bytes_still_samples_valid_utf8_at_high_finite_temperature():
    from tokenshift.bytelevel.sampling import generate_bytes

    out = generate_bytes(_Uniform(), b"", max_bytes=40, temperature=50.0, seed=3)
    out.decode("utf-8")  # the UTF-8 mask holds at any finite temperature


def test_plain_token_bits_refuses_text_past_the_context_window():
    """Context 32: a text of more tokens is refused (it was scored with meaningless positions)."""
    from tiny import byte_bpe, tiny_llama

    from tokenshift.bytelevel.exact import TokenByteModel
    from tokenshift.bytelevel.scoring import plain_token_bits

    tok = byte_bpe()
    model = tiny_llama(len(tok))
    model.config.max_position_embeddings = 32
    bm = TokenByteModel(model, tok)
    text = ("ab ba aab " * 40).encode()
    assert len(tok(text.decode())["input_ids"]) > 32
    with pytest.raises(ValueError, match="context window is 32"):
        plain_token_bits(bm, text)
    assert plain_token_bits(bm, b"ab ba").tokens >= 1  # a short text is still scored


def test_fim_message_says_what_to_do_on_the_command_line(get_vocab):
    from tokenshift.bytelevel.fim import fim_tokens

    with pytest.raises(ValueError) as err:
        fim_tokens(get_vocab("tiny_byte_bpe"))
    assert "tokenshift generate" in str(err.value) and "complete()" in str(err.value)


# -- the aux-embedding cache ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_embedder_dir(tmp_path_factory, minilm_tokenizer_file) -> Path:
    """A 1-layer, 8-wide BERT with all-MiniLM's WordPiece tokenizer: an AuxEmbedder folder in a second."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    import torch

    folder = tmp_path_factory.mktemp("tiny_embedder")
    tok = BertTokenizerFast(tokenizer_file=str(minilm_tokenizer_file))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                         intermediate_size=16, max_position_embeddings=64)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_aux_cache_is_keyed_by_content_and_survives_a_truncated_file(tiny_embedder_dir, tmp_path, monkeypatch):
    import shutil

    import numpy as np

    import tokenshift.transplant.auxiliary as aux

    monkeypatch.setattr(aux, "CACHE", tmp_path / "cache")
    strings = ["hello", "world", "Grüße", "ab"]
    first = aux.AuxEmbedder(tiny_embedder_dir, progress=False)(strings)
    files = list((tmp_path / "cache").glob("*.npy"))
    assert len(files) == 1 and not list((tmp_path / "cache").glob("*.tmp"))  # written whole, by rename
    copy = tmp_path / "elsewhere" / "embedder"  # a second clone / rebuilt venv: same files, another path
    shutil.copytree(tiny_embedder_dir, copy)
    moved = aux.AuxEmbedder(copy, progress=False)
    assert moved._key(strings) == files[0]

    files[0].write_bytes(files[0].read_bytes()[:100])  # truncated, as a killed writer of the old code left it
    with pytest.warns(UserWarning, match=str(files[0])):
        again = moved(strings)
    np.testing.assert_allclose(again, first, rtol=1e-6)
    assert np.load(files[0]).shape == (len(strings), moved.dim)  # recomputed and rewritten


def test_aux_embeddings_match_one_string_at_a_time(tiny_embedder_dir):
    """Sharing one forward among strings the embedder reads alike, and hand-built padded batches, change
    nothing: every row equals the string embedded alone through the tokenizer's own padding."""
    import numpy as np
    import torch

    import tokenshift.transplant.auxiliary as aux

    strings = ["the", " the", "The", "Grüße", "", "a much longer string of several words", "ab", "the", "\x00"]
    embedder = aux.AuxEmbedder(tiny_embedder_dir, progress=False, cache=False)
    embedder.batch_size = 3  # several batches, of mixed widths
    got = embedder(strings)
    for row, s in zip(got, strings):
        enc = embedder.tokenizer([s], truncation=True, max_length=32, return_tensors="pt")
        with torch.no_grad():
            hidden = embedder.model(**enc).last_hidden_state.mean(1)
        np.testing.assert_allclose(row, torch.nn.functional.normalize(hidden, dim=-1)[0].numpy(), atol=1e-5)
    assert np.array_equal(got[0], got[7])


def test_aux_cache_writes_are_atomic(tmp_path, monkeypatch):
    """A writer killed mid-write (simulated: np.save raises) leaves no cache file and no temp file."""
    import numpy as np

    import tokenshift.transplant.auxiliary as aux

    target = tmp_path / "c" / "x.npy"

    def dies(f, array):
        f.write(b"\x93NUMPY partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        aux.save_atomic(target, np.zeros((2, 3), dtype=np.float32))
    assert not target.exists() and os.listdir(target.parent) == []


def test_previous_output_marker_is_json(tmp_path):
    """The marker a transplant leaves names the tool (what --force looks for)."""
    from tokenshift.outputs import MARKER, StagedOutput

    out = tmp_path / "out"
    with StagedOutput(out) as staging:
        staging.commit()
    assert json.loads((out / MARKER).read_text())["written_by"] == "tokenshift transplant"


def test_recovery_text_argument_is_a_path_or_the_text_never_a_guess(tmp_path):
    """A str names a file; text itself comes as bytes or a list. Text passed as a str is refused with the fix
    (it used to reach the file system: `OSError: File name too long`)."""
    from tokenshift.transplant.finetune import _read_texts

    with pytest.raises(ValueError, match=r"as a list \(\[text\]\) or as bytes"):
        _read_texts(TEXT)
    assert _read_texts(TEXT.encode()) == [TEXT]
    assert _read_texts([TEXT, TEXT.encode()]) == [TEXT, TEXT]
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    assert _read_texts(str(path)) == _read_texts(path) == [TEXT]
    with pytest.raises(FileNotFoundError):
        _read_texts(str(tmp_path / "missing.txt"))
