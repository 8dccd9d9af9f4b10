"""Run the reference TokenAdapt (Tinycompany-AI/tokenadapt, Apache-2.0) and write its converted model locally.

    runs/peers/tokenadapt-venv/bin/python bench/peers/tokenadapt_ref.py SRC MODEL NEW_TOK AUX OUT
        [--temperature 0.3 --top-k 3 --weight 0.3 --threshold 0.0] [--only-ids FILE]

Runs in its own venv (never the project's). SRC is the reference's `src/`
folder (a checkout outside git, e.g. runs/peers/tokenadapt/src); MODEL and
NEW_TOK are HF folders, AUX the auxiliary embedder's folder (the benchmark
passes all-MiniLM-L6-v2, as ours uses; the reference's default,
nomic-embed-text-v2-moe, is not installable offline). The steps are the
reference `transplant.py`'s `main()` in its order, calling its own functions
(cache_embeddings, build_faiss_index, transplant_tied/untied_embeddings, the
config clean-up), with three changes that do not touch the rows it computes:
the model is saved with `save_pretrained` instead of `push_to_hub`; the
embedding cache is kept in memory instead of a JSON file (262k x 384 floats
as JSON is ~2 GB); `--only-ids` (JSON list of new ids) restricts the unique
tokens it initialises to those ids (the benchmark's sampled pair; the others
keep the reference's random N(mean, std) rows, for the benchmark to fill).
Writes OUT/peer_report.json: seconds, shared/unique counts, options.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("model")
    parser.add_argument("new_tokenizer")
    parser.add_argument("aux")
    parser.add_argument("out", type=Path)
    parser.add_argument("--temperature", type=float, default=0.3)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--weight", type=float, default=0.3)
    parser.add_argument("--threshold", type=float, default=0.0)
    parser.add_argument("--multiple-of", type=int, default=128, help="the reference's padding (default 128)")
    parser.add_argument("--batch-size", type=int, default=16, help="aux embedding batch (reference default 16)")
    parser.add_argument("--only-ids", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(args.src))

    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    import transplant as ref  # the reference's src/transplant.py (its main() pushes to the hub; not called)
    from cache import cache_embeddings
    from tied import transplant_tied_embeddings
    from untied import transplant_untied_embeddings

    t0 = time.perf_counter()
    dtype = torch.float32  # the reference's default (-d fp32)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype)  # on the CPU (the reference: device_map="cpu")
    old_generation_config = model.generation_config
    old_tokenizer = AutoTokenizer.from_pretrained(args.model)
    new_tokenizer = AutoTokenizer.from_pretrained(args.new_tokenizer)
    embed_model = AutoModel.from_pretrained(args.aux).to("cpu")
    embed_tokenizer = AutoTokenizer.from_pretrained(args.aux)
    embed_dim = embed_model.config.hidden_size

    old_vocab, new_vocab = old_tokenizer.get_vocab(), new_tokenizer.get_vocab()
    shared_vocab = list(set(new_vocab) & set(old_vocab))
    unique_tokens = set(new_vocab) - set(shared_vocab)
    n_unique_all = len(unique_tokens)
    if args.only_ids:
        only = set(json.loads(args.only_ids.read_text()))
        unique_tokens = {t for t in unique_tokens if new_vocab[t] in only}
    print(f"shared {len(shared_vocab)}, unique {n_unique_all}, initialised here {len(unique_tokens)}", flush=True)

    cache: dict = {}
    full = [new_tokenizer.decode([new_vocab[t]]) for t in unique_tokens]
    cache = cache_embeddings(embed_model, embed_tokenizer, full, "cpu", cache, batch_size=args.batch_size)
    full_cache = {t: cache[t] for t in full if t in cache}
    subtokens = set()
    for t in unique_tokens:
        decoded = new_tokenizer.decode([new_vocab[t]])
        subtokens.update(old_tokenizer.decode([i]) for i in old_tokenizer.encode(decoded, add_special_tokens=False))
    cache = cache_embeddings(embed_model, embed_tokenizer, list(subtokens), "cpu", cache, batch_size=args.batch_size)
    sub_cache = {t: cache[t] for t in subtokens if t in cache}
    decoded_old = {tok: old_tokenizer.decode([i]) for tok, i in old_vocab.items()}
    cache = cache_embeddings(embed_model, embed_tokenizer, [d for d in decoded_old.values() if d not in cache],
                             "cpu", cache, batch_size=args.batch_size)
    index_vectors = {tok: cache[d] for tok, d in decoded_old.items() if d in cache}
    faiss_index, index_to_token = ref.build_faiss_index(index_vectors, embed_dim)
    weight = args.weight if faiss_index is not None else 0.0

    tied = getattr(model.config, "tie_word_embeddings", False)
    if not tied:
        out_emb = model.get_output_embeddings()
        tied = out_emb is None or model.get_input_embeddings().weight is out_emb.weight
    kwargs = dict(model=model, new_tokenizer=new_tokenizer, shared_vocab=shared_vocab, unique_tokens=unique_tokens,
                  full_token_embeds_cache=full_cache, subtoken_embeds_cache=sub_cache, old_vocab=old_vocab,
                  new_vocab=new_vocab, old_tokenizer=old_tokenizer, data_type=dtype, temperature=args.temperature,
                  pad_to_multiple_of=args.multiple_of, faiss_index=faiss_index, index_to_token=index_to_token,
                  k=args.top_k, global_weight=weight, threshold=args.threshold)
    torch.manual_seed(0)  # its random rows (N(mean, std)) reproducible
    (transplant_tied_embeddings if tied else transplant_untied_embeddings)(**kwargs)

    # the reference's config clean-up, as in its main()
    eos_id, bos_id, pad_id = new_tokenizer.eos_token_id, new_tokenizer.bos_token_id, new_tokenizer.pad_token_id
    pad_id = eos_id if pad_id is None else pad_id
    eos_id = bos_id if eos_id is None else eos_id
    bos_id = eos_id if bos_id is None else bos_id
    pad_id = bos_id if pad_id is None else pad_id
    updates = {k: v for k, v in (("pad_token_id", pad_id), ("eos_token_id", eos_id), ("bos_token_id", bos_id))
               if v is not None}
    model.config.update(updates)
    if old_generation_config:
        model.generation_config = old_generation_config
        model.generation_config.update(**updates)
    seconds = time.perf_counter() - t0
    model.save_pretrained(args.out)
    new_tokenizer.save_pretrained(args.out)
    report = {"tool": "tokenadapt (reference)", "seconds": seconds, "shared_by_string": len(shared_vocab),
              "unique": n_unique_all, "initialised": len(unique_tokens), "tied": bool(tied),
              "options": {"temperature": args.temperature, "top_k": args.top_k, "weight": args.weight,
                          "threshold": args.threshold, "multiple_of": args.multiple_of, "aux": args.aux},
              "sample": None if not args.only_ids else len(json.loads(args.only_ids.read_text())),
              "torch_threads": torch.get_num_threads()}
    (args.out / "peer_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
