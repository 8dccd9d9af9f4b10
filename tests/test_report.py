"""bench/report.py: renderers turn records into the expected rows, the README round trip is stable, --check bites.

The last test runs `report.py --check` on the repository itself: a README whose
numbers differ from bench/results/*.json (or whose CLI reference differs from
the parser) fails it. Fix with `python bench/report.py` (`make report`).
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)
T = report.tables

MACHINE = {"platform": "Linux-6.1-x86_64", "python": "3.11", "cpus": 2, "torch": "2.13.0+cpu", "cuda": None}


def record(name: str, config: dict, metrics: dict, baseline: dict | None = None) -> dict:
    return {"name": name, "date": "2026-01-02T03:04:05+00:00", "machine": MACHINE, "config": config,
            "metrics": metrics, "baseline": baseline or {}}


def write(folder: Path, rec: dict) -> Path:
    path = folder / f"{rec['name']}.json"
    path.write_text(json.dumps(rec))
    return path


def audit_record(bpt_en: float = 3.6129) -> dict:
    texts = lambda en: [{"name": "en", "bytes_per_token": en}, {"name": "ja", "bytes_per_token": 2.0963}]
    return record("audit", {"tokenizers": ["gpt2", "mistral"],
                            "texts": {"en": "/d/en.valid.txt", "ja": "/d/ja.valid.txt"}}, {
        "gpt2": {"family": "byte_bpe", "size": 50257, "unreachable": 0, "duplicate_ids": 0, "texts": texts(bpt_en)},
        "mistral": {"family": "sentencepiece", "size": 32000, "unreachable": 125, "duplicate_ids": 250,
                    "texts": texts(3.6876)},
    })


# -- formatting ------------------------------------------------------------------------------------------


def test_number_formats_worked_examples():
    assert T.num(1.23456) == "1.235" and T.num(float("inf")) == "∞" and T.num(None) == "—"
    assert T.pct(0.0532) == "5.3%" and T.pct(-0.0912, sign=True) == "-9.1%" and T.pct(0.021, sign=True) == "+2.1%"
    assert T.sci(0.00015488) == "1.5e-04" and T.sci(0.0122457, 2) == "1.22e-02"
    assert T.distinct_digits([2.7961777, 2.7960565]) == 4  # 2.796 twice at 3 decimals
    assert T.distinct_digits([2.775, 2.472]) == 3


# -- renderers on small synthetic records --------------------------------------------------------------


def test_audit_rows_and_default_command():
    body = T.render_audit(audit_record())
    assert "| tokenizer | family | vocab | en | ja | unreachable | duplicates |" in body
    assert "| gpt2 | byte_bpe | 50257 | 3.61 | 2.10 | 0 | 0 |" in body
    assert "| mistral | sentencepiece | 32000 | 3.69 | 2.10 | 125 | 250 |" in body
    assert T.cmd_audit(audit_record()["config"]) == "tokenshift audit gpt2 mistral --json bench/results/audit.json"


def test_exact_sampling_rows_and_targets():
    m = {"exact_bytes_per_second": 20.15, "token_bytes_per_second": 34.71, "throughput_ratio": 0.5804,
         "exact_forward_calls_per_byte": 0.38194, "token_forward_calls_per_byte": 0.39076,
         "forward_calls_ratio": 0.9774, "targets": {"forward_calls_ratio_max": 1.2, "throughput_ratio_min": 0.7},
         "scoring": {"en": {"exact_bits_per_byte": 1.2272, "plain_bits_per_byte": 1.23945,
                            "difference_bits_per_byte": 0.0122457}},
         "invalid_mass": {"count": 24, "mean": 0.00278, "max": 0.0393, "median": 0.000154}}
    c = {"model": "m", "quick": False, "generated_bytes": 240, "scored_bytes": 1200, "prompt_bytes": 400,
         "temperature": 1.0, "seeds": [0, 1, 2]}
    body = T.render_exact_sampling(record("exact_sampling", c, m))
    assert "| bytes/s | 20.15 | 34.71 | 0.580 | ≥ 0.7: **not met** |" in body
    assert "| forward calls / byte | 0.382 | 0.391 | 0.98 | ≤ 1.2: **met** |" in body
    assert "| en | 1.2272 | 1.2394 | 1.22e-02 |" in body
    assert "median 1.5e-04, mean 2.8e-03, max 3.9e-02" in body
    assert T.RESULTS["exact_sampling"][1]({**c, "quick": True}) == "python bench/exact_sampling.py --quick"


def _transplant_scores(excess: float) -> dict:
    return {"en": {"excess_bits_per_byte": excess}, "mean_excess_bits_per_byte": excess, "copied": 36960}


def test_transplant_rows_missing_method_and_sweep():
    c = {"model": "m", "aux": "MiniLM", "eval_bytes": 2048, "files": ["en"], "methods": ["tokenadapt", "mean", "focus"],
         "defaults": {"temperature": 0.3, "top_k": 3, "weight": 0.3}, "quick": True}
    m = {"original": {"en": {"bits_per_byte": 1.11965}}, "complete": True, "targets_met": {"gpt2": False},
         "targets": {"gpt2": {"vocab": 50257, "bytes_per_token": {"en": 3.5993},
                              "methods": {"tokenadapt": _transplant_scores(0.72337), "mean": _transplant_scores(0.99274)},
                              "tokenadapt_over_mean_excess": 0.72866, "target_half_of_mean": False}},
         "sweep_gpt2": [{"weight": 0.5, "en": {"excess_bits_per_byte": 0.2214}, "mean_excess_bits_per_byte": 0.2214}]}
    body = T.render_transplant(record("transplant", c, m))
    assert "the original model on the same bytes: en 1.120" in body
    assert "| gpt2 | 50257 | 36960 | 3.60 | 0.723 | 0.993 | — | 0.73 | no | — |" in body
    assert "**not met on any target**" in body
    assert "| weight=0.5 | 0.221 | 0.221 |" in body


def test_transplant_finetune_rows_and_command():
    ft = {"steps": 30, "matrices": "tied embeddings/head", "trainable_rows": 50257, "train_new_rows_only": False,
          "batch_size": 4, "block_size": 128, "learning_rate": 0.002, "schedule": "AdamW", "tokens_seen": 15360,
          "seconds": 95.2, "loss_start": 4.1234, "loss_end": 3.2}
    c = {"model": "m", "target": "gpt2", "method": "tokenadapt", "eval_bytes": 4096, "files": ["en"],
         "train_text": "first 100000 bytes of en.txt", "finetune": ft}
    bpb = lambda b, e: {"en": {"bits_per_byte": b, "excess_bits_per_byte": e}}
    m = {"original": {"en": {"bits_per_byte": 1.1197}}, "transplant": bpb(1.36, 0.2403),
         "finetuned": bpb(1.25, 0.1303), "excess_recovered": {"en": 0.4578}}
    body = T.render_transplant_finetune(record("transplant_finetune", c, m))
    assert "| en | 1.120 | 1.360 (+0.240) | 1.250 (+0.130) | 45.8% |" in body
    assert "training loss 4.123 → 3.200" in body and "15,360 tokens in 95 s" in body
    assert T.cmd_transplant_finetune(c) == ("python bench/transplant.py --finetune-steps 30 --finetune-lr 0.002 "
                                            "--finetune-bytes 100000")


def _fim_metrics(part_b: dict) -> dict:
    return {"spans": 252, "mid_character": 0, "stopped_by_time_budget": True,
            "bits_per_byte": {"naive": 1.39156, "healing": 0.91760, "exact": 0.85809, "uncut": 0.86035,
                              "exact_vs_uncut_relative": -0.0026183},
            "exact_match": {"naive": 0.0238, "healing": 0.1627, "exact": 0.18254},
            "fewest_bits_share": {"naive": 0.0079, "healing": 0.0278, "exact": 0.9643},
            "cut_invariance": {"spans_checked": 26, "max_abs_bits_difference": 5.465e-05},
            "targets": {"exact_vs_uncut_within": 0.005, "exact_vs_uncut_met": True, "exact_beats_baselines_bits": True,
                        "exact_beats_baselines_match": True},
            "fim_with_suffix": part_b}


FIM_CONFIG = {"model": "m", "quick": False, "spans_drawn": 300, "minutes_budget": 80.0, "seed": 0,
              "data": "code.valid.txt", "span_bytes": 32, "line_max_bytes": 48, "healing_back_off": 1, "threads": 1}


def test_fim_both_parts():
    b = {"model": "runs/fim-tokenlm", "middles": 300, "middle_bytes": 6583, "gemma3_270m_fim_tokens": "no: none",
         "spm": {"bits_per_byte": {"naive": 2.77546, "healing": 2.47201, "exact": 2.38425},
                 "exact_match": {"naive": 0.01333, "healing": 0.07, "exact": 0.09333}},
         "psm": {"bits_per_byte": {"naive": 2.7961777, "exact": 2.7960565},
                 "exact_match": {"naive": 0.00333, "exact": 0.0}},
         "target_exact_beats_baselines_spm": True}
    body = T.render_fim(record("fim", FIM_CONFIG, _fim_metrics(b)))
    assert "252 prompts" in body and "80-minute budget stopped it short of the 300 drawn" in body
    assert "| naive (cut prompt tokenized as is) | 1.3916 | +61.7% | 0.8% | 2.4% |" in body
    assert "| **exact byte model** | **0.8581** | **−0.26%** (target ±0.5%) | **96.4%** | **18.3%** |" in body
    assert "|  | **exact byte model** | **2.384** | **9.3%** |" in body
    assert "| naive | 2.7962 | 0.3% |" in body  # PSM figures agree to 3 decimals: shown with 4
    assert "has no FIM tokens" in body and "(b) SPM **met**" in body
    assert T.cmd_fim(FIM_CONFIG) == "python bench/fim.py --minutes 80"


def test_fim_part_b_not_run_says_so():
    body = T.render_fim(record("fim", FIM_CONFIG, _fim_metrics({"status": "not run (--part a)"})))
    assert "(b) Fill in the middle with a suffix: not run (--part a)." in body


def test_ensemble_rows_infinite_bound_and_weights():
    bound = lambda lo, hi, w=(1.0, 1.0): {"lower": lo, "upper": hi, "weights": list(w)}
    row = {"members": {"a": {"lower": 2.3302, "plain_tokenization": 2.3636},
                       "b": {"lower": 1.66263, "plain_tokenization": 1.70602}},
           "mixture_equal": bound(1.7403, 1.7417), "mixture_learned": bound(1.6426, 1.64506, (0.0764, 0.9236)),
           "product_equal": bound(1.703, float("inf")), "product_learned": bound(1.6277, float("inf"), (0.197, 0.803)),
           "best_ensemble": "mixture_learned", "relative_gain_vs_best_member": 0.010564}
    c = {"members": {"a": "model A", "b": "model B"}, "fit_bytes": 300, "chunks": 3, "chunk_bytes": 300,
         "bounds_width_per_byte": 0.001, "threads": 1, "quick": False}
    body = T.render_ensemble(record("ensemble", c, {"languages": {"de": row}, "target_met_every_language": True}))
    assert ("| de | 2.3302 (2.3636) | 1.6626 (1.7060) | 1.7403–1.7417 | 1.6426–1.6451 (w=0.08/0.92) | 1.7030–∞ "
            "| 1.6277–∞ (w=0.20/0.80) | 1.1% (mixture learned) |") in body
    assert "upper bound of ∞" in body and T.cmd_ensemble(c) == "python bench/ensemble.py"


def test_dynamic_rows_and_command_flags():
    rows = lambda costs: [{"merges": k, "reduction": r, "bits_per_byte": b, "bpb_cost": cost}
                          for k, r, b, cost in costs]
    lang = {"ceiling": 0.4316, "batch8_fvt": rows([(0, 0.0, 2.16106, 0.0), (8, 0.05776, 2.2248, 0.0296),
                                                    (1024, 0.4316, 1.96, -0.0912)])}
    c = {"model": "m", "bytes_per_language": 6144, "chunk_bytes": 512, "merges": [0, 8, 1024], "batch_sizes": [8],
         "embedders": ["fvt"], "quick": False, "boundaries": "words"}
    m = {"languages": {"de": lang}, "best_within_2pct": {"de": {"reduction": 0.4316, "setting": "batch8_fvt",
                                                               "merges": 1024}},
         "target": {"reduction": 0.25, "bpb_cost": 0.02, "met_en": False}}
    body = T.render_dynamic(record("dynamic", c, m))
    assert "| de | batch 8, fvt | 43.2% | 2.161 | 5.8% / +3.0% | 43.2% / -9.1% |" in body
    assert "de 43.2% (batch 8, fvt, 1024 merges)" in body and "**not met**" in body
    assert T.cmd_dynamic(c) == "python bench/dynamic.py --merges 0 8 1024 --bytes 6144"
    assert T.cmd_dynamic({**c, "quick": True, "merges": [0, 16, 128], "bytes_per_language": 2048}) == \
        "python bench/dynamic.py --quick"


def test_ann_rows_and_scale_note():
    idx = {"index": "ivf", "nprobe": 256, "build_seconds": 13.35, "memory_mb": 1323.0, "recall@1": 0.984,
           "recall@10": 0.9882, "queries_per_s": 32.28, "speedup_vs_exact": 1.901}
    c = {"model": "m", "entries": 300000, "queries": 500, "candidates_rescored": {"ivf": 64, "ivfpq": 256},
         "threads": 1, "quick": False, "ngram_rows": "means"}
    m = {"entries": 300000, "width": 576, "queries": 500, "exact_queries_per_s": 16.98, "indexes": [idx],
         "target": {"recall@1": 0.99, "speedup": 10, "met": False, "met_by": []}}
    body = T.render_ann(record("ann", c, m))
    assert "| ivf | nprobe 256 | 13 | 1323 | 0.984 | 0.988 | 32 | 17.0 | 1.9× |" in body  # the run's exact rate
    kept = dict(idx, exact_queries_per_s=6.35, measured="2026-11-30T20:30:00+00:00")  # --keep: its own run's rate
    m["indexes"] = [kept]
    assert "| 32 | 6.3 | 1.9× (2026-11-30) |" in T.render_ann(record("ann", c, m))
    assert "this run is at 300,000 rows" in body and "17.0 queries/s" in body
    assert T.cmd_ann(c) == "python bench/ann.py --entries 300000 --threads 1"


def test_hat_rows_and_targets():
    def model(bpb: float, delta: float, steps: int) -> dict:
        return {"params": 4330240, "steps": steps, "bytes_per_token": 1.0, "valid_bpb": {"en": bpb, "de": bpb},
                "valid_bpb_mean": bpb, "valid_bpb_at_equal_flops": bpb, "delta_bpb_noise": {"en": delta, "de": delta},
                "train_bytes_per_s": 5064.08, "generation_bytes_per_s": 253.9, "history": []}
    c = {"minutes_per_model": 7.0, "quick": False, "languages": ["en", "de"], "train_bytes_per_language": 2097152,
         "valid_bytes_per_language": 24576, "noise": "5% of letters", "configs": {"hat": "h.yaml", "tokenlm": "t.yaml"},
         "torch_threads": 2}
    m = {"models": {"hat": model(3.5996, 0.2413, 252), "tokenlm": model(2.2056, 0.6122, 810)},
         "backbone_bytes_per_word": {"en": 4.6439}, "targets": {"hat_bpb_le_tokenlm_en_de": False,
                                                              "hat_degrades_less_under_noise": True,
                                                              "hat_throughput_ge_1_8x_bytelm": False}}
    body = T.render_hat(record("hat", c, m))
    assert "| hat | 4.33M | 252 | 1.00 | 3.600 | 3.600 | 3.600 | 3.600 | +0.241 | 5064 | 254 |" in body
    assert "bytes per word): en 4.6." in body and "— **met** (+0.241 vs +0.612)" in body
    assert T.cmd_hat(c) == "OMP_NUM_THREADS=2 python bench/hat.py --minutes 7"


def test_hypernet_partial_run():
    methods = {k: {"mean_excess_bits_per_byte": v, "copied": 3000} for k, v in
               (("zett", 0.41), ("tokenadapt", 0.52), ("mean", 0.8), ("random", 2.0))}
    s = {"base": {"params": 7.2e6, "vocab": 8192, "steps": 900}, "hypernet_train": {"steps": 400},
         "original": {"en": {"bits_per_byte": 1.9}},
         "targets": {"gpt2": {"vocab": 50257, "methods": methods, "zett_excess_minus_tokenadapt": -0.11,
                              "target_zett_le_tokenadapt": True}},
         "targets_met": {"gpt2": True}}
    c = {"quick": False, "eval_bytes": 4096, "files": ["en"], "targets": ["gpt2"],
         "methods": ["zett", "tokenadapt", "mean", "random"], "device": "cpu"}
    body = T.render_hypernet(record("hypernet", c, {"scale_a": s, "complete": False}))
    assert "partial run" in body and "(7.2M parameters, 8192-token BPE, 900 steps); hypernet 400 steps" in body
    assert "| gpt2 | 50257 | 3000 | 0.410 | 0.520 | 0.800 | 2.000 | -0.110 | yes |" in body
    assert body.rstrip().endswith("**met**.")


def test_flexitokens_tables_targets_and_examples():
    lang = lambda bpb, bps: {"bpb": bpb, "boundary_rate": 1 / bps, "bytes_per_segment": bps}
    def model(bpb: float, bps: float, shift: float) -> dict:
        return {"params": 4.1e6, "steps": 200, "train_bytes_per_s": 3000.4, "eval_boundaries": "sampled",
                "priors": {"en": [0.25, 0.05], "ja": [0.4, 0.05]}, "valid": {"en": lang(bpb, bps), "ja": lang(3.0, 2.5)},
                "valid_bpb_mean": bpb, "bytes_per_segment_overall": bps,
                "adaptation": {"steps": 90, "prior": [0.25, 0.05], "before": lang(3.9, 3.8), "after": lang(3.5, 4.2),
                               "relative_compression_shift": shift, "phase1_languages_after": {"en": lang(bpb + 0.1, bps)}},
                "segment_examples": {"en": "|The |cat"}}
    c = {"minutes_per_model": 7.0, "adapt_minutes_per_model": 3.5, "quick": False, "languages": ["en", "ja"],
         "adapt_language": "es", "train_bytes_per_language": 2097152, "valid_bytes_per_language": 24576,
         "torch_threads": 2, "configs": {"hinge": "f.yaml", "binomial": "b.yaml"}}
    m = {"models": {"hinge": model(3.512, 4.1, 0.105), "binomial": model(3.5, 3.9, 0.01)},
         "baselines": {"hat_bytes_per_word": {"en": 4.64}, "tokenlm_bytes_per_token": {"en": 3.33}},
         "hinge_vs_binomial": {"bpb_diff_mean": 0.012, "compression_ratio_overall": 1.0513},
         "prior_order": {"hinge": {"fraction_of_pairs": 1.0}, "binomial": {"fraction_of_pairs": 0.5}},
         "targets": {"hinge_bpb_within_0_02_of_binomial_at_5pct_more_compression": True,
                     "compression_follows_priors_by_language": False,
                     "hinge_compression_shifts_binomial_pinned_on_new_language": True}}
    body = T.render_flexitokens(record("flexitokens", c, m))
    assert "| hinge | 4.10M | 200 | 3000 | 3.512 | 4.10 |" in body
    assert "| en | 0.25 | 3.512 | 4.10 | 3.500 | 3.90 | 4.64 | 3.33 |" in body
    assert "| ja | 0.4 | 3.000 | 2.50 | 3.000 | 2.50 | — | — |" in body
    assert "| hinge | 90 | 0.25 | 3.900 → 3.500 | 3.80 → 4.20 | +10.5% | 0.238 | +0.100 |" in body
    assert "**met** (Δbpb +0.012, compression 1.051×)" in body and "binomial 50% of pairs" in body
    assert "en: |The |cat" in body
    assert T.cmd_flexitokens(c) == "OMP_NUM_THREADS=2 python bench/flexitokens.py --threads 2"
    assert T.cmd_flexitokens({**c, "minutes_per_model": 20.0, "adapt_minutes_per_model": 5.0}) == \
        "OMP_NUM_THREADS=2 python bench/flexitokens.py --minutes 20 --adapt-minutes 5 --threads 2"


# -- the README round trip ---------------------------------------------------------------------------------

README = """# title

