"""SIGKILL at the worst moments: nothing of the user's is lost, the next run cleans up and works.

A transplant (tiny model, subprocess) is killed before, during and after its save, and between
moving the previous output aside and moving the new one in; a training run is killed after its
first checkpoint. Afterwards the user's files are intact, the previous output is still there (or
recoverable, and restored by the next run), a rerun or resume succeeds, and no staging folder is
left. Subprocesses import torch and transformers (Lightning for training), so these are slow.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tokenshift.cli import main
from tokenshift.outputs import MARKER

pytestmark = pytest.mark.slow

DRIVER = r'''
import os, signal, sys
import tokenshift.transplant as tp
from tokenshift import cli

point = os.environ["KILL_AT"]
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
original = tp.save_transplant

def save(model, tokenizer, out):
    if point == "before-save":
        die()
    if point == "during-save":
        model.save_pretrained(out)  # the weights are written, the tokenizer and report are not
        die()
    result = original(model, tokenizer, out)
    if point == "after-save":
        die()
    return result

tp.save_transplant = save
if point == "between-renames":
    real_rename = os.rename
    def rename(src, dst):
        real_rename(src, dst)
        if str(dst).endswith(".old"):  # the previous output has just been moved aside
            die()
    os.rename = rename
sys.exit(cli.main(sys.argv[1:]))
'''

POINTS = ["before-save", "during-save", "after-save", "between-renames"]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> tuple[Path, Path]:
    from tiny import byte_bpe, tiny_llama

    root = tmp_path_factory.mktemp("faults")
    tok = byte_bpe()
    model_dir, tok_dir = root / "model", root / "newtok"
    tiny_llama(len(tok)).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    byte_bpe(280, ("<|endoftext|>",), "new words for a new tokenizer, 123 ünïcödé\n" * 10).save_pretrained(tok_dir)
    (root / "driver.py").write_text(DRIVER)
    return model_dir, tok_dir


def _argv(dirs, out: Path) -> list[str]:
    return ["transplant", "--model", str(dirs[0]), "--tokenizer", str(dirs[1]), "--method", "mean",
            "--out", str(out), "--force"]


@pytest.mark.parametrize("point", POINTS)
def test_killed_transplant_loses_nothing_and_the_rerun_cleans_up(dirs, tmp_path, point, capsys):
    work = tmp_path / "project"
    work.mkdir()
    (work / "a").write_text("the user's file")
    out = work / "converted"
    assert main(_argv(dirs, out)) == 0  # a previous output, which --force may replace
    previous = (out / "transplant_report.json").read_text()
    (out / "transplant_report.json").write_text(previous.replace("{", '{"first_run": true, ', 1))
    previous = (out / "transplant_report.json").read_text()

    env = dict(os.environ, KILL_AT=point, OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, str(dirs[0].parent / "driver.py"), *_argv(dirs, out)], cwd=work,
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    assert (work / "a").read_text() == "the user's file"
    hidden = sorted(p.name for p in work.iterdir() if p.name.startswith(".transplant-"))
    if point == "between-renames":  # the previous output is aside, whole, until the next run restores it
        old = [h for h in hidden if h.endswith(".old")]
        assert len(old) == 1 and (work / old[0] / "transplant_report.json").read_text() == previous
    else:
        assert (out / "transplant_report.json").read_text() == previous  # untouched
        assert len(hidden) == 1  # the killed run's staging folder

    capsys.readouterr()
    assert main(_argv(dirs, out)) == 0  # the rerun works ...
    assert "removed" in capsys.readouterr().err
    assert sorted(p.name for p in work.iterdir()) == ["a", "converted"]  # ... and leaves nothing behind
    assert (out / MARKER).is_file() and "first_run" not in (out / "transplant_report.json").read_text()
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out)  # a whole model


CONFIG = """
seed_everything: 0
trainer:
  max_steps: {steps}
  val_check_interval: 1000
  check_val_every_n_epoch: null
  limit_val_batches: 1
  num_sanity_val_steps: 0
  accelerator: cpu
  devices: 1
  default_root_dir: {root}
  enable_progress_bar: false
  enable_model_summary: false
  logger:
    class_path: lightning.pytorch.loggers.CSVLogger
    init_args:
      save_dir: "{{run_dir}}"
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args:
        every_n_train_steps: 3
        save_last: true
model:
  config:
    class_path: tokenshift.models.hat.HATConfig
    init_args: {{d_byte: 16, d_word: 32, n_enc: 1, n_backbone: 1, n_dec: 1, n_heads_byte: 2, n_heads_word: 2,
                max_word_bytes: 16}}
  lr: 3.0e-3
  warmup_steps: 2
data:
  train_files: [{data}]
  stream: bytes
  seq_len: 64
  batch_size: 2
  valid_bytes: 512
"""


def _train(args: list[str], log: Path, cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with log.open("a") as out:
        return subprocess.Popen([sys.executable, "-m", "tokenshift.cli", "train", *args], env=env, cwd=cwd,
                                stdout=out, stderr=subprocess.STDOUT)


def test_killed_training_resumes_in_its_own_run_folder(tmp_path):
    work = tmp_path / "project"
    work.mkdir()
    (work / "a").write_text("the user's file")
    text = work / "en.txt"
    text.write_text("\n\n".join(f"Document {i}: the cat sat on the mat {i} times." for i in range(60)))
    run = work / "runs" / "mine"
    config = work / "hat.yaml"
    config.write_text(CONFIG.format(steps=400, root=run, data=text))
    log = tmp_path / "train.log"
    proc = _train(["--config", str(config)], log, work)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list((run / "checkpoints").glob("*step=3*.ckpt")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # after the first checkpoint, perhaps before its last.ckpt copy
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-2000:]
    assert list((run / "checkpoints").glob("*step=3*.ckpt"))
    assert (work / "a").read_text() == "the user's file"

    # another run folder has nothing to resume: said in one line, exit 2, no training
    other = _train(["--config", str(config), "--trainer.default_root_dir", str(work / "runs" / "other"),
                    "--ckpt_path", "last"], log, work)
    assert other.wait(timeout=300) == 2
    assert "nothing to resume" in log.read_text()
    assert not (work / "runs" / "other").exists()

    resumed = _train(["--config", str(config), "--trainer.max_steps", "8", "--ckpt_path", "last"], log, work)
    assert resumed.wait(timeout=300) == 0, log.read_text()[-3000:]
    assert "Restored all states" in log.read_text()
    assert (run / "model").is_dir() and (run / "metrics.jsonl").is_file()
    assert list((run / "lightning_logs").glob("version_*"))  # the logs follow the run folder too
    assert (work / "a").read_text() == "the user's file"
