"""Plain Hugging Face folders of the offline models and tokenizers, for peers that read only `from_pretrained` folders.

    .venv/bin/python bench/peers/export.py runs/peers/models smollm2 gemma3 --tokenizers gpt2 smollm2 gemma3

Runs in the project's venv. Models are the GGUF checkpoints dequantized to
float32 (the same weights `tokenshift.assets.load_model` gives the benchmark's
own rows), saved as safetensors with their tokenizer; tokenizers go to
`<out>/tok-<name>`. Existing folders are kept (delete one to redo it).
"""
from __future__ import annotations

import argparse
import gc
import json
from pathlib import Path

# the classes the models' own hub folders name (a GGUF-loaded tokenizer saves "TokenizersBackend", and mergekit
# decides the word-start marker from the class: with the generic one it assumes "Ġ" for Gemma too)
TOKENIZER_CLASS = {"smollm2": "GPT2Tokenizer", "gemma3": "GemmaTokenizer", "gpt2": "GPT2Tokenizer"}


def export_model(name: str, out: Path) -> Path:
    """`<out>/<name>`: the model and its tokenizer, as `save_pretrained` writes them."""
    from tokenshift.assets import load_model

    folder = out / name
    if (folder / "config.json").exists():
        return folder
    model, tok = load_model(name)  # de-quantized, its GGUF quantizer dropped: saves plain floats
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    name_class(folder, name)
    del model
    gc.collect()
    return folder


def export_tokenizer(name: str, out: Path) -> Path:
    """`<out>/tok-<name>`: a tokenizer folder `AutoTokenizer.from_pretrained` reads."""
    from tokenshift.assets import load_tokenizer

    folder = out / f"tok-{name}"
    if not (folder / "tokenizer_config.json").exists():
        load_tokenizer(name).save_pretrained(folder)
        name_class(folder, name)
    return folder


def name_class(folder: Path, name: str) -> None:
    """Write the hub folder's tokenizer class into tokenizer_config.json (see TOKENIZER_CLASS)."""
    if name in TOKENIZER_CLASS:
        path = folder / "tokenizer_config.json"
        config = json.loads(path.read_text())
        config["tokenizer_class"] = TOKENIZER_CLASS[name]
        path.write_text(json.dumps(config, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("models", nargs="*", default=[])
    parser.add_argument("--tokenizers", nargs="*", default=[])
    args = parser.parse_args()
    for name in args.models:
        print("model", export_model(name, args.out), flush=True)
    for name in args.tokenizers:
        print("tokenizer", export_tokenizer(name, args.out), flush=True)


if __name__ == "__main__":
    main()
