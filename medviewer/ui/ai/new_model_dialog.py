"""NewModelDialog (AI > New model…): a model for a person's own task — name, task, labels, the
model to initialise the backbone from, input options and the images it is for (its domain).

Every change is checked at once by the same service as ``medviewer models new``
(:meth:`ModelCatalog.check_new`, no torch): the first problem, or what will be made, is shown
under the form and *Create* is enabled only for a valid model. Creating it (building the
network and copying the base's weights needs torch) runs on the AI worker through
:meth:`AiController.create_model`; the new model is untrained, so the AI panel does not offer
it for runs — the dialog says how to train it (import labels, then AI > Fine-tune…)."""
from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QRegularExpression, Qt
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox,
                               QFormLayout, QLabel, QLineEdit, QSpinBox, QVBoxLayout)

from medviewer.services.models import ModelError, NewModelOptions, parse_labels

TASKS = ("classification", "segmentation")
MODALITIES = ("", "US", "MR", "CT", "CR", "DX", "MG", "XA", "PT", "NM", "OT")
IMAGE_TYPES = (("auto", None), ("any 2D image", "any"), ("radiograph (projection)", "projection"),
               ("slices of a volume", "volume"))


class NewModelDialog(QDialog):
    def __init__(self, controller, parent=None):
        super().__init__(parent)
        self.setObjectName("newModelDialog")
        self.setWindowTitle("New model")
        self.ctl = controller
        self.created = None  # the new card, once made
        self.name = QLineEdit(self)
        self.name.setObjectName("newModelName")
        self.name.setPlaceholderText("e.g. us-views (lower case, digits, . _ -)")
        self.name.setValidator(QRegularExpressionValidator(
            QRegularExpression(r"[a-z0-9][a-z0-9._-]{0,63}"), self.name))
        self.task = QComboBox(self)
        self.task.setObjectName("newModelTask")
        self.task.addItems(TASKS)
        self.labels = QLineEdit(self)
        self.labels.setObjectName("newModelLabels")
        self.labels.setPlaceholderText("a, b, c")
        self.base = QComboBox(self)
        self.base.setObjectName("newModelBase")
        self.base.setToolTip("Copy every weight tensor whose shape fits from this model "
                             "(its network family and input options too)")
        self.size = QSpinBox(self)
        self.size.setObjectName("newModelInputSize")
        self.size.setRange(0, 512)
        self.size.setSpecialValueText("default")
        self.channels = QSpinBox(self)
        self.channels.setObjectName("newModelChannels")
        self.channels.setRange(0, 16)
        self.channels.setSpecialValueText("default")
        self.spacing = QDoubleSpinBox(self)
        self.spacing.setObjectName("newModelSpacing")
        self.spacing.setRange(0.0, 20.0)
        self.spacing.setDecimals(2)
        self.spacing.setSingleStep(0.25)
        self.spacing.setSpecialValueText("default")
        self.spacing.setSuffix(" mm")
        self.modality = QComboBox(self)
        self.modality.setObjectName("newModelModality")
        self.modality.setEditable(True)
        self.modality.addItems(MODALITIES)
        self.modality.setToolTip("DICOM modality of the images: others are refused "
                                 "(empty: not checked)")
        self.image_type = QComboBox(self)
        self.image_type.setObjectName("newModelImageType")
        for text, key in IMAGE_TYPES:
            self.image_type.addItem(text, key)
        self.region = QLineEdit(self)
        self.region.setObjectName("newModelBodyRegion")
        self.region.setPlaceholderText("e.g. neck, head")
        self.message = QLabel("", self)
        self.message.setObjectName("newModelMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.create_button = self.buttons.addButton("Create",
                                                    QDialogButtonBox.ButtonRole.AcceptRole)
        self.create_button.setObjectName("newModelCreate")
        self._layout()
        for w in (self.name, self.labels, self.region):
            w.textChanged.connect(self._check)
        self.task.currentIndexChanged.connect(self._on_task)
        for w in (self.base, self.image_type):
            w.currentIndexChanged.connect(self._check)
        self.modality.currentTextChanged.connect(self._check)
        for w in (self.size, self.channels):
            w.valueChanged.connect(self._check)
        self.spacing.valueChanged.connect(self._check)
        self.buttons.rejected.connect(self.reject)
        self.create_button.clicked.connect(self.create)
        self._on_task()

    def _layout(self) -> None:
        form = QFormLayout()
        for text, widget in (("Name", self.name), ("Task", self.task), ("Labels", self.labels),
                             ("Initialise from", self.base), ("Input size (px)", self.size),
                             ("Channels", self.channels), ("Pixel spacing", self.spacing),
                             ("Modality", self.modality), ("Image type", self.image_type),
                             ("Body region", self.region)):
            form.addRow(text, widget)
        lay = QVBoxLayout(self)
        intro = QLabel("A model for your own task. It starts <b>untrained</b>: import labels "
                       "(<code>medviewer labels import</code>) or confirm cases, then train it "
                       "with AI &gt; Fine-tune…; its first version is used once it beats the "
                       "majority class (or an all-background map) on the frozen validation "
                       "set.", self)
        intro.setWordWrap(True)
        lay.addWidget(intro)
        lay.addLayout(form)
        lay.addWidget(self.message)
        lay.addWidget(self.buttons)
        self.resize(460, self.sizeHint().height())

    # ------------------------------------------------------------------ state
    def _on_task(self) -> None:
        task = self.task.currentText()
        self.base.blockSignals(True)
        self.base.clear()
        self.base.addItem("none (random initialisation)", None)
        for card in self.ctl.catalog.list():
            if card.task == task and not card.untrained and int(card.input.get("dims", 2)) == 2:
                self.base.addItem(card.ref, card.ref)
        self.base.blockSignals(False)
        self.spacing.setEnabled(task == "segmentation")
        self.labels.setToolTip("classes, comma separated (at least two)" if task ==
                               "classification" else "foreground labels, comma separated "
                               "(values 1, 2, ...; background is 0)")
        self._check()

    def options(self) -> NewModelOptions:
        """The options the form describes."""
        return NewModelOptions(
            name=self.name.text().strip(), task=self.task.currentText(),
            labels=parse_labels(self.labels.text()), base=self.base.currentData(),
            input_size=self.size.value() or None, channels=self.channels.value() or None,
            modality=self.modality.currentText().strip().upper(),
            image_type=self.image_type.currentData(), body_region=self.region.text(),
            spacing_mm=(self.spacing.value() or None) if self.spacing.isEnabled() else None,
            extra={"command": "AI > New model… in the app"})

    def _check(self) -> Optional[dict]:
        """Validate the form (no torch); the card it would make, or None with the reason."""
        if self.created is not None:
            return None
        try:
            card = self.ctl.catalog.check_new(self.options())
        except ModelError as exc:
            self._show(str(exc), ok=False)
            return None
        spec = card["input"]
        size = spec.get("size", spec.get("patch"))
        dom = card["domain"]
        self._show(f"Will make <b>{card['name']}:{card['version']}</b> (untrained): "
                   f"{card['architecture']['name']}, input {size[0]}×{size[1]} px, "
                   f"{spec['channels']} channel(s); labels {', '.join(card['labels'])}; "
                   f"for {'/'.join(dom['modalities']) or 'any modality (not checked)'} "
                   f"images, image type {dom['image_type']}.", ok=True)
        return card

    def _show(self, text: str, ok: bool) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("" if ok else "color: #b00020;")
        self.create_button.setEnabled(ok)

    # ------------------------------------------------------------------ create
    def create(self):
        """Make the model on the AI worker (the job, or None when the form is not valid)."""
        if self._check() is None:
            return None
        self._show("Making the model…", ok=True)
        self.create_button.setEnabled(False)
        job = self.ctl.create_model(self.options(), on_done=self._on_created,
                                    on_error=lambda msg: self._show(msg.splitlines()[0], False))
        if job is None:
            self._show("The AI worker is busy: wait for the running job or cancel it", False)
        return job

    def _on_created(self, result) -> None:
        card, report = result
        self.created = card
        base = card.training.get("initialised_from")
        init = (f"{len(report['copied'])} weight tensors copied from {base}, "
                f"{len(report['skipped'])} skipped" if base else "random initialisation")
        self._show(f"Made <b>{card.ref}</b> (untrained; {init}) in {card.folder}.<br>Next: "
                   f"<code>medviewer labels import WORKSPACE LABELS.csv --model {card.name}"
                   f"</code>, then AI &gt; Fine-tune… with base {card.name}.", ok=True)
        self.create_button.setEnabled(False)  # made: a second click would only be refused
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setText("Close")


def show_new_model_dialog(parent, controller) -> NewModelDialog:
    """Open the dialog (modeless; deleted when closed)."""
    dlg = NewModelDialog(controller, parent)
    dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    dlg.show()
    return dlg
