"""FLEXITOKENS (hinge boundary loss) vs dynamic token pooling (binomial), same priors, equal wall-clock.

    OMP_NUM_THREADS=2 .venv/bin/python bench/flexitokens.py --minutes 7 --threads 2   # full run, 30-35 minutes
    OMP_NUM_THREADS=1 .venv/bin/python bench/flexitokens.py --quick --threads 1 --out /tmp/flexi_quick.json \\
        --plot /tmp/flexi_quick.png --save-dir /tmp/flexi_quick_models                  # smoke run, ~1.5 minutes

Full run, expected duration on the 2-core CPU with nothing else running: 2 models x `--minutes`
(7, as `bench/hat.py` gave HAT/ByteLM/TokenLM) of training, then 2 x `--adapt-minutes` (default
half of `--minutes`) of adaptation: 21 minutes, plus ~10 minutes of validation passes (not
counted in the training budgets), evaluations and the baselines' BPE: 30-35 minutes in all.
Writes `--out` (default `bench/results/flexitokens.json`), `--plot` (default
`bench/results/flexitokens.png`) and both trained models under `--save-dir` (default
`runs/bench-flexitokens/{hinge,binomial}`, for `tokenshift segment`).

Phase 1: `models/configs/flexitokens-tiny.yaml` (hinge) and `binomial-tiny.yaml` (the same model,
binomial loss, same per-language priors) train on `../shared/data` en, code, de, ru, ja (train
split, `--train-mb` per language; each row one language, tagged, so each document gets its own
prior) for `--minutes` each; the step budget comes from a timing of the first steps, so the
cosine schedule ends at the budget (as `bench/hat.py`). Reported per language on the validation
split (`--valid-kb`): bits per byte and compression (bytes per segment = 1 / boundary rate), with
the models' default eval boundaries (sampled with noise fixed per position) and, for reference,
thresholded. Baselines' bytes per backbone position on the same validation text: HAT's words
(`split_words`) and the TokenLM's BPE (trained as `TextData` trains it); `bench/results/hat.json`'s
figures are copied beside them when present.

Phase 2 (adaptation): both models continue on Spanish (`--adapt-language`, unseen in phase 1 and
without a prior of its own, so it gets the default, the first prior: en's) for `--adapt-minutes`.
Reported: Spanish bpb and compression before and after, and the phase-1 languages after
(forgetting). Boundary rate vs step per language (validation) is plotted for both phases.

Targets (issue 10), recorded as booleans: hinge bpb within 0.02 of binomial at >= 5% more
compression (means over languages); compression ordered by language as the priors are (a
smaller alpha compresses more) for both models; on the new language the hinge model's
compression moves more than the binomial's, and the binomial's rate stays within 10% of its prior.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import time
from pathlib import Path

import lightning as L
import torch
import yaml

from tokenshift.models.data import TextData
from tokenshift.models.flexitokens import FlexiTokensConfig
from tokenshift.models.lit import LN2, LitLM
from tokenshift.models.segment import render_text, segment
from tokenshift.models.splitter import split_words
from tokenshift.results import write_result

LANGS = ["en", "code", "de", "ru", "ja"]
ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "models" / "configs"
MODELS = {"hinge": "flexitokens-tiny", "binomial": "binomial-tiny"}


def _hat_bench():
    """bench/hat.py as a module (its step timing is shared, not copied)."""
    spec = importlib.util.spec_from_file_location("bench_hat", ROOT / "bench" / "hat.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def shipped(name: str) -> tuple[dict, dict, dict]:
    """(config init_args, LitLM options, data options) of `models/configs/<name>.yaml`."""
    spec = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    model = dict(spec["model"])
    return dict(model.pop("config")["init_args"]), model, spec["data"]


@torch.no_grad()
def evaluate(lit: LitLM, dm: TextData, eval_boundaries: str | None = None) -> dict[str, dict[str, float]]:
    """Per validation language: bits per byte, boundary rate, bytes per segment (eval mode).

    Leaves the global RNG alone (a DataLoader iterator draws a seed from it), so evaluating
    does not change the training noise that follows."""
    with torch.random.fork_rng():
        return _evaluate(lit, dm, eval_boundaries)


def _evaluate(lit: LitLM, dm: TextData, eval_boundaries: str | None) -> dict[str, dict[str, float]]:
    net = lit.net
    saved = net.config.eval_boundaries
    if eval_boundaries:
        net.config.eval_boundaries = eval_boundaries
    lit.set_language_names(dm.language_names)
    lit.eval()
    out = {}
    try:
        for lang, loader in zip(dm.valid_languages, dm.val_dataloader()):
            nats = n_bytes = k = n = 0.0
            for batch in loader:
                _, s, b, stats = lit._losses(batch)
                nats, n_bytes = nats + float(s), n_bytes + float(b)
                k, n = k + float(stats["boundaries"]), n + float(stats["bytes"])
            out[lang] = {"bpb": nats / LN2 / n_bytes, "boundary_rate": k / n,
                         "bytes_per_segment": n / k if k else None}  # None: no boundary at all
    finally:
        net.config.eval_boundaries = saved
        lit.train()
    return out


def fit(lit: LitLM, dm: TextData, minutes: float, hat, label: str) -> tuple[int, float]:
    """Train for about `minutes` of wall-clock (steps from a timing); returns (steps, training seconds)."""
    lit.set_language_names(dm.language_names)
    per_step = hat.step_seconds(lit, dm)
    max_steps = max(10, int(minutes * 60 / per_step))
    lit.hparams.warmup_steps = min(lit.hparams.warmup_steps, max_steps // 10)
    print(f"{label}: {per_step:.3f} s/step -> {max_steps} steps", flush=True)
    trainer = L.Trainer(max_steps=max_steps, max_time={"seconds": minutes * 60 * 2 + 60}, accelerator="cpu",
                        val_check_interval=max(5, max_steps // 10), check_val_every_n_epoch=None,
                        num_sanity_val_steps=0, gradient_clip_val=1.0, logger=False, enable_checkpointing=False,
                        enable_model_summary=False, enable_progress_bar=False)
    start = lit._elapsed
    trainer.fit(lit, datamodule=dm)
    if not lit.history or lit.history[-1]["step"] != trainer.global_step:
        trainer.validate(lit, datamodule=dm, verbose=False)
    return trainer.global_step, lit._elapsed - start


def baseline_compression(dm: TextData, vocab_size: int, tokenizer_bytes: int) -> dict[str, dict[str, float]]:
    """Bytes per backbone position of HAT (its words) and the TokenLM (a BPE trained as TextData trains it),
    on the same validation documents."""
    from tokenshift.models.data import take_bytes
    from tokenshift.models.tokenlm import train_tokenizer

    train, valid = dm.documents()
    cap = _hat_bench().shipped("hat")[0].max_word_bytes
    tok = train_tokenizer([d for docs in train.values() for d in take_bytes(docs, tokenizer_bytes)], vocab_size)
    out = {"hat_bytes_per_word": {}, "tokenlm_bytes_per_token": {}}
    for lang, docs in valid.items():
        raw = "\n\n".join(docs).encode()
        out["hat_bytes_per_word"][lang] = len(raw) / len(split_words(raw, cap))
        tokens = sum(len(tok.encode(d, add_special_tokens=False)) for d in docs)
        out["tokenlm_bytes_per_token"][lang] = sum(len(d.encode()) for d in docs) / tokens
    return out


def prior_order_holds(priors: dict[str, float], compression: dict[str, float]) -> tuple[bool, float]:
    """(all pairs ordered, fraction ordered): a language with a smaller α must compress more."""
    pairs = [(a, b) for a in compression for b in compression if priors[a] < priors[b] - 1e-12]
    good = sum(compression[a] > compression[b] for a, b in pairs)
    return good == len(pairs), good / max(len(pairs), 1)


def overall_bytes_per_segment(valid: dict) -> float | None:
    """Bytes per segment over all languages: 1 / mean boundary rate (each language is scored on the same
    number of bytes, so this is total bytes / total segments). A mean of the per-language bytes per segment
    would be ruled by one language with almost no boundaries."""
    rate = sum(v["boundary_rate"] for v in valid.values()) / len(valid)
    return 1 / rate if rate > 0 else None


def compare_models(results: dict) -> dict:
    """Hinge vs binomial: bpb and compression differences, the prior order per model, the issue's targets."""
    h, b = results["hinge"], results["binomial"]
    alphas = {lang: p[0] for lang, p in h["priors"].items()}
    comp = {k: {lang: v["bytes_per_segment"] for lang, v in results[k]["valid"].items()} for k in results}
    order = {k: prior_order_holds(alphas, comp[k]) for k in comp}
    per_lang = {lang: {"bpb_diff": h["valid"][lang]["bpb"] - b["valid"][lang]["bpb"],
                       "compression_ratio": comp["hinge"][lang] / comp["binomial"][lang]} for lang in comp["hinge"]}
    ratio = h["bytes_per_segment_overall"] / b["bytes_per_segment_overall"]
    bpb_diff = h["valid_bpb_mean"] - b["valid_bpb_mean"]
    ha, ba = h["adaptation"], b["adaptation"]
    alpha_new = ba["prior"][0]
    return {
        "hinge_vs_binomial": {"bpb_diff_mean": bpb_diff, "compression_ratio_overall": ratio, "per_language": per_lang},
        "prior_order": {k: {"all_pairs": v[0], "fraction_of_pairs": v[1]} for k, v in order.items()},
        "targets": {
            "hinge_bpb_within_0_02_of_binomial_at_5pct_more_compression": bpb_diff <= 0.02 and ratio >= 1.05,
            "compression_follows_priors_by_language": all(v[0] for v in order.values()),
            "hinge_compression_shifts_binomial_pinned_on_new_language": (
                abs(ha["relative_compression_shift"]) > abs(ba["relative_compression_shift"])
                and abs(ba["after"]["boundary_rate"] - alpha_new) <= 0.1 * alpha_new),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=7.0, help="phase-1 training wall-clock per model")
    parser.add_argument("--adapt-minutes", type=float, default=None, help="adaptation per model (default minutes/2)")
    parser.add_argument("--adapt-language", default="es", help="the unseen language of phase 2 (../shared/data name)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: seconds per model, small data")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--train-mb", type=float, default=2.0, help="training text per language, MB")
    parser.add_argument("--valid-kb", type=float, default=24.0, help="validation text per language, KB")
    parser.add_argument("--out", type=Path, default=Path("bench/results/flexitokens.json"))
    parser.add_argument("--plot", type=Path, default=Path("bench/results/flexitokens.png"))
    parser.add_argument("--save-dir", type=Path, default=Path("runs/bench-flexitokens"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    minutes = 0.15 if args.quick else args.minutes
    adapt_minutes = 0.1 if args.quick else (args.adapt_minutes if args.adapt_minutes is not None else minutes / 2)
    train_bytes = int((0.1 if args.quick else args.train_mb) * 2**20)
    valid_bytes = int((2 if args.quick else args.valid_kb) * 1024)
    hat = _hat_bench()

    init, opts, dopts = shipped(MODELS["hinge"])
    seq_len = 256 if args.quick else dopts["seq_len"]
    batch = 8 if args.quick else dopts["batch_size"]
    data_kw = dict(stream="bytes", seq_len=seq_len, batch_size=batch, train_bytes=train_bytes, valid_bytes=valid_bytes)
    dm = TextData(languages=LANGS, **data_kw)
    dm.setup("fit")
    adapt_dm = TextData(languages=[args.adapt_language], **data_kw)
    adapt_dm.setup("fit")

    results, histories, lits = {}, {}, {}
    for kind, name in MODELS.items():
        init, opts, _ = shipped(name)
        L.seed_everything(0)
        lit = LitLM(FlexiTokensConfig(**init), **opts)
        start = {"step": 0, "boundary_rate": {lang: v["boundary_rate"] for lang, v in evaluate(lit, dm).items()}}
        steps, seconds = fit(lit, dm, minutes, hat, kind)
        phase1 = evaluate(lit, dm)
        phase1_threshold = evaluate(lit, dm, "threshold")
        n_hist = len(lit.history)
        before = evaluate(lit, adapt_dm)[args.adapt_language]
        a_steps, a_seconds = fit(lit, adapt_dm, adapt_minutes, hat, f"{kind} on {args.adapt_language}")
        after = evaluate(lit, adapt_dm)[args.adapt_language]
        forgetting = evaluate(lit, dm)
        config = lit.net.config
        examples = {}
        for lang, docs in dm.documents()[1].items():
            text = docs[0].encode()[:120].decode("utf-8", "ignore")
            examples[lang] = render_text(segment(lit.net, text))
        (args.save_dir / kind).mkdir(parents=True, exist_ok=True)
        lit.net.save_pretrained(args.save_dir / kind)
        histories[kind] = {"phase1": [start, *lit.history[:n_hist]], "adapt": lit.history[n_hist:], "phase1_steps": steps}
        results[kind] = {
            "config": f"models/configs/{name}.yaml",
            "params": lit.net.num_params(),
            "priors": config.priors,
            "eval_boundaries": config.eval_boundaries,
            "steps": steps,
            "train_seconds": seconds,
            "train_bytes_per_s": lit.history[n_hist - 1]["seen_bytes"] / max(lit.history[n_hist - 1]["time_s"], 1e-9),
            "valid": phase1,
            "valid_thresholded": phase1_threshold,
            "valid_bpb_mean": sum(v["bpb"] for v in phase1.values()) / len(phase1),
            "bytes_per_segment_overall": overall_bytes_per_segment(phase1),
            "adaptation": {"language": args.adapt_language, "steps": a_steps, "train_seconds": a_seconds,
                           "prior": list(config.priors.values())[config.prior_index([args.adapt_language])[0]],
                           "before": before, "after": after,
                           "delta_bpb": after["bpb"] - before["bpb"],
                           "delta_bytes_per_segment": after["bytes_per_segment"] - before["bytes_per_segment"],
                           "relative_compression_shift": after["bytes_per_segment"] / before["bytes_per_segment"] - 1,
                           "phase1_languages_after": forgetting},
            "segment_examples": examples,
            "history": histories[kind],
        }
        lits[kind] = lit
        print(f"{kind}: bpb {results[kind]['valid_bpb_mean']:.3f}, "
              f"{results[kind]['bytes_per_segment_overall']:.2f} bytes/segment; {args.adapt_language}: "
              f"{before['bytes_per_segment']:.2f} -> {after['bytes_per_segment']:.2f} bytes/segment, "
              f"bpb {before['bpb']:.3f} -> {after['bpb']:.3f}", flush=True)

    vocab_size = yaml.safe_load((CONFIGS / "tokenlm-tiny.yaml").read_text())["data"].get("vocab_size", 4096)
    baselines = baseline_compression(dm, vocab_size, min(train_bytes, 1 << 20))
    hat_json = ROOT / "bench" / "results" / "hat.json"
    if hat_json.exists():
        import json

        m = json.loads(hat_json.read_text())["metrics"]
        baselines["from_hat_json"] = {"hat_bytes_per_word": m.get("backbone_bytes_per_word"),
                                      "tokenlm_bytes_per_token_all_languages":
                                      m.get("models", {}).get("tokenlm", {}).get("bytes_per_token")}

    metrics = {"models": results, "baselines": baselines, **compare_models(results)}
    alphas = {lang: p[0] for lang, p in results["hinge"]["priors"].items()}
    alpha_new = results["binomial"]["adaptation"]["prior"][0]
    comp = {k: {lang: v["bytes_per_segment"] for lang, v in results[k]["valid"].items()} for k in results}
    config = {"minutes_per_model": minutes, "adapt_minutes_per_model": adapt_minutes, "quick": args.quick,
              "languages": LANGS, "adapt_language": args.adapt_language, "train_bytes_per_language": train_bytes,
              "valid_bytes_per_language": valid_bytes, "seq_len": seq_len, "batch_size": batch,
              "torch_threads": torch.get_num_threads(), "configs": {k: f"models/configs/{v}.yaml"
                                                                    for k, v in MODELS.items()},
              "wall_seconds": time.perf_counter() - t_start}
    write_result(args.out, "flexitokens", config, metrics, {"model": "binomial (dynamic token pooling)"})
    plot(histories, alphas, args.adapt_language, alpha_new, comp, baselines, args.plot)
    print(f"targets: {metrics['targets']}")
    print(f"wrote {args.out} and {args.plot} in {time.perf_counter() - t_start:.0f} s")


def plot(histories: dict, alphas: dict[str, float], adapt_lang: str, alpha_new: float, comp: dict, baselines: dict,
         path: Path) -> None:
    """Boundary rate vs step per language (validation; phase 1, then adaptation after the dashed line) for each
    model, and bytes per backbone position per language for all four."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    colours = dict(zip([*LANGS, adapt_lang], plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, (kind, hist) in zip(axes, histories.items()):
        offset = hist["phase1_steps"]
        for lang in [*LANGS, adapt_lang]:
            pts = [(r["step"], r["boundary_rate"][lang]) for r in hist["phase1"] if lang in r.get("boundary_rate", {})]
            pts += [(offset + r["step"], r["boundary_rate"][lang]) for r in hist["adapt"]
                    if lang in r.get("boundary_rate", {})]
            if pts:
                ax.plot(*zip(*pts), marker=".", color=colours[lang], label=lang)
            alpha = alphas.get(lang, alpha_new)
            ax.axhline(alpha, color=colours[lang], linestyle=":", linewidth=0.8)
        ax.axvline(offset, color="#555", linestyle="--", linewidth=0.8)
        ax.set_title(f"{kind}: boundary rate (dotted: α; after dashed: {adapt_lang})")
        ax.set_xlabel("step")
        ax.set_ylabel("validation boundary rate")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    ax = axes[2]
    langs = list(comp["hinge"])
    width = 0.2
    series = [("hinge", comp["hinge"]), ("binomial", comp["binomial"]),
              ("HAT words", baselines["hat_bytes_per_word"]), ("TokenLM BPE", baselines["tokenlm_bytes_per_token"])]
    for i, (label, values) in enumerate(series):
        ax.bar([j + (i - 1.5) * width for j in range(len(langs))], [values.get(lang, math.nan) for lang in langs],
               width, label=label)
    ax.set_xticks(range(len(langs)), langs)
    ax.set_ylabel("bytes per backbone position")
    ax.set_title("compression (validation)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
