"""TrainingPlot: live pyqtgraph plot of a fine-tuning run (train loss left axis, val metric right).

Per-step losses (``progress`` events) draw a faint curve at fractional epochs so a slow epoch
still shows movement; per-epoch train loss and validation metric are the bold curves; the best
epoch gets a star. The data stay in plain lists (``points()``) so tests can read them."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

LOSS_COLOUR = (70, 150, 255)
METRIC_COLOUR = (255, 150, 40)


class TrainingPlot(QWidget):
    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setObjectName("trainingPlot")
        self.widget = pg.PlotWidget(self)
        self.widget.setBackground((25, 25, 28))
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.widget)
        self.item: pg.PlotItem = self.widget.getPlotItem()
        self.item.showGrid(x=True, y=True, alpha=0.2)
        self.item.setLabel("bottom", "epoch")
        self.item.setLabel("left", "train loss", color=pg.mkColor(LOSS_COLOUR).name())
        self.legend = self.item.addLegend(offset=(-10, 10))

        # the validation metric lives on its own y axis (right) in a linked ViewBox
        self.metric_box = pg.ViewBox()
        self.item.showAxis("right")
        self.item.scene().addItem(self.metric_box)
        self.item.getAxis("right").linkToView(self.metric_box)
        self.metric_box.setXLink(self.item)
        self.item.getAxis("right").setLabel("val metric", color=pg.mkColor(METRIC_COLOUR).name())
        self.item.vb.sigResized.connect(self._sync_boxes)
        for side in ("left", "right"):
            self.item.getAxis(side).enableAutoSIPrefix(False)

        self.step_curve = self.item.plot([], [], pen=pg.mkPen(LOSS_COLOUR + (90,), width=1),
                                         name="loss per step")
        self.loss_curve = self.item.plot([], [], pen=pg.mkPen(LOSS_COLOUR, width=2), symbol="o",
                                         symbolSize=6, symbolBrush=LOSS_COLOUR, name="train loss")
        self.metric_curve = pg.PlotDataItem([], [], pen=pg.mkPen(METRIC_COLOUR, width=2),
                                            symbol="s", symbolSize=6, symbolBrush=METRIC_COLOUR)
        self.best_marker = pg.ScatterPlotItem([], [], symbol="star", size=16,
                                              brush=pg.mkBrush(255, 230, 80), pen=pg.mkPen("k"))
        self.metric_box.addItem(self.metric_curve)
        self.metric_box.addItem(self.best_marker)
        self.legend.addItem(self.metric_curve, "val metric")
        self.baseline_line: Optional[pg.InfiniteLine] = None
        self.clear()

    def _sync_boxes(self) -> None:
        self.metric_box.setGeometry(self.item.vb.sceneBoundingRect())
        self.metric_box.linkedViewChanged(self.item.vb, self.metric_box.XAxis)

    # ------------------------------------------------------------------ data
    def clear(self) -> None:
        self._steps: List[Tuple[float, float]] = []
        self._loss: List[Tuple[float, float]] = []
        self._metric: List[Tuple[float, float]] = []
        self._best: Optional[Tuple[float, float]] = None
        self._baseline: Optional[float] = None
        self.metric_name = "val metric"
        if self.baseline_line is not None:
            self.metric_box.removeItem(self.baseline_line)
            self.baseline_line = None
        self._redraw()

    def set_metric_name(self, name: str) -> None:
        self.metric_name = f"val {name}"
        self.item.getAxis("right").setLabel(self.metric_name,
                                            color=pg.mkColor(METRIC_COLOUR).name())
        self.legend.removeItem(self.metric_curve)
        self.legend.addItem(self.metric_curve, self.metric_name)

    def set_baseline(self, value: float, label: str = "active") -> None:
        """A dashed horizontal line at the active version's metric (from the gate event)."""
        if self.baseline_line is not None:
            self.metric_box.removeItem(self.baseline_line)
        self.baseline_line = pg.InfiniteLine(
            pos=float(value), angle=0, pen=pg.mkPen(METRIC_COLOUR, width=1, style=pg.QtCore.Qt.PenStyle.DashLine),
            label=f"{label} {value:.3f}", labelOpts={"color": METRIC_COLOUR, "position": 0.1})
        self.metric_box.addItem(self.baseline_line)
        self._baseline = float(value)
        self._redraw()

    def add_progress(self, epoch: int, step: int, steps: int, loss: float) -> None:
        """One per-step loss at x = epoch - 1 + step / steps (epochs count from 1)."""
        if loss is None or steps <= 0:
            return
        self._steps.append((epoch - 1 + step / steps, float(loss)))
        self.step_curve.setData(*_xy(self._steps))

    def add_epoch(self, epoch: int, train_loss: Optional[float], val_metric: Optional[float],
                  best: bool = False) -> None:
        if train_loss is not None:
            self._loss.append((float(epoch), float(train_loss)))
        if val_metric is not None:
            self._metric.append((float(epoch), float(val_metric)))
            if best:
                self._best = (float(epoch), float(val_metric))
        self._redraw()

    def _redraw(self) -> None:
        self.step_curve.setData(*_xy(self._steps))
        self.loss_curve.setData(*_xy(self._loss))
        self.metric_curve.setData(*_xy(self._metric))
        self.best_marker.setData(*_xy([self._best] if self._best else []))
        if self._metric or self._baseline is not None:
            ys = [y for _, y in self._metric] + ([self._baseline] if self._baseline is not None else [])
            lo, hi = min(ys), max(ys)
            pad = max(0.02, (hi - lo) * 0.15)
            self.metric_box.setYRange(lo - pad, hi + pad, padding=0)

    def points(self) -> Dict[str, list]:
        """What is drawn: {"steps", "train_loss", "val_metric": [(x, y), ...], "best": (x, y)|None}."""
        return {"steps": list(self._steps), "train_loss": list(self._loss),
                "val_metric": list(self._metric), "best": self._best}


def _xy(pts) -> Tuple[list, list]:
    return [p[0] for p in pts], [p[1] for p in pts]
