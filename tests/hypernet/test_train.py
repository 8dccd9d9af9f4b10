"""Hypernet training: identity warm-up, the LM loss path, the schedule, its inputs, and resuming a SIGKILLed run."""
from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tokenshift.bytelevel import ByteVocab
from tokenshift.common.packing import IGNORE
from tokenshift.hypernet.data import TextStream
from tokenshift.hypernet.train import (HyperNetModule, HyperNetTrainConfig, encode_batch, learning_rate_at,
                                       train_hypernet)

CONFIG = Path(__file__).resolve().parents[2] / "hypernet" / "configs" / "small.yaml"


def test_identity_warmup_reproduces_base_rows(base, corpus, tmp_path):
    model, tok = base
    hn = train_hypernet(model, tok, corpus, tmp_path, steps=500, identity_steps=500, identity_learning_rate=1e-2,
                        hidden_size=64, batch_size=2, progress=False)
    rows_in, rows_out = hn.predict_embeddings(tok, progress=False)
    ids = hn.base_ids()
    for pred, true in ((rows_in, model.model.embed_tokens.weight), (rows_out, model.lm_head.weight)):
        cos = torch.cosine_similarity(pred[ids], true[ids].detach(), dim=-1)
        assert cos.min() >= 0.99, (cos.min(), cos.mean())
    assert (tmp_path / "hypernet" / "model.safetensors").exists()  # exported when training ends
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert state and all(k.startswith("hypernet.") for k in state)  # the frozen base is never checkpointed


def test_lm_loss_is_the_base_models_loss_with_the_predicted_rows(base, corpus):
    """The training loss equals plain HF cross-entropy of a base copy whose matrices hold the predicted rows."""
    import copy

    model, tok = base
    module = HyperNetModule(model, tok, HyperNetTrainConfig(sampled_vocab_size=500, block_size=32, identity_steps=0,
                                                            queue_size=1))
    texts = [corpus[0][:300], corpus[1][100:400]]
    parts = module.lm_loss(texts, step=0)
    parts["lm"].backward()
    assert all(p.grad is not None for p in module.hypernet.head_in.parameters())
    assert all(p.grad is None for p in model.parameters())  # the base stays frozen

    module.sampler._queue.clear(), module.sampler._total.clear()  # rebuild the step's tokenizer independently
    module.sampler.push(texts)
    module.sampler.rng = np.random.default_rng([0, 0])  # the step's noise seed (seed 0, step 0)
    tok_s = module.sampler.sample()
    vocab = ByteVocab.from_tokenizer(tok_s)
    ids, _ = encode_batch(vocab, texts, 32, "cpu")
    with torch.no_grad():
        rows_in, rows_out = module.hypernet.embed([p or b"" for p in vocab.pieces])
        eot = tok.convert_tokens_to_ids("<|endoftext|>")
        rows_in[0], rows_out[0] = model.model.embed_tokens.weight[eot], model.lm_head.weight[eot]
        ref = copy.deepcopy(model)
        ref.resize_token_embeddings(len(vocab.pieces))
        ref.model.embed_tokens.weight.copy_(rows_in)
        ref.lm_head.weight.copy_(rows_out)
        labels = ids.clone()
        labels[labels < 0] = IGNORE
        expected = ref(input_ids=ids.clamp_min(0), attention_mask=(ids >= 0).long(), labels=labels).loss
    torch.testing.assert_close(parts["lm"].detach(), expected, rtol=1e-4, atol=1e-4)
    assert 0 < float(parts["overlap"]) < 1  # some sampled tokens are one base token: the lexical loss has targets


def test_files_train_as_the_same_texts_do(base, corpus, tmp_path):
    """`files=` trains on what the files hold, exactly as the same strings given as `texts=`."""
    model, tok = base
    (tmp_path / "train.txt").write_text("\n".join(corpus), encoding="utf-8")
    opts = dict(steps=3, identity_steps=1, sampled_vocab_size=500, hidden_size=32, block_size=32, queue_size=1,
                batch_size=2, text_chars=256, progress=False, accelerator="cpu")
    a = train_hypernet(model, tok, ["\n".join(corpus)], tmp_path / "a", **opts).state_dict()
    b = train_hypernet(model, tok, out_dir=tmp_path / "b", files=[tmp_path / "train.txt"], **opts).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bad_training_input_says_what_to_do(base, tmp_path):
    model, tok = base
    with pytest.raises(ValueError, match="pass texts="):
        train_hypernet(model, tok, out_dir=tmp_path)
    with pytest.raises(TypeError, match="texts= takes strings; pass file paths as files="):
        train_hypernet(model, tok, [tmp_path / "train.txt"], tmp_path)
    with pytest.raises(TypeError, match="unknown train_hypernet option.*lerning_rate"):
        train_hypernet(model, tok, ["some text"], tmp_path, lerning_rate=1e-3)
    with pytest.raises(ValueError, match="sampled_vocab_size must be > 256.*learning_rate must be > 0.*model.config"):
        HyperNetTrainConfig(sampled_vocab_size=100, learning_rate=0)


