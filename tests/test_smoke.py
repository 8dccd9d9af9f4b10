"""The package installs under one namespace, the CLI answers, and the set-up suits the machine."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_namespaced_imports():
    import tokenshift.bytelevel
    import tokenshift.hypernet
    import tokenshift.models
    import tokenshift.transplant  # noqa: F401


def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "tokenshift.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "audit" in out.stdout


# -- installing on a user's machine --------------------------------------------------------------


def _torch_plan(tmp_path, gpu: bool, index_answers: bool, overrides: tuple[str, ...] = ()) -> str:
    """`make torch-plan` with a fake `nvidia-smi` (or none) and a fake interpreter for the index probe."""
    if shutil.which("make") is None or os.uname().sysname != "Linux":
        pytest.skip("needs make on Linux (the CUDA/CPU choice is Linux's)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-0)'\n" if gpu else "#!/bin/sh\nexit 9\n")
    probe = bin_dir / "probe-python"
    probe.write_text(f"#!/bin/sh\nexit {0 if index_answers else 1}\n")
    for f in (smi, probe):
        f.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    env.pop("MAKEFLAGS", None)
    out = subprocess.run(["make", "--no-print-directory", "-s", "torch-plan", f"PY={probe}", *overrides], cwd=REPO,
                         env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_torch_plan_cpu_index_without_a_gpu(tmp_path):
    assert _torch_plan(tmp_path, gpu=False, index_answers=True) == (
        "torch: no CUDA device, PyTorch's CPU-only build from https://download.pytorch.org/whl/cpu")


def test_torch_plan_falls_back_on_configured_sources_when_the_index_is_unreachable(tmp_path):
    line = _torch_plan(tmp_path, gpu=False, index_answers=False)
    assert "unreachable" in line and "pip's configured sources" in line


def test_torch_plan_plain_package_with_a_gpu(tmp_path):
    assert "CUDA device found" in _torch_plan(tmp_path, gpu=True, index_answers=True)


def test_torch_plan_overrides(tmp_path):
    assert "TORCH_INDEX=pypi" in _torch_plan(tmp_path, gpu=False, index_answers=True, overrides=("TORCH_INDEX=pypi",))
    assert "from https://mirror.example/cpu (TORCH_INDEX)" in _torch_plan(
        tmp_path, gpu=True, index_answers=False, overrides=("TORCH_INDEX=https://mirror.example/cpu",))


def test_every_package_folder_is_declared():
    """Folders of code or configs under the mapped packages are listed (setuptools warns, or leaves them out)."""
    tomllib = pytest.importorskip("tomllib", reason="Python >= 3.11 reads pyproject.toml without tomli")
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = set(config["packages"])
    for package, folder in config["package-dir"].items():
        for sub in (REPO / folder).rglob("*"):
            if sub.is_dir() and "__pycache__" not in sub.parts and any(
                    f.suffix in (".py", ".yaml") for f in sub.iterdir()):
                name = ".".join([package, *sub.relative_to(REPO / folder).parts])
                assert name in declared, f"{sub} holds code or configs but {name} is not in pyproject's packages"
    assert "*.md" in config["package-data"]["tokenshift.docs"]  # builtin:en's text ships in a wheel
    assert config["package-dir"]["tokenshift.docs"] == "docs"