<!-- results:audit -->
old table
<!-- /results:audit -->

hand-written prose 1.23

<!-- results:hat -->
stale
<!-- /results:hat -->

<!-- results:someone_elses -->
kept as is
<!-- /results:someone_elses -->

<!-- cli -->
<!-- /cli -->
"""


def test_update_is_idempotent_and_leaves_unknown_markers(tmp_path):
    write(tmp_path, audit_record())
    once = report.update(README, tmp_path, tmp_path)
    assert report.update(once, tmp_path, tmp_path) == once
    assert "| gpt2 | byte_bpe | 50257 | 3.61 | 2.10 | 0 | 0 |" in once and "old table" not in once
    assert "<!-- results:someone_elses -->\nkept as is\n<!-- /results:someone_elses -->" in once
    assert "hand-written prose 1.23" in once
    assert "<!-- results:hat -->\nNot run yet: `python bench/hat.py`\n<!-- /results:hat -->" in once
    assert "`tokenshift audit gpt2 mistral --json bench/results/audit.json` · 2026-01-02 03:04 UTC" in once


def test_the_stored_command_is_shown_else_the_rebuilt_one(tmp_path):
    write(tmp_path, {**audit_record(), "command": "tokenshift audit gpt2 --text 'my notes.txt' --json a.json"})
    body = report.render_section("audit", tmp_path, tmp_path)
    assert "<sub>`tokenshift audit gpt2 --text 'my notes.txt' --json a.json` · 2026-01-02 03:04 UTC" in body
    write(tmp_path, audit_record())  # written before records stored their command: rebuilt from the config
    body = report.render_section("audit", tmp_path, tmp_path)
    assert "<sub>`tokenshift audit gpt2 mistral --json bench/results/audit.json` · 2026-01-02 03:04 UTC" in body


def test_write_result_stores_the_command_and_chains_a_kept_record(tmp_path, monkeypatch):
    from tokenshift.results import write_result

    path = tmp_path / "fim.json"
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(sys, "argv", [str(ROOT / "bench" / "fim.py"), "--part", "a"])
    write_result(path, "fim", {}, {}, {})
    first = json.loads(path.read_text())
    assert first["command"] == "python bench/fim.py --part a"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(sys, "argv", ["bench/fim.py", "--part", "b", "--fim-model", "runs/my model"])
    write_result(path, "fim", {}, {}, {}, keeps=first)  # part (b) keeps part (a)'s figures
    both = json.loads(path.read_text())["command"]
    assert both == "python bench/fim.py --part a && OMP_NUM_THREADS=1 python bench/fim.py --part b --fim-model 'runs/my model'"
    write_result(path, "fim", {}, {}, {}, keeps=json.loads(path.read_text()))  # the same run saving again
    assert json.loads(path.read_text())["command"] == both
    write_result(path, "fim", {}, {}, {}, keeps={k: v for k, v in first.items() if k != "command"})
    assert "command" not in json.loads(path.read_text())  # kept from an older record: the report rebuilds it


def test_cli_section_has_every_command_usage():
    from tokenshift.cli import COMMANDS

    body = report.render_cli()
    assert body.startswith("```text\n$ tokenshift --help\nusage: tokenshift")
    for name in COMMANDS:
        assert f"usage: tokenshift {name}" in body


def test_check_detects_a_stale_table(tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    write(results, audit_record())
    readme = tmp_path / "README.md"
    readme.write_text(README)
    args = ["--results", str(results), "--readme", str(readme), "--no-plots"]
    assert report.main([*args, "--check"]) == 1  # the old table
    assert readme.read_text() == README  # --check writes nothing
    assert report.main(args) == 0 and report.main([*args, "--check"]) == 0
    write(results, audit_record(bpt_en=3.9))  # a new run changes one number
    assert report.main([*args, "--check"]) == 1
    assert "3.90" in capsys.readouterr().err


def test_unreadable_record_names_the_file(tmp_path):
    write(tmp_path, record("audit", {}, {"gpt2": {"texts": []}}))
    with pytest.raises(SystemExit, match="audit.json"):
        report.update(README, tmp_path, tmp_path)


def test_redraw_plots_from_json_and_warn_on_a_bad_record(tmp_path):
    (tmp_path / "ann.json").write_text((ROOT / "bench" / "results" / "ann.json").read_text())
    write(tmp_path, record("dynamic", {}, {"no languages": {}}))
    with pytest.warns(UserWarning, match="could not redraw .*dynamic.png"):
        drawn = report.redraw_plots(tmp_path)
    assert drawn == [tmp_path / "ann.png"]
    assert (tmp_path / "ann.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_repository_readme_matches_bench_results(capsys):
    """README tables == bench/results/*.json and CLI reference == parser; else run `python bench/report.py`."""
    code = report.main(["--check"])
    assert code == 0, capsys.readouterr().err
