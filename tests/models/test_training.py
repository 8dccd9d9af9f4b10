"""Training: a tiny HAT overfits a short text, `tokenshift train` survives SIGKILL and resumes with
the same steps and losses, and what it saves scores and generates through the CLI."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from tokenshift.bytelevel import score_bytes
from tokenshift.cli import main as cli_main
from tokenshift.models.base import load_pretrained
from tokenshift.models.data import Rows
from tokenshift.models.hat import HATConfig
from tokenshift.models.lit import LitLM, lr_factor
from tokenshift.common.packing import pack

TEXT = ("The quick brown fox jumps over the lazy dog. Der schnelle braune Fuchs springt über den "
        "faulen Hund. Быстрая лиса.").encode()
TINY_HAT = dict(d_byte=64, d_word=128, n_enc=1, n_backbone=2, n_dec=1, n_heads_byte=2, n_heads_word=4,
                max_word_bytes=16)


def test_lr_schedule_worked_example():
    """warmup 10, total 110, min 0.1: (0+1)/10 at step 0; 1 at 10; halfway down the cosine
    0.1 + 0.9 * 0.5 = 0.55 at 60; the floor 0.1 at 110 and after."""
    assert lr_factor(0, 10, 110, 0.1) == pytest.approx(0.1)
    assert lr_factor(10, 10, 110, 0.1) == pytest.approx(1.0)
    assert lr_factor(60, 10, 110, 0.1) == pytest.approx(0.55)
    assert lr_factor(500, 10, 110, 0.1) == pytest.approx(0.1)
    assert lr_factor(500, 10, -1, 0.1) == 1.0  # no step budget: constant after warmup


def test_tiny_hat_overfits_a_short_text():
    """Through LitLM and a Lightning Trainer; judged by the exact byte scorer afterwards."""
    L.seed_everything(0)
    rows = Rows(*pack([list(TEXT)], 256, 256, len(TEXT) + 1))
    lit = LitLM(HATConfig(**TINY_HAT), lr=3e-3, warmup_steps=10)
    trainer = L.Trainer(max_steps=150, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", gradient_clip_val=1.0)
    trainer.fit(lit, DataLoader(rows, batch_size=1))
    bpb = -score_bytes(lit.net.eval(), TEXT, end=True, progress=False) / len(TEXT)
    assert bpb < 0.5, f"after 150 steps the tiny HAT is at {bpb:.3f} bits per byte"


CONFIG = """
seed_everything: 0
trainer:
  max_steps: {steps}
  val_check_interval: 10
  check_val_every_n_epoch: null
  limit_val_batches: 1
  num_sanity_val_steps: 0
  gradient_clip_val: 1.0
  accelerator: cpu
  devices: 1
  default_root_dir: {root}
  logger: false
  enable_progress_bar: false
  enable_model_summary: false
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args:
        dirpath: {root}/checkpoints
        every_n_train_steps: 10
        save_last: true
model:
  config:
    class_path: tokenshift.models.hat.HATConfig
    init_args: {hat}
  lr: 3.0e-3
  warmup_steps: 5
data:
  train_files: [{data}]
  stream: bytes
  seq_len: 128
  batch_size: 4
  valid_bytes: 2048
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("train_corpus")
    docs = [f"Document {i}: the {['cat', 'dog', 'fox'][i % 3]} sat on the mat {i} times. Grüße, мир!" for i in range(80)]
    (folder / "en.txt").write_text("\n\n".join(docs))
    return folder / "en.txt"


def _config(tmp_path: Path, corpus: Path, steps: int) -> Path:
    root = tmp_path / "run"
    path = tmp_path / f"hat-{steps}.yaml"
    path.write_text(CONFIG.format(steps=steps, root=root, data=corpus, hat=json.dumps(TINY_HAT)))
    return path


def _losses(path: Path) -> dict[int, float]:
    out = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if "train/loss" in rec:
            out[rec["step"]] = rec["train/loss"]
    return out


