"""The renderers behind bench/report.py: one per benchmark, `bench/results/NAME.json` -> markdown.

Each renderer reads a record in the `tokenshift.results.write_result` format
(config, metrics, baseline) and returns the README section's body: a setup line,
tables and target lines, every figure taken from the record (never typed in).
The command line shown is the one a record stores (`command`); for a record
written before records stored it, the benchmark's command builder rebuilds it
from the config (with no record: the full run's command). Add a benchmark
here: a renderer, a command builder, an entry in `RESULTS` (and in `PLOTS` of
bench/report.py if its plot is cheap to redraw).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

# -- number formatting ----------------------------------------------------------------------------------


def num(x: float | None, digits: int = 3) -> str:
    """Fixed decimals; infinity as ∞, missing as —. num(1.23456) -> '1.235'."""
    if x is None:
        return "—"
    if x == float("inf"):
        return "∞"
    return f"{x:.{digits}f}"


def pct(x: float, digits: int = 1, sign: bool = False) -> str:
    """A fraction as a percentage. pct(0.0532) -> '5.3%', pct(-0.09, sign=True) -> '-9.0%'."""
    return f"{100 * x:{'+' if sign else ''}.{digits}f}%"


def sci(x: float, digits: int = 1) -> str:
    """sci(0.000154) -> '1.5e-04'."""
    return f"{x:.{digits}e}"


def distinct_digits(values: list[float], low: int = 3, high: int = 6) -> int:
    """The fewest decimals (>= low) at which different values print differently: 2.79618 vs 2.79606 need 4."""
    for digits in range(low, high + 1):
        shown = {f"{v:.{digits}f}" for v in values}
        if len(shown) == len(set(values)):
            return digits
    return high


def yes(flag: bool | None, met: str = "met", not_met: str = "not met") -> str:
    return "—" if flag is None else (f"**{met}**" if flag else f"**{not_met}**")


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def listing(values: dict[str, float], digits: int = 3) -> str:
    """listing({'en': 1.1196, 'de': 1.9462}) -> 'en 1.120, de 1.946'."""
    return ", ".join(f"{k} {num(v, digits)}" for k, v in values.items())


# -- commands: rebuilt from a record's config, for records that do not store their command -----------------


def script(name: str, config: dict | None, options: tuple = (), prefix: str = "") -> str:
    """`python bench/NAME.py` plus the flags whose recorded value differs from the default.

    options: (flag, config key, full-run default, --quick default). With config None: the full run's command.
    """
    parts = [f"{prefix}python bench/{name}.py"]
    if config is None:
        return parts[0]
    quick = bool(config.get("quick"))
    if quick:
        parts.append("--quick")
    for flag, key, full, quick_default in options:
        value = config.get(key)
        if value is None or value == (quick_default if quick else full):
            continue
        parts.append(f"{flag} {arg(value)}")
    return " ".join(parts)


def arg(value: Any) -> str:
    """A config value as a command-line argument: arg([0, 8]) -> '0 8', arg(80.0) -> '80'."""
    if isinstance(value, list):
        return " ".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def cmd_audit(c: dict | None) -> str:
    names = (c or {}).get("tokenizers") or ["smollm2", "gpt2", "mistral", "cl100k"]
    texts = (c or {}).get("texts") or {}
    extra = ""
    if any(not str(p).endswith(f"/{k}.valid.txt") for k, p in texts.items()):
        extra = " --text " + " ".join(Path(p).name for p in texts.values())
    return f"tokenshift audit {' '.join(names)}{extra} --json bench/results/audit.json"


def cmd_fim(c: dict | None) -> str:
    return script("fim", c, (("--spans", "spans_drawn", 300, 3), ("--minutes", "minutes_budget", 25.0, 25.0),
                             ("--seed", "seed", 0, 0), ("--threads", "threads", 1, 1)))


def cmd_ensemble(c: dict | None) -> str:
    return script("ensemble", c, (("--fit-bytes", "fit_bytes", 300, 40), ("--chunks", "chunks", 3, 1),
                                  ("--chunk-bytes", "chunk_bytes", 300, 40),
                                  ("--width", "bounds_width_per_byte", 1e-3, 1e-3), ("--threads", "threads", 1, 1)))


def cmd_dynamic(c: dict | None) -> str:
    out = script("dynamic", c, (("--merges", "merges", [0, 8, 16, 32, 64, 128, 256, 1024], [0, 16, 128]),
                                ("--bytes", "bytes_per_language", 8192, 2048)))
    return out + (f" --hypernet {c['hypernet']}" if c and c.get("hypernet") else "")


def cmd_ann(c: dict | None) -> str:
    every = ["flat", "hnsw", "ivf", "ivfpq", "scann", "pieces"]
    return script("ann", c, (("--entries", "entries", 1_000_000, 60_000), ("--queries", "queries", 500, 100),
                             ("--threads", "threads", 2, 2), ("--indexes", "indexes", every, every)))


def cmd_hat(c: dict | None) -> str:
    if c is None:
        return "python bench/hat.py"
    threads = c.get("torch_threads")
    return script("hat", c, (("--minutes", "minutes_per_model", 10.0, 0.1),),
                  prefix=f"OMP_NUM_THREADS={threads} " if threads else "")


def cmd_hypernet(c: dict | None) -> str:
    return script("hypernet", c, (("--eval-bytes", "eval_bytes", 4096, 1024), ("--device", "device", "cpu", "cpu")),
                  prefix="OMP_NUM_THREADS=1 ")


# -- renderers: one per benchmark, record -> markdown ------------------------------------------------------


def render_audit(r: dict) -> str:
    texts = r["config"].get("texts", {})
    default = all(str(p).endswith(f"/{k}.valid.txt") for k, p in texts.items())
    where = "`../shared/data/*.valid.txt`" if default else ", ".join(f"`{Path(p).name}`" for p in texts.values())
    metrics = r["metrics"]
    langs = [t["name"] for t in next(iter(metrics.values()))["texts"]]
    rows = []
    for name, m in metrics.items():
        bpt = {t["name"]: t["bytes_per_token"] for t in m["texts"]}
        rows.append([name, m["family"], m["size"]] + [num(bpt.get(lang), 2) for lang in langs]
                    + [m["unreachable"], m["duplicate_ids"]])
    return (f"Bytes per token on {where} (more bytes per token: shorter sequences); tokens that no text "
            "encodes to (unreachable) and tokens whose bytes another token also has (duplicates):\n\n"
            + table(["tokenizer", "family", "vocab", *langs, "unreachable", "duplicates"], rows))


def render_exact_sampling(r: dict) -> str:
    c, m = r["config"], r["metrics"]
    targets = m["targets"]
    tput, calls = m["throughput_ratio"], m["forward_calls_ratio"]
    head = (f"{c['model']}, temperature {c['temperature']:g}, one process ({'quick' if c.get('quick') else 'full'} "
            f"run, {len(c['seeds'])} seed{'s' * (len(c['seeds']) > 1)}, {c['generated_bytes']} bytes each after a "
            f"{c['prompt_bytes']}-byte English prompt).\n\n")
    sampling = table(["", "exact byte sampling", "plain token sampling", "ratio", "target"], [
        ["bytes/s", num(m["exact_bytes_per_second"], 2), num(m["token_bytes_per_second"], 2), num(tput),
         f"≥ {targets['throughput_ratio_min']:g}: {yes(tput >= targets['throughput_ratio_min'])}"],
        ["forward calls / byte", num(m["exact_forward_calls_per_byte"]), num(m["token_forward_calls_per_byte"]),
         num(calls, 2), f"≤ {targets['forward_calls_ratio_max']:g}: {yes(calls <= targets['forward_calls_ratio_max'])}"],
    ])
    scoring = table([f"text ({c['scored_bytes']} bytes)", "exact bits/byte", "plain tokenization bits/byte",
                     "difference"],
                    [[name, num(s["exact_bits_per_byte"], 4), num(s["plain_bits_per_byte"], 4),
                      sci(s["difference_bits_per_byte"], 2)] for name, s in m["scoring"].items()])
    inv = m["invalid_mass"]
    peer = r["baseline"].get("peer")
    return (head + sampling + (f"\n\nPeer: {peer}." if peer else "") + "\n\n" + scoring
            + f"\n\nMass the model puts on non-canonical continuations (`invalid_mass`, {inv['count']} random "
              f"positions): median {sci(inv['median'])}, mean {sci(inv['mean'])}, max {sci(inv['max'])}.")


def render_batch_scoring(r: dict) -> str:
    c, m = r["config"], r["metrics"]
    low = m["targets"]["throughput_ratio_min"]
    head = (f"{c['model']}: {c['texts']} texts of about {c['bytes_each']} bytes "
            f"({', '.join(f'{n} from {f}' for f, n in c['files'].items())}), each scored as a whole document, "
            f"exact and plain timed in the same process ({'quick' if c.get('quick') else 'full'} run, "
            f"{c['threads']} thread{'s' * (c['threads'] > 1)}, {c['device']}).\n\n")
    rows = []
    for batch, run in m["batches"].items():
        ratio = run["throughput_ratio"]
        gap = run["plain_minus_exact_bits"]
        rows.append([batch, num(run["exact"]["bytes_per_second"], 1), num(run["plain"]["bytes_per_second"], 1),
                     num(ratio, 2), f"≥ {low:g}: {yes(ratio >= low)}",
                     f"{yes(run['exact_le_plain_every_text'], 'yes', 'no')} (min {sci(gap['min'])}, "
                     f"mean {num(gap['mean'], 2)})",
                     f"{num(run['exact']['bits_per_byte'], 4)} / {num(run['plain']['bits_per_byte'], 4)}"])
    body = table(["batch", "exact bytes/s", "plain bytes/s", "ratio", "target", "exact ≤ plain, every text "
                  "(plain − exact bits)", "bits/byte exact / plain"], rows)
    s = m["streaming_score_bytes"]
    fastest = max(run["exact"]["bytes_per_second"] for run in m["batches"].values())
    return (head + body + "\n\nExact ≤ plain holds to 1e-6 of a text's bits: float32 forwards batched "
            "differently round differently (a text that ends on a token boundary has exact ≈ plain)."
            + f"\n\nBefore: `bits_per_byte` streamed each text through `score_bytes`, a byte at a "
            f"time: {num(s['bytes_per_second'], 1)} bytes/s on the first {s['bytes']} bytes of one of these texts "
            f"in the same run, {num(fastest / s['bytes_per_second'], 0)}× slower than `score_texts`.")


def render_hat_cost(r: dict) -> str:
    c, m = r["config"], r["metrics"]
    head = (f"Tiny configs ({', '.join(f'`{v}`' for v in c['configs'].values())}), {c['rounds']} rounds × "
            f"{c['steps']} optimizer steps each (forward, backward, AdamW; batch and row length as configured), the "
            f"models alternating so that machine noise falls on all alike; {c['threads']} thread"
            f"{'s' * (c['threads'] > 1)}{', quick run' if c.get('quick') else ''}. Analytic FLOPs: 6 × the "
            f"parameters each byte passes through (embeddings out), at {num(m['bytes_per_word'], 2)} bytes per word "
            f"(HAT), {num(m['flexitokens_bytes_per_segment'], 2)} bytes per segment (FLEXITOKENS, as it cut in "
            f"these steps) and {num(m['bytes_per_token'], 2)} bytes per token (TokenLM).\n\n")
    rows = [[name, f"{v['params'] / 1e6:.2f}M", f"{v['bytes_per_second']:.0f}", num(v["flops_per_byte"] / 1e6, 2),
             num(v["gflops_per_second"], 1)] for name, v in m["models"].items()]
    body = table(["model", "params", "train bytes/s", "MFLOP/byte", "GFLOP/s reached"], rows)
    t = m["targets"]
    lines = []
    for key, ratio in m["ratios"].items():
        target = t.get(f"{key}_min")
        lines.append(f"{key.replace('/', ' / ')} {num(ratio['ratio'], 2)}× (by FLOPs alone "
                     f"{num(ratio['flops_ratio'], 2)}×)" + (f", target ≥ {target:g}×: {yes(ratio['ratio'] >= target)}"
                                                            if target is not None else ""))
    return head + body + "\n\nThroughput ratios: " + "; ".join(lines) + "."


def render_ensemble_sampling(r: dict) -> str:
    c, m = r["config"], r["metrics"]
    low = m["targets"]["ratio_min"]
    slower = m["slower_member"]
    head = (f"{' + '.join(c['members'])}, {c['weights']} weights, temperature {c['temperature']:g}, {c['bytes']} bytes "
            f"after a {c['prompt_bytes']}-byte English prompt, {len(c['seeds'])} seed{'s' * (len(c['seeds']) > 1)}"
            f"{', quick run' if c.get('quick') else ''}; plain token sampling of each member in the same process "
            f"({listing({n: v['bytes_per_second'] for n, v in m['plain'].items()}, 1)} bytes/s).\n\n")
    rows = []
    for mode, v in m["modes"].items():
        n_bytes = sum(run["bytes"] for run in v["runs"])
        calls = {n: sum(run["forward_calls"][n] for run in v["runs"]) / max(n_bytes, 1) for n in m["plain"]}
        rows.append([mode, num(v["bytes_per_second"], 2), num(v["ratio_to_slower_member"], 3),
                     f"≥ {low:g}: {yes(v['ratio_to_slower_member'] >= low)}", listing(calls, 2)])
    return head + table(["pool", "bytes/s", f"ratio to {slower}'s plain sampling", "target",
                         "forward calls per byte"], rows)


def render_transplant(r: dict) -> str:
    c, m = r["config"], r["metrics"]
    files, methods, d = c["files"], c["methods"], c["defaults"]
    head = (f"{c['model']} given each target tokenizer; plain-tokenization bits per byte on the first "
            f"{c['eval_bytes']} bytes of each `../shared/data/*.valid.txt` ({', '.join(files)}); the original model "
            f"on the same bytes: {listing({k: v['bits_per_byte'] for k, v in m['original'].items()})}. Excess = "
            "bpb(new) − bpb(original), averaged over the files; lower is better. TokenAdapt defaults "
            f"T={d['temperature']:g}, k={d['top_k']}, w={d['weight']:g}, {c['aux']}"
            + ("" if m.get("complete", True) else " (partial run: not every target finished)") + ".\n\n")
    rows = []
    for target, e in m["targets"].items():
        ms = e["methods"]
        rows.append([target, e["vocab"], next(iter(ms.values()))["copied"], num(e["bytes_per_token"][files[0]], 2)]
                    + [num(ms[k]["mean_excess_bits_per_byte"]) if k in ms else "—" for k in methods]
                    + [num(e.get("tokenadapt_over_mean_excess"), 2),
                       {True: "yes", False: "no", None: "—"}[e.get("target_half_of_mean")],
                       {True: "yes", False: "no", None: "—"}[e.get("target_not_worse_than_parts")]])
    main = table(["target", "vocab", "rows copied", f"bytes/token ({files[0]})", *methods, "TokenAdapt / mean",
                  "≤ 0.5", "≤ local and global"], rows)
    met = m.get("targets_met", {})
    verdict = ("met on every target" if met and all(met.values()) else
               "not met on any target" if not any(met.values()) else
               "met on " + ", ".join(t for t, ok in met.items() if ok) + " only")
    out = head + main + f"\n\nTarget (TokenAdapt's excess ≤ ½ of mean's, FVT, on every target): **{verdict}**."
    if r["baseline"].get("reference"):
        out += f" Reference: {r['baseline']['reference']}."
    sweep = m.get("sweep_gpt2") or []
    if sweep:
        scored = [k for k, v in sweep[0].items() if isinstance(v, dict)]
        rows = [[", ".join(f"{k}={v:g}" for k, v in s.items() if not isinstance(v, dict) and k != "mean_excess_bits_per_byte")]
                + [num(s[f]["excess_bits_per_byte"]) for f in scored] + [num(s["mean_excess_bits_per_byte"])]
                for s in sweep]
        out += (f"\n\nTokenAdapt sweep on GPT-2 ({' + '.join(scored)}), one option changed at a time from the "
                "defaults; excess bits/byte:\n\n" + table(["option", *scored, "mean"], rows))
    return out + render_transplant_pairs(r)


ROW_NAMES = {"mean": "FVT-mean", "random": "random", "tokenadapt_ref": "TokenAdapt (reference code, peer)",
             "tokenadapt": "our TokenAdapt", "focus": "our FOCUS", "default": "our donor-free default",
             "mergekit_omp": "mergekit tokensurgeon OMP k=64 (peer)", "omp": "our OMP (donor)",
             "omp-aux": "our OMP in the aux embedder's space (donor-free)"}


def render_transplant_pairs(r: dict) -> str:
    c, m = r["config"].get("pairs"), r["metrics"].get("pairs")
    if not c or not m:
        return ""
    out = ("\n\nSide by side (`python bench/transplant.py --pairs`): bits per byte on the first bytes of each "
           "valid file; excess over the base model on the same bytes, and as a share of the same pair's FVT-mean "
           "excess (mean over files). Pairs measured in separate runs keep their own files and sizes.")
    for pair, e in m.items():
        if not isinstance(e, dict) or "rows" not in e:
            continue
        o = e["original"]
        files = list(o)  # each pair's own files: runs of different pairs may score different files
        head = (f"\n\n**({pair}) {e['base']} → {e['target']}'s tokenizer" + (f", donor {e['donor']}" if e["donor"] else "")
                + f"**: {e['new_rows']:,} new rows of {e['vocab']:,}"
                + (f" (run on a fixed sample of {e['sample']['rows']:,}: {e['sample']['rule']})" if e.get("sample") else "")
                + f"; original {listing({k: v['bits_per_byte'] for k, v in o.items()})} "
                  f"({next(iter(o.values()))['bytes']:,} bytes each).\n\n")
        rows = []
        for name, rec in e["rows"].items():
            label = ROW_NAMES.get(name, name)
            if "same_as" in rec:
                rows.append([label, f"= {ROW_NAMES.get(rec['same_as'], rec['same_as'])}"] + [""] * (len(files) + 3))
            elif "skipped" in rec:
                rows.append([label, f"skipped: {rec['skipped']}"] + [""] * (len(files) + 3))
            else:
                rows.append([label] + [num(rec[f]["bits_per_byte"]) for f in files]
                            + [num(rec["mean_excess_bits_per_byte"]), num(rec.get("over_mean_excess", {}).get("mean"), 2),
                               f"{rec.get('transplant_seconds', 0):.0f}", rec.get("start_mapping", "").replace("|", "\\|")])
        out += head + table(["row", *files, "mean excess", "/ FVT's", "seconds", "start token"], rows)
    return out


def render_transplant_finetune(r: dict) -> str:
    c, m = r["config"], r["metrics"]
    ft = c["finetune"]
    out = (f"{c['model']} → {c['target']} with {c['method']}, then {ft['steps']} steps of `finetune_embeddings` "
           f"({ft['matrices']}, {ft['trainable_rows']:,} trainable rows{', new rows only' if ft['train_new_rows_only'] else ''}; "
           f"batches of {ft['batch_size']} × {ft['block_size']} tokens, learning rate {ft['learning_rate']:g}, "
           f"{ft['schedule']}) on the {c['train_text']}: {ft['tokens_seen']:,} tokens in {ft['seconds']:.0f} s, "
           f"training loss {ft['loss_start']:.3f} → {ft['loss_end']:.3f}. Plain-tokenization bits per byte on the first "
           f"{c['eval_bytes']} bytes of each valid file; in brackets the excess over the original model on the same "
           "bytes:\n\n")
    rows = []
    for name in c["files"]:
        cell = lambda part: f"{num(m[part][name]['bits_per_byte'])} ({m[part][name]['excess_bits_per_byte']:+.3f})"
        rows.append([name, num(m["original"][name]["bits_per_byte"]), cell("transplant"), cell("finetuned"),
                     pct(m["excess_recovered"][name])])
    return out + table(["file", "original", "after the transplant", "after the finetune", "excess recovered"], rows)


def render_transplant_distill(r: dict) -> str:
    """LM-loss finetune vs ALM distillation from the same transplant, per step budget."""
    c, m = r["config"], r["metrics"]
    out = (f"{c['model']} → {c['target']} with {c['method']}, then, from that same transplant, the embeddings and "
           f"head trained for N steps on the {c['train_text']} (batches of {c['batch_size']} × {c['block_size']} "
           f"tokens, learning rate {c['learning_rate']:g}, same seed): by the next-token loss (`finetune_embeddings`) "
           "or by ALM distillation from the original model (`distill_transplant`). Plain-tokenization bits per byte on "
           f"the first {c['eval_bytes']:,} bytes of each valid file (original "
           f"{listing(m['original'])}; after the transplant {listing(m['transplant']['bits_per_byte'])}); share of "
           "the transplant's excess that each recovers"
           + ("" if m.get("complete", True) else " (partial run: not every row finished)") + ":\n\n")
    rows = []
    for steps in c["steps"]:
        for kind, label in (("finetune", "LM-loss finetune"), ("distill", "ALM distillation")):
            run = m["runs"].get(f"{kind}_{steps}")
            if run is None:
                rows.append([label, steps] + ["—"] * (2 * len(c["files"]) + 1))
                continue
            rows.append([label, steps] + [num(run["bits_per_byte"][f]) for f in c["files"]]
                        + [pct(run["excess_recovered"][f], sign=True) for f in c["files"]]
                        + [f"{run['train']['seconds']:.0f}"])
    header = ["recovery", "steps", *c["files"], *(f"recovered {f}" for f in c["files"]), "train seconds"]
    verdicts = []
    for steps, t in m.get("targets", {}).items():
        ratio = t.get("distill_over_finetune_recovered")
        if ratio:
            verdicts.append(f"at {steps} steps distillation recovers "
                            + ", ".join(f"{num(v, 2) if v is not None else '—'}× the finetune's share on {k}"
                                        for k, v in ratio.items())
                            + f" (target ≥ 3×: **{'met' if t.get('target_3x_met') else 'missed'}**)")
        if t.get("target_40pct_en_met") is not None:
            verdicts.append(f"≥ 40% of the English excess within {steps} steps: "
                            f"**{'met' if t['target_40pct_en_met'] else 'missed'}**")
    return out + table(header, rows) + ("\n\n" + "; ".join(verdicts) + "." if verdicts else "")


def cmd_transplant_finetune(c: dict | None) -> str:
    if c is None:
        return "python bench/transplant.py --finetune-steps 30"
    ft = c.get("finetune", {})
    parts = [f"python bench/transplant.py --finetune-steps {ft.get('steps', 'N')}"]
    for flag, key, default in (("--finetune-batch", "batch_size", 4), ("--finetune-block", "block_size", 128),
                               ("--finetune-lr", "learning_rate", 1e-4)):
        if ft.get(key, default) != default:
            parts.append(f"{flag} {ft[key]:g}")
    nbytes = re.search(r"first (\d+) bytes", c.get("train_text", ""))
    if nbytes and int(nbytes.group(1)) != 200_000:
        parts.append(f"--finetune-bytes {nbytes.group(1)}")
    if ft.get("train_new_rows_only"):
        parts.append("--finetune-new-only")
    return " ".join(parts)


def render_fim(r: dict) -> str:
    c, m = r["config"], r["metrics"]
    bpb, match, fewest = m["bits_per_byte"], m["exact_match"], m["fewest_bits_share"]
    t = m["targets"]
    short = (f" (the run's {c['minutes_budget']:g}-minute budget stopped it short of the {c['spans_drawn']} drawn)"
             if m.get("stopped_by_time_budget") else "")
    out = (f"(a) {c['model']}, a model without FIM tokens, left to right: {m['spans']} prompts from {c['data']}, each cut at a "
           f"random byte offset that is not a token boundary{short}. Bits on the true next {c['span_bytes']} bytes, "
           "every method charged to the same token boundary after them (see the script's docstring); exact match "
           f"of the greedy rest of the line (at most {c['line_max_bytes']} bytes).\n\n")
    rel = lambda k: pct(bpb[k] / bpb["uncut"] - 1, sign=True)
    exact_rel = pct(bpb["exact_vs_uncut_relative"], 2, sign=True).replace("-", "−")
    out += table(["method", f"bits/byte, next {c['span_bytes']} bytes", "vs uncut", "fewest bits (share of prompts)",
                  "exact match, rest of line"], [
        ["uncut prompt (reference)", num(bpb["uncut"], 4), "—", "—", "—"],
        ["naive (cut prompt tokenized as is)", num(bpb["naive"], 4), rel("naive"), pct(fewest["naive"]),
         pct(match["naive"])],
        [f"token healing (back off {c['healing_back_off']}, guidance-style)", num(bpb["healing"], 4), rel("healing"),
         pct(fewest["healing"]), pct(match["healing"])],
        ["**exact byte model**", f"**{num(bpb['exact'], 4)}**",
         f"**{exact_rel}** (target ±{pct(t['exact_vs_uncut_within'])})", f"**{pct(fewest['exact'])}**",
         f"**{pct(match['exact'])}**"],
    ])
    raw = m.get("raw_bits_per_byte")
    if raw:
        out += ("\n\nWithout the end correction (each method scored to the last of the bytes, as "
                f"`continuation_bits` gives them): {listing({k: raw[k] for k in ('naive', 'healing', 'exact', 'uncut')})}.")
    inv = m.get("cut_invariance") or {}
    if inv.get("spans_checked"):
        n = inv["spans_checked"]
        out += (f" Cut invariance checked on {n} prompt{'s' * (n > 1)}: the exact bits from the cut prompt and "
                f"from the uncut one agree to {sci(inv['max_abs_bits_difference'])} bits.")
    out += (" No cut fell inside a UTF-8 character (the Python files are almost all ASCII; the tests cover "
            "mid-character cuts)." if m.get("mid_character") == 0 else
            f" {m.get('mid_character')} of the cuts fell inside a UTF-8 character.")
    met_a = t["exact_beats_baselines_bits"] and t["exact_beats_baselines_match"]
    b = m.get("fim_with_suffix") or {"status": "not run"}
    if "status" in b:
        return out + (f"\n\n(b) Fill in the middle with a suffix: {b['status']}.\n\nTarget (exact within "
                      f"±{pct(t['exact_vs_uncut_within'])} of uncut, and beats healing and naive): "
                      f"(a) {yes(met_a and t['exact_vs_uncut_met'])}.")
    gemma = str(b.get("gemma3_270m_fim_tokens", ""))
    gemma = (" Gemma-3-270M's tokenizer has no FIM tokens (checked in the run)." if gemma.startswith("no")
             else "" if gemma.startswith("not checked") else f" Gemma-3-270M: {gemma}.")
    out += (f"\n\n(b) Fill in the middle with a suffix, HumanEval-infilling style: {b['middles']} single-line middles "
            f"({b['middle_bytes']} bytes) from the Python in `code.valid.txt` (prefix cut at a random offset inside the "
            "line, the middle is the rest of the line, the suffix the lines after, all inside one code block), on "
            f"the FIM-trained model at `{b['model']}` (see below).{gemma} Bits per byte of the true middle and its "
            "end, and exact match of the greedy middle line:\n\n")
    rows = []
    for order, label in (("spm", "SPM (cut prefix runs into the middle)"),
                         ("psm", "PSM (middle starts after `<MID>`: nothing cut, a control)")):
        res = b[order]
        digits = distinct_digits(list(res["bits_per_byte"].values()))
        for i, (method, bits) in enumerate(res["bits_per_byte"].items()):
            name = {"naive": "naive", "healing": "token healing", "exact": "exact byte model"}[method]
            cells = [num(bits, digits), pct(res["exact_match"][method])]
            if method == "exact" and order == "spm":
                name, cells = f"**{name}**", [f"**{x}**" for x in cells]
            rows.append([label if i == 0 else "", name, *cells])
    out += table(["order", "method", "bits/byte of the middle", "exact match"], rows)
    met_b = b.get("target_exact_beats_baselines_spm")
    return out + (f"\n\nTargets: (a) exact within ±{pct(t['exact_vs_uncut_within'])} of uncut "
                  f"{yes(t['exact_vs_uncut_met'])}; exact beats healing and naive on every other figure: "
                  f"(a) {yes(met_a)}, (b) SPM {yes(met_b)}.")


def render_ensemble(r: dict) -> str:
    c, m = r["config"], r["metrics"]
    members = list(c["members"])
    out = (f"Members: {'; '.join(f'{k}: {v}' for k, v in c['members'].items())}; pooled per byte by "
           f"`EnsembleByteModel`. Per language: {c['fit_bytes']} bytes to fit the weights, {c['chunks']} × "
           f"{c['chunk_bytes']} other bytes to evaluate (each chunk read from the start). Exact byte-level bits per "
           "byte with certified bounds (each member's next-byte distribution bounded to a total width of "
           f"{c['bounds_width_per_byte']:g} per byte, heaviest candidates checked first); members: lower bound, with "
           "their plain-tokenization bits per byte in brackets; ensembles: lower–upper.\n\n")
    pools = ("mixture_equal", "mixture_learned", "product_equal", "product_learned")
    rows = []
    for lang, row in m["languages"].items():
        cells = [lang] + [f"{num(row['members'][k]['lower'], 4)} ({num(row['members'][k]['plain_tokenization'], 4)})"
                          for k in members]
        for pool in pools:
            p = row[pool]
            cell = f"{num(p['lower'], 4)}–{num(p['upper'], 4)}"
            if pool.endswith("learned"):
                cell += " (w=" + "/".join(f"{w:.2f}" for w in p["weights"]) + ")"
            cells.append(cell)
        gain = row["relative_gain_vs_best_member"]
        cells.append(f"{pct(gain)} ({row['best_ensemble'].replace('_', ' ')})")
        rows.append(cells)
    out += table(["lang", *members, *(p.replace("_", ", ") for p in pools), "best ensemble vs best member"], rows)
    out += (f"\n\nTarget (best ensemble < best member on every language, the ensemble's upper bound against the "
            f"member's lower bound): {yes(m['target_met_every_language'])}.")
    if any(row[p]["upper"] == float("inf") for row in m["languages"].values() for p in pools):
        out += (" An upper bound of ∞: at some position a member's bounds still gave the observed byte a lower "
                "bound of 0; read the lower bound there.")
    return out


EMBEDDERS = {"fvt": "FVT (mean of pieces)", "tokenadapt": "TokenAdapt with MiniLM, en only",
             "hypernet": "a ZeTT hypernet"}


def render_dynamic(r: dict) -> str:
    c, m = r["config"], r["metrics"]
    langs = m["languages"]
    merges = [k for k in c["merges"] if k]
    out = (f"{c['model']} on the first {c['bytes_per_language'] / 1024:g} kB of each valid file "
           f"({', '.join(langs)}) in ~{c['chunk_bytes']}-byte chunks; each batch "
           f"({' or '.join(map(str, c['batch_sizes']))} chunks) learns its own merges inside {c['boundaries']}; the "
           "batch is scored in its own vocabulary (softmax over base + batch tokens; new tokens' rows from "
           + ", ".join(EMBEDDERS.get(e, e) for e in c["embedders"]) + "). Cells: fewer tokens / change in bits per "
           "byte, against the plain model (0 merges) on the same batches. Ceiling: the reduction if every word were "
           "one token.\n\n")
    rows = []
    order = {e: i for i, e in enumerate(c["embedders"])}
    for lang, res in langs.items():
        settings = sorted((k for k, v in res.items() if isinstance(v, list)),
                          key=lambda k: (int(k.split("_")[0][5:]), order.get(k.split("_", 1)[1], 99)))
        for key in settings:
            by = {row["merges"]: row for row in res[key]}
            size, emb = key.split("_", 1)
            plain = by.get(0, {}).get("bits_per_byte")
            rows.append([lang, f"batch {size[5:]}, {emb}", pct(res["ceiling"]), num(plain)]
                        + [f"{pct(by[k]['reduction'])} / {pct(by[k]['bpb_cost'], sign=True)}" if k in by else "—"
                           for k in merges])
    out += table(["lang", "batch, rows", "ceiling", "plain bpb"] + [f"{k} merges" if i == 0 else str(k)
                                                                    for i, k in enumerate(merges)], rows)
    t, best = m["target"], m.get("best_within_2pct", {})
    out += (f"\n\nTarget (≥ {pct(t['reduction'], 0)} shorter at ≤ {pct(t['bpb_cost'], 0)} bits-per-byte cost on en): "
            f"{yes(t['met_en'])}. Largest reduction within a {pct(t['bpb_cost'], 0)} cost: "
            + ", ".join(f"{lang} {pct(b['reduction'])} ({b['setting'].replace('_', ', ').replace('batch', 'batch ')}, "
                        f"{b['merges']} merges)" if b and b["merges"] else f"{lang} none" for lang, b in best.items()) + ".")
    return out + render_dynamic_prompt(r)


PROMPT_ROWS = {"fvt": "FVT", "tokenadapt": "TokenAdapt (MiniLM)", "hypernet": "hypernet"}


def render_dynamic_prompt(r: dict) -> str:
    """The leak-free prompt-compression table of bench/dynamic.py (metrics.prompt_compression); "" before it existed."""
    m, c = r["metrics"].get("prompt_compression"), r["config"].get("prompt_compression")
    if not m or not c:
        return ""
    langs, summary = m["languages"], m["summary"]
    budgets = [b for b in c["merges"] if b != 0]
    out = (f"\n\n**Prompt compression (no leak).** Merges learned on the prompt only (the first ~{c['prompt_bytes']} "
           f"bytes of {c['documents_per_language']} documents per language), the prompt read in its merged tokens, "
           f"and the next ~{c['continuation_bytes']} bytes scored in base tokens over the base softmax (new rows never "
           "price them), against the same continuation after the plainly tokenized prompt. Cells: fewer prompt "
           "tokens / change in the continuation's bits per byte"
           + (f"; {c['hypernet_skipped']}" if c.get("hypernet_skipped") else "") + ".\n\n")
    rows = []
    for lang, res in langs.items():
        for kind, kind_rows in res["rows"].items():
            by = {row["merges"]: row for row in kind_rows}
            rows.append([lang, PROMPT_ROWS.get(kind, kind), pct(res["ceiling"]), num(res["plain_continuation_bpb"])]
                        + [f"{pct(by[b]['reduction'])} / {pct(by[b]['bpb_cost'], sign=True)}" if b in by else "—"
                           for b in budgets])
    out += table(["lang", "rows", "ceiling", "plain bpb"]
                 + [f"{b} merges" if i == 0 else str(b) for i, b in enumerate(budgets)], rows)
    t, lines = summary["target"], []
    for kind in langs[next(iter(langs))]["rows"]:
        s, best = summary[kind], summary[kind]["best_budget"]
        got = (f"{pct(best['reduction'])} shorter at {pct(best['bpb_cost'], sign=True)} ({best['merges']} merges)"
               if best and best["merges"] != 0 else "no merge budget within the cost")
        en = s["best_within_cost"].get("en")
        en_line = f"; en {pct(en['reduction'])} of its {pct(en['ceiling'])} ceiling within the cost" if en else ""
        lines.append(f"{PROMPT_ROWS.get(kind, kind)}: {got} — {yes(s['met'])}{en_line}")
    out += (f"\n\nTarget (one budget for all: mean over {', '.join(summary['non_english'])} ≥ "
            f"{pct(t['reduction'], 0)} shorter prompts at ≤ {pct(t['bpb_cost'], 0)} mean continuation cost): "
            + "; ".join(lines) + ".")
    if c.get("command"):
        out += f" Prompt table: `{c['command']}`."
    return out


def render_ann(r: dict) -> str:
    c, m = r["config"], r["metrics"]
    cand = c["candidates_rescored"]
    cand = cand if isinstance(cand, dict) else {"every index": cand}
    common = max(set(cand.values()), key=list(cand.values()).count)
    others = ", ".join(f"{v} for {k}" for k, v in cand.items() if v != common)
    grams = ("the most frequent in-word runs of 2–4 of its tokens" if "ngram_rows_across_words" not in m else
             f"the most frequent runs of 2–4 of its tokens, {m['ngram_rows_in_words']:,} inside words (every distinct "
             f"one in the mined text) and {m['ngram_rows_across_words']:,} across words")
    out = (f"{c['model']}: its tokens + {grams} over "
           f"`../shared/data/*.txt`, {m['entries']:,} rows × {m['width']} (n-gram rows = {c['ngram_rows']}), "
           f"{m['queries']} queries = the model's final hidden states on valid text, one at a time; candidates "
           f"re-scored exactly ({common}{'; ' + others if others else ''}). Exact top-1 by a matrix product: "
           f"{m['exact_queries_per_s']:.1f} queries/s at the start of the run"
           + (f" ({m['exact_batch64_queries_per_s']:.1f} in batches of 64)" if "exact_batch64_queries_per_s" in m
              else "") + "; each row's ratio is against the exact rate timed beside it (with a date: a row kept "
           "from an earlier run, against that run's rate).\n\n")
    rows = []
    for x in m["indexes"]:
        setting = next((f"{k} {x[k]}" for k in ("ef_search", "nprobe") if k in x), "—")
        if x["index"] == "pieces":
            setting = "exact bound" if x["exact_bound"] else "heuristic (rows not piece means)"
        base = x.get("exact_queries_per_s", m["exact_queries_per_s"])
        rows.append([x["index"], setting, f"{x['build_seconds']:.0f}", f"{x['memory_mb']:.0f}", num(x["recall@1"]),
                     num(x["recall@10"]), f"{x['queries_per_s']:.0f}", f"{base:.1f}", f"{x['speedup_vs_exact']:.1f}×"
                     + (f" ({x['measured'][:10]})" if "measured" in x else "")])
    out += table(["index", "setting", "build s", "memory MB (index + rows)", "recall@1", "recall@10", "queries/s",
                  "exact queries/s beside it", "vs exact"], rows)
    piece = next((x for x in m["indexes"] if x["index"] == "pieces"), None)
    if piece is not None:
        n_base = m["entries"] - m["ngram_rows_in_words"] - m.get("ngram_rows_across_words", 0)
        out += (f"\n\n`pieces` is `PieceSearch`: one product over the {n_base:,} base rows gives every score (an "
                "n-gram row that is the mean of its pieces' rows scores the mean of their scores: a sparse product, no "
                "576-wide dot products), then the rows within float rounding of the k-th best are re-scored on their "
                "stored rows, so the answer is exact. On batches of 64 "
                f"queries: {piece['batch64_queries_per_s']:.0f} queries/s, "
                f"{piece['batch64_speedup_vs_exact_batch64']:.1f}× the exact product on the same batches.")
    t = m["target"]
    scale = "" if m["entries"] >= 1_000_000 else f", and this run is at {m['entries']:,} rows"
    out += (f"\n\nTarget (recall@1 ≥ {t['recall@1']:g} at ≥ {t['speedup']:g}× exact over 1M rows): {yes(t['met'])}"
            + (f" by {', '.join(t['met_by'])}" if t["met_by"] else "") + scale + ".")
    return out


def render_hat(r: dict) -> str:
    c, m = r["config"], r["metrics"]
    models, langs = m["models"], c["languages"]
    out = (f"Tiny configs ({', '.join(f'`{p}`' for p in c['configs'].values())}), {c['minutes_per_model']:g} minutes "
           f"of training each over {', '.join(langs)} (`../shared/data`: {c['train_bytes_per_language'] / 2**20:g} MB "
           f"of training and {c['valid_bytes_per_language'] / 1024:g} kB of validation text per language); validation "
           "bits per byte per language (TokenLM by its plain tokenization, an upper bound on its exact figure), its "
           f"mean, bpb at equal training FLOPs, mean Δbpb under noise ({c['noise']}), training and cached generation "
           "bytes/s.\n\n")
    rows = []
    for name, x in models.items():
        delta = sum(x["delta_bpb_noise"].values()) / len(x["delta_bpb_noise"])
        rows.append([name, f"{x['params'] / 1e6:.2f}M", x["steps"], num(x["bytes_per_token"], 2)]
                    + [num(x["valid_bpb"].get(lang)) for lang in langs]
                    + [num(x["valid_bpb_mean"]), num(x.get("valid_bpb_at_equal_flops")), f"{delta:+.3f}",
                       f"{x['train_bytes_per_s']:.0f}", f"{x['generation_bytes_per_s']:.0f}"])
    out += table(["model", "params", "steps", "bytes/position", *langs, "mean", "bpb at equal FLOPs",
                  "Δbpb under noise", "train bytes/s", "generate bytes/s"], rows)
    if m.get("backbone_bytes_per_word"):
        out += "\n\nHAT backbone shortening (bytes per word): " + listing(m["backbone_bytes_per_word"], 1) + "."
    t = m.get("targets")
    if t:
        h, tok = models["hat"], models["tokenlm"]
        mean_delta = lambda x: sum(x["delta_bpb_noise"].values()) / len(x["delta_bpb_noise"])
        out += (" Targets: HAT ≤ TokenLM on en and de at equal time — "
                f"{yes(t['hat_bpb_le_tokenlm_en_de'])} (HAT {num(h['valid_bpb']['en'])} / {num(h['valid_bpb']['de'])}"
                f" vs TokenLM {num(tok['valid_bpb']['en'])} / {num(tok['valid_bpb']['de'])}); HAT degrades less under "
                f"noise than TokenLM — {yes(t['hat_degrades_less_under_noise'])} ({mean_delta(h):+.3f} vs "
                f"{mean_delta(tok):+.3f})")
        if "hat_vs_bytelm_throughput" in m:
            out += (f"; HAT ≥ 1.8× ByteLM's training throughput — {yes(t['hat_throughput_ge_1_8x_bytelm'])}: "
                    f"{m['hat_vs_bytelm_throughput']:.2f}×")
        out += "."
    return out


def render_hypernet(r: dict) -> str:
    c, m = r["config"], r["metrics"]
    methods = c["methods"]
    out = (f"Bits per byte of the plain tokenization on the first {c['eval_bytes']} bytes of each "
           f"`../shared/data/*.valid.txt` ({', '.join(c['files'])}); excess = bpb(new) − bpb(original), averaged over "
           f"the files; lower is better. Methods: {', '.join(methods)} (device {c['device']})"
           + ("" if m.get("complete") else "; partial run: not every stage finished") + ".")
    for key, label in (("scale_a", "(a) a small Llama trained here"), ("scale_b", "(b)")):
        s = m.get(key)
        if not s:
            continue
        base = s.get("base")
        what = (f"{label} ({base['params'] / 1e6:.1f}M parameters, {base['vocab']}-token BPE, {base['steps']} steps)"
                if base else f"{label} {s.get('model', '')}")
        hn = s.get("hypernet_train", {})
        out += (f"\n\n{what}; hypernet {hn.get('steps', '?')} steps; the original model on the same bytes: "
                f"{listing({k: v['bits_per_byte'] for k, v in s['original'].items()})}.\n\n")
        rows = []
        for target, e in s["targets"].items():
            ms = e["methods"]
            rows.append([target, e["vocab"], next(iter(ms.values()))["copied"]]
                        + [num(ms[k]["mean_excess_bits_per_byte"]) if k in ms else "—" for k in methods]
                        + [f"{e['zett_excess_minus_tokenadapt']:+.3f}", "yes" if e["target_zett_le_tokenadapt"] else "no"])
        out += table(["target", "vocab", "rows copied", *methods, "zett − tokenadapt", "zett ≤ tokenadapt"], rows)
    met = m.get("scale_a", {}).get("targets_met")
    if met is not None:
        out += (f"\n\nTarget ({r['baseline'].get('target', 'scale (a): ZeTT excess ≤ TokenAdapt on every target')}): "
                f"{yes(bool(met) and all(met.values()))}.")
    return out


def render_flexitokens(r: dict) -> str:
    c, m = r["config"], r["metrics"]
    models, base, hb = m["models"], m.get("baselines", {}), m["hinge_vs_binomial"]
    new_lang = c["adapt_language"]
    first = next(iter(models.values()))
    out = (f"Tiny configs ({', '.join(f'`{p}`' for p in c['configs'].values())}: the same model, hinge vs binomial "
           f"boundary loss, the same per-language priors), {c['minutes_per_model']:g} minutes of training each over "
           f"{', '.join(c['languages'])} ({c['train_bytes_per_language'] / 2**20:g} MB of training and "
           f"{c['valid_bytes_per_language'] / 1024:g} kB of validation text per language, each row one language "
           f"with its prior), then {c['adapt_minutes_per_model']:g} minutes on {new_lang} (unseen, given the "
           "default prior). Validation bits per byte and compression (bytes per segment = 1 / boundary rate) "
           f"with {first['eval_boundaries']} boundaries; HAT's words and the TokenLM's BPE on the same validation "
           "text for comparison (bytes per backbone position).\n\n")
    out += table(["model", "params", "steps", "train bytes/s", "mean bpb", "bytes/segment, all languages"],
                 [[k, f"{x['params'] / 1e6:.2f}M", x["steps"], f"{x['train_bytes_per_s']:.0f}",
                   num(x["valid_bpb_mean"]), num(x["bytes_per_segment_overall"], 2)] for k, x in models.items()])
    rows = []
    for lang in c["languages"]:
        prior = first["priors"].get(lang)
        cells = [lang, f"{prior[0]:g}" if prior else "—"]
        for x in models.values():
            v = x["valid"].get(lang, {})
            cells += [num(v.get("bpb")), num(v.get("bytes_per_segment"), 2)]
        cells += [num(base.get("hat_bytes_per_word", {}).get(lang), 2),
                  num(base.get("tokenlm_bytes_per_token", {}).get(lang), 2)]
        rows.append(cells)
    header = ["lang", "prior α"] + [h for k in models for h in (f"{k} bpb", f"{k} bytes/segment")]
    out += "\n\n" + table(header + ["HAT bytes/word", "TokenLM bytes/token"], rows)
    rows = []
    for k, x in models.items():
        a = x["adaptation"]
        after = a["phase1_languages_after"]
        forgetting = sum(v["bpb"] for v in after.values()) / len(after) - x["valid_bpb_mean"]
        rows.append([k, a["steps"], f"{a['prior'][0]:g}", f"{num(a['before']['bpb'])} → {num(a['after']['bpb'])}",
                     f"{num(a['before']['bytes_per_segment'], 2)} → {num(a['after']['bytes_per_segment'], 2)}",
                     pct(a["relative_compression_shift"], sign=True), f"{num(a['after']['boundary_rate'])}",
                     f"{forgetting:+.3f}"])
    out += (f"\n\nAdaptation to {new_lang}:\n\n"
            + table(["model", "steps", "prior α", f"{new_lang} bpb", f"{new_lang} bytes/segment", "compression shift",
                     "boundary rate after", "Δ mean bpb, phase-1 languages"], rows))
    t, order = m["targets"], m.get("prior_order", {})
    out += ("\n\nTargets: hinge bpb within 0.02 of binomial at ≥ 5% more compression — "
            f"{yes(t['hinge_bpb_within_0_02_of_binomial_at_5pct_more_compression'])} (Δbpb "
            f"{hb['bpb_diff_mean']:+.3f}, compression {hb['compression_ratio_overall']:.3f}×); compression follows the "
            f"priors by language — {yes(t['compression_follows_priors_by_language'])} ("
            + ", ".join(f"{k} {pct(v['fraction_of_pairs'], 0)} of pairs" for k, v in order.items())
            + f"); on {new_lang} the hinge model's compression moves more than the binomial's, whose rate stays "
              f"within 10% of its prior — {yes(t['hinge_compression_shifts_binomial_pinned_on_new_language'])}.")
    examples = models.get("hinge", first).get("segment_examples")
    if examples:
        text = "\n".join(f"{lang}: {ex}" for lang, ex in examples.items()).replace("```", "`` `")
        out += f"\n\nThe hinge model's boundaries (`|` before each segment) on the start of each validation text:\n\n```text\n{text}\n```"
    return out


def cmd_flexitokens(c: dict | None) -> str:
    if c is None:
        return "OMP_NUM_THREADS=2 python bench/flexitokens.py --minutes 7 --threads 2"
    threads = c.get("torch_threads")
    command = script("flexitokens", c, (("--minutes", "minutes_per_model", 7.0, 0.15),
                                        ("--adapt-language", "adapt_language", "es", "es")),
                     prefix=f"OMP_NUM_THREADS={threads} " if threads else "")
    adapt = c.get("adapt_minutes_per_model")
    if not c.get("quick") and adapt is not None and adapt != c.get("minutes_per_model", 7.0) / 2:
        command += f" --adapt-minutes {adapt:g}"
    return command + (f" --threads {threads}" if threads else "")


# name -> (renderer, command from the record's config (None: the full run), plot alt text or None)
RESULTS: dict[str, tuple[Callable[[dict], str], Callable[[dict | None], str], str | None]] = {
    "audit": (render_audit, cmd_audit, None),
    "exact_sampling": (render_exact_sampling, lambda c: script("exact_sampling", c), None),
    "batch_scoring": (render_batch_scoring,
                      lambda c: script("batch_scoring", c, (("--batch", "batch_sizes", [8, 32], [2, 4]),
                                                            ("--device", "device", "cpu", "cpu"))), None),
    "transplant": (render_transplant, lambda c: script("transplant", c), None),
    "transplant_finetune": (render_transplant_finetune, cmd_transplant_finetune, None),
    "transplant_distill": (render_transplant_distill,
                           lambda c: script("distill", c) + (f" --steps {' '.join(map(str, c['steps']))}"
                                                             if c and c.get("steps") != [100] else ""), None),
    "hypernet": (render_hypernet, cmd_hypernet, None),
    "fim": (render_fim, cmd_fim, None),
    "ensemble": (render_ensemble, cmd_ensemble, None),
    "ensemble_sampling": (render_ensemble_sampling,
                          lambda c: script("ensemble_sampling", c, (("--bytes", "bytes", 200, 24),
                                                                    ("--seeds", "seeds", [0, 1], [0]))), None),
    "dynamic": (render_dynamic, cmd_dynamic, "reduction and cost"),
    "ann": (render_ann, cmd_ann, "recall vs speed"),
    "hat": (render_hat, cmd_hat, "validation bpb vs wall-clock"),
    "hat_cost": (render_hat_cost, lambda c: script("hat_cost", c, (("--steps", "steps", 6, 2),
                                                                    ("--rounds", "rounds", 3, 2))), None),
    "flexitokens": (render_flexitokens, cmd_flexitokens, "boundary rate vs step and compression"),
}
