"""The import layering of sisgen, checked by import-linter (contracts in pyproject.toml).

``training/``, ``export/`` and ``integrations/`` live at the top of the repository but are
installed as ``sisgen.training``, ``sisgen.export`` and ``sisgen.integrations`` (a
package-dir mapping). import-linter (through grimp) finds a package's modules by walking its
folder, so it would not see those three. The test therefore lays the four folders out as
they are installed, in a temporary folder, and runs ``lint-imports`` there: every import
counts, at module level and inside functions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALLED_AS = {"sisgen": "", "training": "training", "export": "export",
                "integrations": "integrations"}


def lay_out_installed_tree(dest: Path) -> Path:
    """Copy the package sources to ``dest/sisgen/...`` as they are installed."""
    pkg = dest / "sisgen"
    for folder, sub in INSTALLED_AS.items():
        shutil.copytree(REPO / folder, pkg / sub, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.yaml"))
    shutil.copy(REPO / "pyproject.toml", dest / "pyproject.toml")
    return dest


def run_lint_imports(tree: Path) -> subprocess.CompletedProcess:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([lint, "--no-cache", "pyproject.toml"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=300)


def test_import_contracts_hold(tmp_path):
    result = run_lint_imports(lay_out_installed_tree(tmp_path))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_a_new_cycle_breaks_the_contracts(tmp_path):
    tree = lay_out_installed_tree(tmp_path)
    vocab = tree / "sisgen" / "vocab.py"  # a low module reaching up into the models
    vocab.write_text(vocab.read_text() + "\n\ndef _up():\n    from .models import base  # noqa\n")
    result = run_lint_imports(tree)
    assert result.returncode != 0
    assert "vocab" in result.stdout.split("No cycles are allowed")[-1]
