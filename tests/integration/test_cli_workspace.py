"""A read-only or uncreatable workspace is one clear line from the command line (exit 1), never
a traceback or a raw PermissionError / "attempt to write a readonly database"."""
from __future__ import annotations

from pathlib import Path

from read_only import make_read_only, make_writable

from medviewer.cli import main as cli

US = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "monai_testing_data" / \
    "tests" / "testing_data" / "ultrasound_confidence_map"


def _csv(folder: Path, name: str, image: str, label: str) -> Path:
    path = folder / name
    path.write_text(f"path,label\n{US / image},{label}\n")
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Errno" not in err[0] and "Traceback" not in err[0]
    return err[0]


def test_labels_import_and_finetune_say_a_read_only_workspace_in_one_line(tmp_path, capsys):
    ws = tmp_path / "ws"
    assert cli(["labels", "import", str(ws), str(_csv(tmp_path, "a.csv", "femur_input.png",
                                                          "femur"))]) == 0
    capsys.readouterr()
    locked = make_read_only(ws)
    try:
        csv = _csv(tmp_path, "b.csv", "neck_input.png", "neck")
        assert cli(["labels", "import", str(ws), str(csv)]) == 1
        assert _one_error_line(capsys) == f"medviewer: error: The workspace {ws} is read-only"
        assert cli(["finetune", "--workspace", str(ws), "--base", "pneumonia-cxr",
                    "--manifest-only"]) == 1
        assert _one_error_line(capsys).startswith(
            f"finetune: error: The workspace {ws} is read-only")
        blocked = tmp_path / "blocked"
        blocked.mkdir()
        locked += make_read_only(blocked)
        assert cli(["labels", "import", str(blocked / "new"), str(csv)]) == 1
        assert _one_error_line(capsys) == (f"medviewer: error: The workspace {blocked / 'new'} "
                                           "cannot be written: it cannot be created")
    finally:
        for folder in (ws, tmp_path / "blocked"):
            if folder.exists():
                make_writable(folder, locked)
