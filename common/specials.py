"""Special tokens by role: which old special row a new special token should start from.

A special token stands for no bytes, so no heuristic can place it; what it
*does* is known from its role: it starts a document (BOS), ends one (EOS),
both (GPT-2's `<|endoftext|>`), pads, opens or closes a chat turn, marks a
FIM part, or stands for an unknown piece. The role comes first from the
token's text (a table of the names the common families use), then from what
the tokenizer declares (`bos_token`, `eos_token`, `pad_token`, `unk_token`).
The text wins because declarations mislead: SmolLM2 declares `<|endoftext|>`
its *unk* token and the chat marker `<|im_start|>` its BOS; copying by the
declaration alone gives a new `<|endoftext|>` the base's `<unk>` row, and a
window that starts after `<unk>` costs Gemma-3 +0.25 to +0.55 bits per byte.

Rules: a new special takes, for its input row, the base row of its first
role in INPUT_ORDER that the base has (document start before end: the input
row is what the model reads when a text starts after it), and for an untied
output row the first in OUTPUT_ORDER (end before start: it is what the model
predicts). The base's unknown-token row is used only for a new token whose
one role is "unk". Tokens with no role the base has are left to the caller.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NAMED_ROLES: dict[str, tuple[str, ...]] = {
    "<|endoftext|>": ("bos", "eos"),  # GPT-2 family: the boundary between documents, read and predicted
    "<s>": ("bos",), "<bos>": ("bos",), "<|begin_of_text|>": ("bos",), "<|startoftext|>": ("bos",),
    "<|bos|>": ("bos",),
    "</s>": ("eos",), "<eos>": ("eos",), "<|end_of_text|>": ("eos",), "<|eos|>": ("eos",),
    "<pad>": ("pad",), "<|pad|>": ("pad",), "[pad]": ("pad",), "<|padding|>": ("pad",),
    "<|finetune_right_pad_id|>": ("pad",),
    "<unk>": ("unk",), "[unk]": ("unk",), "<|unk|>": ("unk",),
    "<|im_start|>": ("turn_start",), "<start_of_turn>": ("turn_start",), "<|start_header_id|>": ("turn_start",),
    "<|im_end|>": ("turn_end",), "<end_of_turn>": ("turn_end",), "<|eot_id|>": ("turn_end",),
    "<|end|>": ("turn_end",),
    "<fim_prefix>": ("fim_prefix",), "<|fim_prefix|>": ("fim_prefix",),
    "<fim_suffix>": ("fim_suffix",), "<|fim_suffix|>": ("fim_suffix",),
    "<fim_middle>": ("fim_middle",), "<|fim_middle|>": ("fim_middle",),
    "<fim_pad>": ("fim_pad",), "<|fim_pad|>": ("fim_pad",),
}
DECLARED = ("bos", "eos", "pad", "unk")  # the roles a Hugging Face tokenizer declares (`<role>_token_id`)
INPUT_ORDER = ("bos", "eos", "turn_start", "turn_end", "fim_prefix", "fim_suffix", "fim_middle", "fim_pad",
               "pad", "unk")
OUTPUT_ORDER = ("eos", "bos", "turn_end", "turn_start", "fim_prefix", "fim_suffix", "fim_middle", "fim_pad",
                "pad", "unk")


def declared_roles(tok: Any, bos_id: int | None, eos_id: int | None) -> dict[str, int]:
    """role -> id as the tokenizer declares it (bos/eos from its ByteVocab, pad/unk from its attributes)."""
    roles = {"bos": bos_id, "eos": eos_id}
    for role in ("pad", "unk"):
        value = getattr(tok, f"{role}_token_id", None)
        roles[role] = value if isinstance(value, int) else None
    return {r: i for r, i in roles.items() if i is not None}


def special_roles(specials: dict[int, str], declared: dict[str, int]) -> dict[int, tuple[tuple[str, ...], ...]]:
    """Each special id's roles in groups, by priority: the roles its name gives, then the declared ones
    (a declared "unk" only where the name gives no role).

    Example: SmolLM2 ({0: "<|endoftext|>", 1: "<|im_start|>"}, declared unk=0, bos=1) ->
    {0: (("bos", "eos"),), 1: (("turn_start",), ("bos",))}.
    """
    out: dict[int, tuple[tuple[str, ...], ...]] = {}
    for i, text in specials.items():
        named = NAMED_ROLES.get(text.strip().lower(), ())
        said = tuple(r for r in DECLARED if declared.get(r) == i and r not in named and not (r == "unk" and named))
        groups = tuple(g for g in (named, said) if g)
        if groups:
            out[i] = groups
    return out


def rows_by_role(specials: dict[int, str], declared: dict[str, int]) -> dict[str, int]:
    """role -> the old id to copy for it: the lowest id *named* for the role, else the declared one.

    Example: SmolLM2 -> {"bos": 0, "eos": 0, "turn_start": 1, "turn_end": 2, "pad": 2, "unk": 0, ...}
    (its `<|endoftext|>` starts documents, not the declared BOS `<|im_start|>`).
    """
    out: dict[str, int] = {}
    for i, text in sorted(specials.items()):
        for role in NAMED_ROLES.get(text.strip().lower(), ()):
            out.setdefault(role, i)
    for role, i in declared.items():
        if i in specials:
            out.setdefault(role, i)
    return out


@dataclass
class RoleMatch:
    """Where a new special's rows come from: old ids and the roles that chose them."""

    input_id: int
    input_role: str
    output_id: int
    output_role: str


def match_by_role(groups: tuple[tuple[str, ...], ...], old_by_role: dict[str, int]) -> RoleMatch | None:
    """The old rows for a new special with these role groups (`special_roles`), or None when the base has none.

    The first group with a role the base has decides; within it INPUT_ORDER picks the input row and
    OUTPUT_ORDER the output row. The base's "unk" row only for a token whose one role is "unk".
    """
    only_unk = {r for g in groups for r in g} == {"unk"}
    for group in groups:
        usable = [r for r in group if r in old_by_role and (r != "unk" or only_unk)]
        if usable:
            role_in = min(usable, key=INPUT_ORDER.index)
            role_out = min(usable, key=OUTPUT_ORDER.index)
            return RoleMatch(old_by_role[role_in], role_in, old_by_role[role_out], role_out)
    return None


SAME_TEXT = "same text"


def special_sources(old: dict[int, str], old_declared: dict[str, int], new: dict[int, str],
                    new_declared: dict[str, int]) -> dict[int, RoleMatch]:
    """new special id -> the old rows it starts from (the rules above); ids with no source are left out.

    The old special with the same text first (both roles `SAME_TEXT`; the lowest such id), else
    `match_by_role`. `old` and `new` map ids to texts; `*_declared` are their `declared_roles`.
    Example: SmolLM2 -> GPT-2: {50256: RoleMatch(0, "same text", 0, "same text")}.
    """
    by_text: dict[str, int] = {}
    for i, text in sorted(old.items()):
        by_text.setdefault(text, i)
    by_role = rows_by_role(old, old_declared)
    roles = special_roles(new, new_declared)
    out: dict[int, RoleMatch] = {}
    for i, text in sorted(new.items()):
        if text in by_text:
            out[i] = RoleMatch(by_text[text], SAME_TEXT, by_text[text], SAME_TEXT)
        else:
            match = match_by_role(roles.get(i, ()), by_role)
            if match is not None:
                out[i] = match
    return out
