"""The package installs under one namespace and the CLI answers."""
import subprocess
import sys


def test_namespaced_imports():
    import tokenshift.bytelevel
    import tokenshift.hypernet
    import tokenshift.models
    import tokenshift.transplant  # noqa: F401


def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "tokenshift.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "audit" in out.stdout
