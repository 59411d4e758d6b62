"""The Fine-tune dialog for the promptable model (task "interactive"): it trains on the
workspace's prompt records (accepted Prompt-tool results) for a number of steps, and its gate
is the mean number of clicks to Dice 0.85 on the frozen validation records (lower is better).
:class:`PromptMode` switches the dialog's fields between that and the epoch/metric form of the
automatic models, and shows how many prompt records there are."""
from __future__ import annotations

from typing import Optional

METRIC_LABELS = {"mean_noc85": "mean clicks to Dice 0.85 (lower is better)"}
DEFAULT_STEPS = 60
DEFAULT_CLICK_MARGIN = 0.5


def metric_label(metric) -> str:
    """What the dialog calls a gate metric (``mean_noc85`` -> words)."""
    return METRIC_LABELS.get(str(metric), str(metric))


def count_records(store_fn) -> Optional[int]:
    """Prompt records in the workspace (a COUNT query); None when the store cannot be read."""
    from medviewer.services.prompt_records import count_prompt_records

    try:
        return count_prompt_records(store_fn())
    except Exception:  # noqa: BLE001 - an unreadable workspace: the dialog says "unknown"
        return None


class PromptMode:
    """Switches ``dialog``'s epochs/margin fields and info line by the chosen model's task."""

    def __init__(self, dialog):
        self.d = dialog
        self.active = False
        self.records: Optional[int] = None
        self._saved = None  # the automatic form's (epochs, margin) while in prompt mode

    def apply(self, task: Optional[str]) -> None:
        d = self.d
        want = task == "interactive"
        if want and not self.active:
            self._saved = (d.epochs.value(), d.margin.value())
            d.epochs_label.setText("Steps:")
            d.epochs.setRange(1, 20000)
            d.epochs.setValue(DEFAULT_STEPS)
            d.epochs.setToolTip("Training steps on the prompt records (and, when the built-in "
                                "training data is there, a replay of it)")
            d.margin.setDecimals(2)
            d.margin.setRange(0.0, 20.0)
            d.margin.setSingleStep(0.25)
            d.margin.setValue(DEFAULT_CLICK_MARGIN)
            d.margin.setToolTip("Gate: the new version is promoted only if its "
                                f"{METRIC_LABELS['mean_noc85']} on the frozen validation "
                                "records is not worse than the active version's by more than "
                                "this many clicks")
        elif not want and self.active:
            epochs, margin = self._saved or (30, 0.01)
            d.epochs_label.setText("Epochs:")
            d.epochs.setRange(1, 500)
            d.epochs.setValue(epochs)
            d.epochs.setToolTip("Most epochs; early stopping on the validation metric may end "
                                "sooner")
            d.margin.setRange(0.0, 1.0)
            d.margin.setDecimals(3)
            d.margin.setSingleStep(0.005)
            d.margin.setValue(margin)
            d.margin.setToolTip("Gate: the new version is promoted only if its validation "
                                "metric is not worse than the active version's by more than "
                                "this")
        self.active = want
        self.refresh_info()

    def refresh_info(self) -> None:
        d = self.d
        if not self.active:
            d.task_info.setText("")
            d.task_info.setVisible(False)
            return
        self.records = count_records(d.ctl._store_fn)
        n = "an unknown number of" if self.records is None else str(self.records)
        d.task_info.setText(f"Trains on the workspace's {n} prompt record(s) (accepted "
                            f"Prompt-tool results). Gate metric: "
                            f"{METRIC_LABELS['mean_noc85']}, on the frozen validation "
                            f"records.")
        d.task_info.setVisible(True)

    def run_args(self, extra: list) -> tuple:
        """(epochs, extra trainer args) for a run: steps instead of epochs in prompt mode."""
        if not self.active:
            return self.d.epochs.value(), extra
        return 1, list(extra) + ["--steps", str(self.d.epochs.value())]
