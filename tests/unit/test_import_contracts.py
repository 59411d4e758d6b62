"""The layer rules of DESIGN.md hold: import-linter contracts in pyproject.toml pass."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_linter_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "importlinter.cli"]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


def test_core_io_jobs_do_not_pull_qt_at_runtime():
    """Importing the headless layers must not load Qt (import-linter checks static imports)."""
    code = ("import sys, medviewer.core.geometry, medviewer.io.catalogue, medviewer.jobs.progress, "
            "medviewer.cli, medviewer.cli.predict, medviewer.cli.models, medviewer.cli.info, medviewer.services.context, medviewer.services.ai_runs, medviewer.ai.registry, medviewer.ai.cards; bad=[m for m in sys.modules if m.split('.')[0] in "
            "('PySide6','pyqtgraph','torch')]; print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