def _train(args: list[str], log: Path) -> subprocess.Popen:
    """`tokenshift train ARGS` in a subprocess; its output goes to `log` (a pipe could fill and block it)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with log.open("a") as out:
        return subprocess.Popen([sys.executable, "-m", "tokenshift.cli", "train", *args], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def test_sigkill_then_resume_continues_the_same_run(tmp_path, corpus):
    """Kill after step 13 (checkpoint at 10), resume from `last`: steps 11..13 are replayed with the
    same losses (same weights, optimizer state and batches), and the run ends at max_steps."""
    config = _config(tmp_path, corpus, 30)
    metrics = tmp_path / "run" / "metrics.jsonl"
    log = tmp_path / "train.log"
    proc = _train(["--config", str(config)], log)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        done = _losses(metrics) if metrics.exists() else {}
        if max(done, default=0) >= 13 and list((tmp_path / "run" / "checkpoints").glob("*step=10*.ckpt")):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the run was not killed mid-way: {log.read_text()[-2000:]}"
    killed = _losses(metrics)
    assert 13 <= max(killed) < 30
    assert not (tmp_path / "run" / "model").exists()

    resumed = _train(["--config", str(config), "--ckpt_path", "last"], log)
    assert resumed.wait(timeout=300) == 0, log.read_text()[-3000:]
    logged = [json.loads(x) for x in metrics.read_text().splitlines()]
    steps = [(r["step"], r["train/loss"]) for r in logged if "train/loss" in r][len(killed):]  # the resumed run
    assert steps[0][0] == 11 and steps[-1][0] == 30  # it resumed at the checkpoint and ran to the end
    replay = dict(steps)
    for step in range(11, max(killed) + 1):
        assert replay[step] == pytest.approx(killed[step], rel=1e-5, abs=1e-6), f"step {step} differs after resume"
    assert replay[30] < killed[1] - 1.0  # the curve went on down, it did not restart
    model = load_pretrained(tmp_path / "run" / "model")
    assert model.config.n_backbone == TINY_HAT["n_backbone"]


def test_trained_folder_scores_and_generates_through_the_cli(tmp_path, corpus, capsys):
    config = _config(tmp_path, corpus, 12)
    assert cli_main(["train", "--config", str(config)]) == 0
    folder = tmp_path / "run" / "model"
    capsys.readouterr()
    text = tmp_path / "t.txt"
    text.write_text("Document 3: the cat sat on the mat.")
    assert cli_main(["score", str(folder), "--text", str(text)]) == 0
    out = capsys.readouterr().out
    bpb = float(out.split("exact bits/byte")[1].split()[0])
    assert 0 < bpb < 8
    assert cli_main(["generate", str(folder), "--prompt", "Document 1", "--max-bytes", "12", "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("Document 1")
    assert cli_main(["generate", str(tmp_path), "--prompt", "x"]) == 2  # not a model folder: one-line error
    assert "error" in capsys.readouterr().err


DDP_SCRIPT = '''
import hashlib, os, sys
import lightning as L
from tokenshift.models.train import main

class Seen(L.Callback):
    """Each rank writes a digest of every training batch it is given."""
    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        digest = hashlib.sha1(batch["input"].numpy().tobytes()).hexdigest()
        with open(os.path.join(os.environ["SEEN_DIR"], f"rank{trainer.global_rank}.txt"), "a") as f:
            f.write(f"{trainer.global_step} {digest}\\n")

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] + ["--trainer.callbacks+=__main__.Seen"]))
'''


@pytest.mark.slow
def test_ddp_ranks_see_disjoint_rows(tmp_path, corpus):
    """`tokenshift train` with two gloo processes on CPU: each rank trains on its own rows at every step
    (Lightning cannot shard a batch sampler; `TextData` does) and the model is exported once."""
    config = _config(tmp_path, corpus, 4)
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    seen = tmp_path / "seen"
    seen.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", SEEN_DIR=str(seen))
    run = subprocess.run([sys.executable, str(script), "--config", str(config), "--trainer.devices", "2",
                          "--trainer.strategy", "ddp"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    ranks = [dict(line.split() for line in (seen / f"rank{r}.txt").read_text().splitlines()) for r in (0, 1)]
    assert sorted(ranks[0]) == sorted(ranks[1]) == ["0", "1", "2", "3"]
    assert all(ranks[0][step] != ranks[1][step] for step in ranks[0])  # different rows on each rank
    assert load_pretrained(tmp_path / "run" / "model").config.n_backbone == TINY_HAT["n_backbone"]


# -- run folders (issue 20, defect 2): checkpoints, logs and resume follow --trainer.default_root_dir --

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "models" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_config_writes_checkpoints_and_logs_in_its_run_folder(config, tmp_path):
    """Each shipped config, with --trainer.default_root_dir B: the ModelCheckpoint and the logger write
    under B (they were hard-coded to runs/<name>, so two runs shared one last.ckpt)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from tokenshift.models.data import TextData
    from tokenshift.models.train import RunFolderCLI, build_cli

    run = tmp_path / "B"
    cli = build_cli(RunFolderCLI, LitLM, TextData, ["--config", str(config), "--trainer.default_root_dir", str(run),
                                                    "--trainer.accelerator", "cpu"], "tokenshift train", "test")
    ckpts = [cb for cb in cli.trainer.callbacks if isinstance(cb, ModelCheckpoint)]
    assert ckpts and all(Path(cb.dirpath) == run / "checkpoints" for cb in ckpts)
    assert all(Path(logger.save_dir) == run for logger in cli.trainer.loggers)
    tokenizer = cli.config.data.tokenizer
    assert tokenizer is None or Path(tokenizer).parent == run  # a TokenLM's tokenizer belongs to its run too
    assert not run.exists()  # nothing is written before training starts


