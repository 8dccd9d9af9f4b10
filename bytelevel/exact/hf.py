"""The Hugging Face side of the exact byte model: `HFTokenLM`, a causal LM with a trunk KV cache.

The exact states (state.py) ask for next-token log-probs after one shared
trunk and many short tails. This adapter keeps the trunk in a `DynamicCache`
and answers with as few forwards as it can: a packed token tree (one row, a 4D
mask) for many tails, padded rows as the fallback, and reuse of keys and
values the last call already computed when the trunk grows into them. Cache
copies, row selection and cropping use `DynamicCache`'s own methods; only the
gather of a path through a token tree is ours. Models whose forward takes
`cache=` (transformers 5) or `past_key_values=` both work.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Iterator, Sequence

import torch


class HFTokenLM:
    """A Hugging Face causal LM as a `TokenTreeScorer`, with a trunk KV cache.

    The trunk (start token + stable prefix) is run once and extended in place.
    `logprobs_tree` packs many tails into one row as a token tree: each token
    attends to the trunk and to its own ancestors only (a 4D mask, positions by
    depth), so tails that share tokens share their computation, and one row of
    n tokens costs far less than n rows on a CPU. `logprobs` right-pads tails
    into a batch instead (the fallback, and the path for models whose sliding
    window the tree would exceed). When the trunk grows by tokens that were
    just evaluated, their keys and values are gathered from that call instead
    of being recomputed.
    """

    def __init__(self, model: Any, device: str | torch.device = "auto", max_batch: int = 64):
        if device == "auto":
            device = next(model.parameters()).device
        self.model = model.eval()
        self.device = torch.device(device)
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])
        self.max_positions = getattr(model.config, "max_position_embeddings", None)
        self.max_batch = max_batch
        self.calls = 0
        self._cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self._trunk: list[int] = []
        self._kv: Any = None
        self._last: torch.Tensor | None = None  # log-probs after the trunk
        self._batch: tuple[list[tuple[int, ...]], Any, torch.Tensor] | None = None  # tails, cache, logits
        # the last token tree: the cache column of each tail it holds, the cache, the log-probs after each tail
        self._tree: tuple[dict[tuple[int, ...], int], Any, dict[tuple[int, ...], torch.Tensor]] | None = None
        self.window = getattr(model.config, "sliding_window", None) or None
        self.max_nodes = 256
        self.row_budget = 1 << 26  # float32 logits in flight in one batched call (`run_rows`)

    @torch.no_grad()
    def _forward(self, ids: torch.Tensor, past: Any, **extra: Any) -> tuple[torch.Tensor, Any]:
        self.calls += 1
        extra = {k: v.to(self.device) for k, v in extra.items()}
        out = self.model(input_ids=ids.to(self.device), use_cache=True, **{self._cache_kw: past}, **extra)
        cache = getattr(out, "cache", None) or out.past_key_values
        return out.logits, cache

    def _check_length(self, n: int) -> None:
        if self.max_positions is not None and n > self.max_positions:
            raise ValueError(
                f"the prompt needs {n} tokens but the model's context window is {self.max_positions}; "
                "shorten the prompt"
            )

    def _set_trunk(self, trunk: Sequence[int]) -> None:
        trunk = list(trunk)
        if trunk == self._trunk:
            return
        self._check_length(len(trunk))
        keep = len(self._trunk) if trunk[: len(self._trunk)] == self._trunk and self._kv is not None else 0
        delta = tuple(trunk[keep:])
        if keep and self._batch is not None:
            tails, cache, logits = self._batch
            row = next((r for r, t in enumerate(tails) if t[: len(delta)] == delta), None)
            if row is not None:  # reuse the batch row that already ran these tokens
                self._kv = _slice_cache(cache, row, keep + len(delta))
                self._last = torch.log_softmax(logits[row, len(delta) - 1].double(), -1).cpu()
                self._trunk, self._batch, self._tree = trunk, None, None
                return
        if keep and self._tree is not None and delta in self._tree[0]:
            columns, cache, logprobs = self._tree
            self._kv = _gather_cache(cache, keep, [columns[delta[:i]] for i in range(1, len(delta) + 1)])
            self._last = logprobs[delta]
            self._trunk, self._batch, self._tree = trunk, None, None
            return
        if keep == 0:
            self._kv = None
        logits, self._kv = self._forward(torch.tensor([list(delta)], dtype=torch.long), self._kv)
        self._last = torch.log_softmax(logits[0, -1].double(), -1).cpu()
        self._trunk, self._batch, self._tree = trunk, None, None

    def extend(self, trunk: Sequence[int], delta: Sequence[int]) -> tuple[float, torch.Tensor]:
        """Grow the trunk by `delta` in one forward: (log P(delta | trunk), log-probs after it)."""
        self._set_trunk(trunk)
        self._check_length(len(self._trunk) + len(delta))
        logits, self._kv = self._forward(torch.tensor([list(delta)], dtype=torch.long), self._kv)
        lp = torch.log_softmax(logits[0].double(), -1).cpu()
        total = float(self._last[delta[0]]) + sum(float(lp[i - 1, t]) for i, t in enumerate(delta) if i)
        self._trunk, self._last, self._batch, self._tree = list(trunk) + list(delta), lp[-1], None, None
        return total, lp[-1]

    def extend_each(self, trunks: Sequence[Sequence[int]]) -> Iterator[float]:
        """For each trunk in turn: make it the current trunk, then yield log P(trunk[1:] | trunk[0]).

        The trunks run as the rows of one batched forward (`run_rows`), so that
        many texts cost one pass instead of one each; when a trunk's turn comes
        its row of the batch cache becomes the trunk cache, and the state built
        next on it runs no forward for it. With a sliding window each trunk runs
        alone (the cache keeps only the window, so rows cannot be cut from it).
        """
        trunks = [list(t) for t in trunks]
        for t in trunks:
            self._check_length(len(t))
        if self.window is not None:
            for t in trunks:
                if len(t) > 1:
                    yield self.extend(t[:1], t[1:])[0]
                else:
                    self._set_trunk(t)
                    yield 0.0
            return
        totals, lasts, cache = run_rows(self._forward, trunks, self.vocab_size, budget=self.row_budget)
        for row, trunk in enumerate(trunks):
            self._kv = _row_cache(cache, row, len(trunk))
            self._trunk, self._last, self._batch, self._tree = trunk, lasts[row], None, None
            yield totals[row]

    def logprobs_tree(self, trunk: Sequence[int], tails: Sequence[Sequence[int]]) -> dict[tuple[int, ...], torch.Tensor]:
        """Float64 log-probs of the next token after `trunk + p`, for every prefix `p` of every tail.

        One forward for all distinct prefixes (the tree's nodes). Tokens that the
        previous tree already ran and that every tail starts with are not run
        again: their keys and values are gathered from that call. Falls back to
        `logprobs` when the tree is too big or would reach past a sliding window.
        """
        self._set_trunk(trunk)
        base = len(self._trunk)
        tails = [tuple(t) for t in tails]
        out: dict[tuple[int, ...], torch.Tensor] = {(): self._last}
        shared: tuple[int, ...] = ()  # the longest common prefix of the tails that the last tree holds
        if self._tree is not None and tails and all(tails):
            columns, _, before = self._tree
            first = tails[0]
            common = next((k for k in range(len(first)) if any(len(t) <= k or t[k] != first[k] for t in tails)),
                          len(first))
            common = min(common, min(len(t) for t in tails) - 1)  # keep at least one token to run per tail
            shared = next((first[:k] for k in range(common, 0, -1) if first[:k] in columns), ())
            for k in range(1, len(shared) + 1):
                out[shared[:k]] = before[shared[:k]]
        nodes: dict[tuple[int, ...], int] = {}
        parents: list[int] = []
        for tail in tails:
            for i in range(len(shared) + 1, len(tail) + 1):
                p = tail[:i]
                if p not in nodes:
                    nodes[p] = len(nodes)
                    parents.append(nodes.get(p[:-1], -1))
        if not nodes:
            return out
        self._check_length(base + max(len(p) for p in nodes))
        if len(nodes) > self.max_nodes or (self.window is not None and base + len(shared) + len(nodes) > self.window):
            keys = list(nodes)
            for p, lp in zip(keys, self.logprobs(self._trunk, keys)):
                out[p] = lp
            return out
        if shared:
            columns, cache, _ = self._tree
            past = _gather_cache(cache, base, [columns[shared[:k]] for k in range(1, len(shared) + 1)])
        else:
            past = _expand_cache(self._kv, 1)
        start = base + len(shared)  # cache column of the first node
        n = len(nodes)
        ids = torch.tensor([[p[-1] for p in nodes]], dtype=torch.long)
        positions = torch.tensor([[base + len(p) - 1 for p in nodes]], dtype=torch.long)
        see = torch.zeros(n, start + n, dtype=torch.bool)
        see[:, :start] = True
        for i in range(n):
            j = i
            while j >= 0:
                see[i, start + j] = True
                j = parents[j]
        dtype = next(self.model.parameters()).dtype
        mask = torch.zeros(1, 1, n, start + n, dtype=dtype).masked_fill(~see, torch.finfo(dtype).min)
        logits, cache = self._forward(ids, past, attention_mask=mask, position_ids=positions)
        lp = torch.log_softmax(logits[0].double(), -1).cpu()
        columns = {shared[:k]: base + k - 1 for k in range(1, len(shared) + 1)}
        for p, i in nodes.items():
            out[p] = lp[i]
            columns[p] = start + i
        self._tree, self._batch = (columns, cache, out), None
        return out

    def logprobs(self, trunk: Sequence[int], tails: Sequence[Sequence[int]]) -> torch.Tensor:
        """(len(tails), vocab_size) float64 log-probs after `trunk + tail`: tails right-padded into batches."""
        self._set_trunk(trunk)
        out = torch.empty(len(tails), self.vocab_size, dtype=torch.float64)
        todo = [i for i, t in enumerate(tails) if len(t)]
        for i, t in enumerate(tails):
            if not len(t):
                out[i] = self._last
        for lo in range(0, len(todo), self.max_batch):
            chunk = todo[lo : lo + self.max_batch]
            width = max(len(tails[i]) for i in chunk)
            self._check_length(len(self._trunk) + width)
            ids = torch.zeros(len(chunk), width, dtype=torch.long)
            for row, i in enumerate(chunk):
                ids[row, : len(tails[i])] = torch.tensor(tails[i])
            logits, cache = self._forward(ids, _expand_cache(self._kv, len(chunk)))
            self._batch, self._tree = ([tuple(tails[i]) for i in chunk], cache, logits), None
            for row, i in enumerate(chunk):
                out[i] = torch.log_softmax(logits[row, len(tails[i]) - 1].double(), -1).cpu()
        return out


@torch.no_grad()
def run_rows(forward: Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]], seqs: Sequence[Sequence[int]],
             vocab_size: int, columns: int | None = None, budget: int = 1 << 26, windowed: bool = True,
             ) -> tuple[list[float], list[torch.Tensor], Any]:
    """Token sequences as the right-padded rows of one batch: per row, the summed log-prob of every
    token after the first, the log-probs after its last token, and the batch's cache.

    Pads sit after each row's tokens, so causal attention never lets a real
    token see one and no mask is needed. The positions run in windows, with
    the cache carried between them, so the float32 logits in flight stay under
    `budget` numbers (rows x window x vocabulary): a batch of long texts over a
    large vocabulary would otherwise need gigabytes at once. `windowed=False`
    (a model with a sliding window, whose cache keeps only the window) runs
    every position at once instead, as few rows a call as the budget allows,
    and returns no cache. `columns` limits the softmax to the first ids (a
    tokenizer smaller than the model's rows). Sums are float64 over a float64
    log-softmax, as the exact states use.
    """
    lengths = [len(s) for s in seqs]
    if not seqs or min(lengths) < 1:
        raise ValueError("run_rows: every sequence needs at least one token")
    if not windowed:
        group = max(1, budget // (max(lengths) * vocab_size))
        totals, lasts = [], []
        for lo in range(0, len(seqs), group):
            t, last, _ = run_rows(forward, seqs[lo : lo + group], vocab_size, columns, budget=1 << 62)
            totals, lasts = totals + t, lasts + last
        return totals, lasts, None
    ids = torch.zeros(len(seqs), max(lengths), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
    window = max(1, budget // (len(seqs) * vocab_size))
    totals = [0.0] * len(seqs)
    lasts: list[torch.Tensor | None] = [None] * len(seqs)
    cache = None
    for lo in range(0, ids.shape[1], window):
        hi = min(ids.shape[1], lo + window)
        logits, cache = forward(ids[:, lo:hi], cache)
        for row, n in enumerate(lengths):
            if n <= lo:
                continue
            lp = torch.log_softmax(logits[row, : min(hi, n) - lo, :columns].double(), -1)
            scored = min(hi, n - 1) - lo  # positions here whose next token is in the row
            if scored > 0:
                target = ids[row, lo + 1 : lo + 1 + scored].to(lp.device)
                totals[row] += float(lp[:scored].gather(1, target[:, None]).sum())
            if n <= hi:
                lasts[row] = lp[n - 1 - lo].cpu()
    return totals, lasts, cache


def _row_cache(kv: Any, row: int, length: int) -> Any:
    """Row `row`'s first `length` positions of a batch cache, as a fresh one-row cache."""
    from transformers import DynamicCache

    return DynamicCache([(layer.keys[row : row + 1, :, :length].clone(),
                          layer.values[row : row + 1, :, :length].clone()) for layer in kv.layers])


def _copy_cache(kv: Any) -> Any:
    """A fresh `DynamicCache` holding copies of `kv`'s keys and values (a forward extends it in place)."""
    from transformers import DynamicCache

    return DynamicCache([(layer.keys, layer.values) for layer in kv.layers])


def _expand_cache(kv: Any, batch: int) -> Any:
    """The one-row cache `kv`, copied and repeated to `batch` rows."""
    cache = _copy_cache(kv)
    if batch > 1:
        cache.batch_repeat_interleave(batch)
    return cache


def _slice_cache(kv: Any, row: int, length: int) -> Any:
    """Row `row`'s first `length` positions of a batch cache we own (it is changed in place and returned)."""
    kv.batch_select_indices(torch.tensor([row]))
    kv.crop(length - kv.get_seq_length())  # crop takes minus the number of positions to drop
    return kv


def _gather_cache(kv: Any, keep: int, columns: list[int]) -> Any:
    """Row 0's first `keep` positions followed by `columns` (a path through a token tree), as a fresh cache."""
    from transformers import DynamicCache

    index = torch.tensor(list(range(keep)) + columns, dtype=torch.long)
    return DynamicCache([(layer.keys[:1].index_select(2, index.to(layer.keys.device)),
                          layer.values[:1].index_select(2, index.to(layer.values.device))) for layer in kv.layers])
