"""UnsavedGuard: before the window closes, the series changes or a record is opened, unsaved
label strokes are asked about — Save, Discard or Cancel — in a non-modal question that tests
answer through ``question`` (like LabelIO's resample question)."""
from __future__ import annotations

from typing import Callable, Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

Button = QMessageBox.StandardButton


class UnsavedGuard:
    """Owned by AnnotationFeature; ``confirm`` is the window's leave guard."""

    def __init__(self, window, controller):
        self.win, self.ctl = window, controller
        self.question: Optional[QMessageBox] = None  # the open question (tests answer it)

    def confirm(self, what: str, proceed: Callable[[], None], closing: bool = False) -> bool:
        """True: nothing unsaved, go ahead now (``proceed`` is not called). False: a question
        is open; ``proceed()`` runs once the edits are saved or discarded (never on Cancel)."""
        states = self.ctl.dirty_states(only_active=not closing)
        if not states:
            return True
        if self.question is not None:  # asked already: that answer decides
            return False
        n = len(states)
        text = ("The label map has unsaved strokes." if n == 1 else
                f"{n} open images have unsaved label strokes.") + f"\n\nSave them before {what}?"
        box = QMessageBox(QMessageBox.Icon.Question, "Unsaved label edits", text,
                          Button.Save | Button.Discard | Button.Cancel, self.win)
        box.setObjectName("unsavedQuestion")
        box.setDefaultButton(Button.Save)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.buttonClicked.connect(lambda b: self._answered(box.standardButton(b), states, what,
                                                           proceed, closing))
        self.question = box
        box.open()
        return False

    def _answered(self, button, states: list, what: str, proceed, closing: bool) -> None:
        self.question = None
        if button == Button.Save:
            self._save_all(states, proceed)
        elif button == Button.Discard:
            if closing:  # the journals are closed cleanly: nothing is offered for recovery
                for st in states:
                    st.dirty = False
                self.ctl.sig_message.emit("Unsaved label edits discarded")
                proceed()
            else:
                for st in states:
                    self.ctl.discard_unsaved(st, on_done=proceed)
        else:
            self.ctl.sig_message.emit(f"Cancelled {what}: the unsaved edits are still open")

    def _save_all(self, states: list, proceed) -> None:
        pending = list(states)

        def saved(st):
            if st in pending:
                pending.remove(st)
            if not pending:
                proceed()

        for st in states:
            job = self.ctl.save("corrected", on_done=lambda rec, st=st: saved(st), st=st,
                                force=True)
            if job is None:
                saved(st)
