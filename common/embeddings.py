"""A model's embedding matrices, and whether its output head is tied to its input rows.

Why one function: a transplant, a dynamic vocabulary, a fine-tune and the
hypernetwork all need "the input rows, and the output rows unless they are the
same tensor"; the tie is a shared storage, not an equal value, so it is read
from the pointers (a copy of the input rows is an untied head).
"""
from __future__ import annotations

from typing import Any

import torch


def embedding_parameters(model: Any) -> tuple[torch.nn.Parameter, torch.nn.Parameter | None]:
    """(input embedding weight, output head weight or None when the head is tied or absent)."""
    rows_in = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    if head is None or head.weight is rows_in or head.weight.data_ptr() == rows_in.data_ptr():
        return rows_in, None
    return rows_in, head.weight


def embedding_rows(model: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The same matrices detached and in float32: (V, d) input rows, (V, d) output rows or None if tied."""
    rows_in, rows_out = embedding_parameters(model)
    return rows_in.detach().float(), None if rows_out is None else rows_out.detach().float()