def test_resume_point_only_resumes_this_run(tmp_path, capsys):
    from tokenshift.models.train import resume_point

    folder = tmp_path / "run" / "checkpoints"
    with pytest.raises(ValueError, match="nothing to resume"):
        resume_point("last", [folder], tmp_path / "run")
    folder.mkdir(parents=True)
    (folder / "epoch=0-step=10.ckpt").write_bytes(b"x")
    (folder / "epoch=0-step=20.ckpt").write_bytes(b"x")
    assert resume_point("last", [folder], tmp_path / "run") == str(folder / "epoch=0-step=20.ckpt")  # killed before last.ckpt
    (folder / "last.ckpt").write_bytes(b"x")
    assert resume_point("last", [folder], tmp_path / "run") == str(folder / "last.ckpt")
    with pytest.raises(ValueError, match="--ckpt_path"):
        resume_point(str(tmp_path / "missing.ckpt"), [folder], tmp_path / "run")
    capsys.readouterr()
    assert resume_point(None, [folder], tmp_path / "run") is None
    assert "already holds checkpoints" in capsys.readouterr().err  # a new run in an old run's folder says so


def test_a_typo_in_a_model_option_shows_the_one_line_first(capsys):
    from tokenshift.models.train import main as train_main

    config = CONFIGS[[c.stem for c in CONFIGS].index("hat-tiny")]
    with pytest.raises(SystemExit) as exit_:
        train_main(["--config", str(config), "--model.config.init_args.d_bite", "3"])
    assert exit_.value.code == 2
    first = capsys.readouterr().err.strip().splitlines()[0]
    assert first.startswith("tokenshift train: error:") and "d_bite" in first and "not accepted" in first


def test_text_data_falls_back_on_builtin_texts_without_the_corpus(monkeypatch, capsys):
    import tokenshift.models.data as data

    monkeypatch.setattr(data, "shared_data_dir", lambda: None)
    td = data.TextData(languages=["en", "code", "de"], seq_len=64, batch_size=2, valid_bytes=1024)
    train, valid = td.documents()
    assert set(train) == {"en", "code"} and all(train[k] and valid[k] for k in train)
    note = capsys.readouterr().out
    assert "builtin:en" in note and "de skipped" in note
