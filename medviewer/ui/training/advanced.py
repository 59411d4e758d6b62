"""AdvancedOptions: the fine-tuning knobs an ML engineer reaches for (learning rate, batch size,
patience, seed, device, augmentation, the validation set's minimum size), folded away by
default; turned into command-line flags of ``python -m medviewer.ai.training``. "auto" leaves
the trainer's per-task default."""
from __future__ import annotations

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox,
                               QSpinBox, QWidget)

from medviewer.services.finetune import DEFAULT_MIN_PER_CLASS, DEFAULT_MIN_UNITS

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
        self.min_units = QSpinBox(self.body)
        self.min_units.setObjectName("finetuneMinValUnits")
        self.min_units.setRange(1, 100000)
        self.min_units.setValue(DEFAULT_MIN_UNITS)
        self.min_units.setToolTip("The gate runs only when the frozen validation set holds at "
                                  "least this many units (cases; slabs of 8 slices for 2D "
                                  "segmentation); fewer: nothing is trained")
        self.min_per_class = QSpinBox(self.body)
        self.min_per_class.setObjectName("finetuneMinValPerClass")
        self.min_per_class.setRange(0, 100000)
        self.min_per_class.setValue(DEFAULT_MIN_PER_CLASS)
        self.min_per_class.setToolTip("... and every class of the model appears in at least this "
                                      "many validation units (0: no per-class minimum)")
        for w in (self.lr, self.batch, self.patience, self.seed, self.device, self.min_units,
                  self.min_per_class):
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
        form.addRow("Validation minimum, units:", self.min_units)
        form.addRow("... units per class:", self.min_per_class)
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
        units, per_class = self.val_minimum()
        args += ["--min-val-units", str(units), "--min-val-per-class", str(per_class)]
        if self.lr.value() > 0:
            args += ["--lr", repr(float(self.lr.value()))]
        if self.batch.value() > 0:
            args += ["--batch-size", str(self.batch.value())]
        if not self.augment.isChecked():
            args.append("--no-augment")
        return args

    def val_minimum(self) -> tuple:
        """(units, units per class) the validation set needs (the defaults while folded)."""
        if not self.isChecked():
            return DEFAULT_MIN_UNITS, DEFAULT_MIN_PER_CLASS
        return self.min_units.value(), self.min_per_class.value()
