"""Integration-test fixtures shared by the CLI test modules."""
import pytest


@pytest.fixture
def user_models(tmp_path, monkeypatch):
    """An empty user models folder ($MEDVIEWER_MODELS) for the test."""
    folder = tmp_path / "user-models"
    monkeypatch.setenv("MEDVIEWER_MODELS", str(folder))
    return folder
