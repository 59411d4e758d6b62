"""AdvancedOptions: the fine-tuning knobs an ML engineer reaches for (learning rate, batch size,
patience, seed, device, augmentation), folded away by default; turned into command-line flags
of ``python -m medviewer.ai.training``. "auto" leaves the trainer's per-task default."""
from __future__ import annotations

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox,
                               QSpinBox, QWidget)

DEVICES = ("auto", "cpu", "cuda")


class AdvancedOptions(QGroupBox):
    def __init__(self, parent=None):
        super().__init__("Advanced", parent)
        self.setObjectName("finetuneAdvanced")
        self.setCheckable(True)
        self.setChecked(False)  # folded: the defaults are sensible
        self.setToolTip("Training options; unchecked = the trainer's defaults")
        self.body = QWidget(self)
        form = QFormLayout(self.body)
        form.setContentsMargins(0, 0, 0, 0)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        self.lr = QDoubleSpinBox(self.body)
        self.lr.setObjectName("finetuneLr")
        self.lr.setDecimals(6)
        self.lr.setRange(0.0, 1.0)
        self.lr.setSingleStep(1e-4)
        self.lr.setSpecialValueText("auto")  # 0 = the task's default (5e-4 seg, 3e-4 cls)
        self.lr.setToolTip("AdamW learning rate (cosine schedule); auto = the task's default")
        self.batch = QSpinBox(self.body)
        self.batch.setObjectName("finetuneBatch")
        self.batch.setRange(0, 512)
        self.batch.setSpecialValueText("auto")
        self.batch.setToolTip("Batch size per process; auto = the task's default")
        self.patience = QSpinBox(self.body)
        self.patience.setObjectName("finetunePatience")
        self.patience.setRange(1, 1000)
        self.patience.setValue(5)
        self.patience.setToolTip("Stop after this many validations without improvement")
        self.seed = QSpinBox(self.body)
        self.seed.setObjectName("finetuneSeed")
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("Random seed (same seed, data and device: the same model)")
        self.device = QComboBox(self.body)
        self.device.setObjectName("finetuneDevice")
        self.device.addItems(DEVICES)
        self.device.setToolTip("auto: CUDA when present, else the CPU")
        for w in (self.lr, self.batch, self.patience, self.seed, self.device):
            w.setMinimumWidth(140)
        self.augment = QCheckBox("Augmentation (flips, small affine, intensity)", self.body)
        self.augment.setObjectName("finetuneAugment")
        self.augment.setChecked(True)
        form.addRow("Learning rate:", self.lr)
        form.addRow("Batch size:", self.batch)
        form.addRow("Patience:", self.patience)
        form.addRow("Seed:", self.seed)
        form.addRow("Device:", self.device)
        form.addRow("", self.augment)
        outer = QFormLayout(self)
        outer.addRow(self.body)
        self.body.setVisible(False)
        self.toggled.connect(self.body.setVisible)

    def extra_args(self) -> list:
        """Flags for the trainer (none while folded: its defaults)."""
        if not self.isChecked():
            return []
        args = ["--patience", str(self.patience.value()), "--seed", str(self.seed.value()),
                "--device", self.device.currentText()]
        if self.lr.value() > 0:
            args += ["--lr", repr(float(self.lr.value()))]
        if self.batch.value() > 0:
            args += ["--batch-size", str(self.batch.value())]
        if not self.augment.isChecked():
            args.append("--no-augment")
        return args