def test_text_stream_is_resumable_and_differs_by_rank():
    corpus = [f"line {i} of a document\n" * 20 for i in range(7)]
    stream = TextStream(corpus, batch_size=3, text_chars=40, seed=5)
    first = [b for _, b in zip(range(4), stream)]
    assert [b for _, b in zip(range(2), TextStream(corpus, 3, 40, 5, start=2))] == first[2:]
    other = TextStream(corpus, 3, 40, 5, rank=1)
    assert [other.batch(k) for k in range(4)] != first  # data parallel ranks train on different text
    assert TextStream(corpus, 3, 40, 5, rank=0).batch(1) == first[1]


def test_learning_rate_schedule_worked_example():
    """identity 10 steps to 1e-2, then warm-up 10 steps to 1e-3, cosine to 0.1 x 1e-3 at step 40:
    step 4 -> 1e-2 x 5/10; step 14 -> 1e-3 x 5/10; step 30 (half-way through the decay) -> 1e-3 x 0.55."""
    h = HyperNetTrainConfig(identity_steps=10, identity_learning_rate=1e-2, learning_rate=1e-3, warmup_steps=10,
                            lr_alpha=0.1)
    assert math.isclose(learning_rate_at(4, h, 40), 5e-3)
    assert math.isclose(learning_rate_at(14, h, 40), 5e-4)
    assert math.isclose(learning_rate_at(30, h, 40), 1e-3 * 0.55)
    assert math.isclose(learning_rate_at(99, h, 40), 1e-4)


def _cli(root: Path, base_dir: Path, text: Path, steps: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tokenshift.cli", "train-hypernet", "--config", str(CONFIG),
            "--model.base_model", str(base_dir), "--data.files", f"[{text}]", "--trainer.max_steps", str(steps),
            "--trainer.max_time", "null", "--model.config.identity_steps", "5",
            "--model.config.sampled_vocab_size", "500", "--model.config.hidden_size", "32", "--data.batch_size", "2",
            "--model.config.block_size", "32",
            "--trainer.default_root_dir", str(root), "--trainer.logger.init_args.save_dir", str(root),
            "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false",
            "--trainer.callbacks.init_args.dirpath", str(root / "ckpt"),
            "--trainer.callbacks.init_args.every_n_train_steps", "5", *extra]


def _ckpt_steps(folder: Path) -> list[int]:
    return [int(m.group(1)) for p in folder.glob("*.ckpt") if (m := re.search(r"step=(\d+)", p.name))]


def test_sigkilled_run_resumes_at_its_step(base, corpus, tmp_path):
    model, tok = base
    model.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    text = tmp_path / "train.txt"
    text.write_text("\n".join(corpus), encoding="utf-8")
    root = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(_cli(root, tmp_path / "base", text, 5000), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env=env, start_new_session=True)
    deadline = time.time() + 240
    try:
        while time.time() < deadline and not [s for s in _ckpt_steps(root / "ckpt") if s >= 15]:
            if child.poll() is not None:
                pytest.fail(f"training exited early: {child.stderr.read().decode()[-2000:]}")
            time.sleep(0.05)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    killed_at = torch.load(root / "ckpt" / "last.ckpt", weights_only=True)["global_step"]
    assert 10 <= killed_at < 5000
    resumed = subprocess.run(_cli(root, tmp_path / "base", text, killed_at + 10, "--ckpt_path", "last"),
                             capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Restored all states" in resumed.stdout + resumed.stderr
    assert max(_ckpt_steps(root / "ckpt")) == killed_at + 10
    import csv

    log = max(root.glob("lightning_logs/version_*/metrics.csv"), key=lambda p: p.stat().st_mtime)
    steps = [int(row["step"]) for row in csv.DictReader(log.open()) if row.get("step")]
    assert min(steps) >= killed_at and max(steps) == killed_at + 9  # the resumed run did not start over
    assert (root / "hypernet" / "config.json").exists()


def test_missing_training_text_is_found_before_the_base_model_loads(monkeypatch, tmp_path):
    """`--data.files` pointing nowhere fails at once, naming the option (it used to surface after a
    37 s SmolLM2 load); nothing is written in the run folder."""
    import tokenshift.assets
    from tokenshift.hypernet.train import main as hypernet_main

    def spy(*args, **kwargs):
        raise AssertionError("the base model was loaded before the data was checked")

    monkeypatch.setattr(tokenshift.assets, "load_model", spy)
    run = tmp_path / "run"
    with pytest.raises(ValueError, match="--data.files.*missing.txt"):
        hypernet_main(["--config", str(CONFIG.parent / "smollm2.yaml"), "--data.files", f"[{tmp_path / 'missing.txt'}]",
                       "--trainer.default_root_dir", str(run)])
    assert not run.exists()


def test_hypernet_data_falls_back_on_builtin_texts(monkeypatch, capsys):
    import tokenshift.bytelevel.corpus as corpus
    from tokenshift.hypernet.data import HyperNetData

    monkeypatch.setattr(corpus, "shared_data_dir", lambda: None)
    data = HyperNetData(languages=["en", "code", "de"], batch_size=2, text_chars=64)
    assert data.sources() == ["builtin:en", "builtin:code"]
    assert "de skipped" in capsys.readouterr().out
    assert len(data.corpus()) == 2 and all(data.corpus())
