"""The Prompt tool's part of the annotation feature: the PromptController, a PromptTool per
view, the panel, and the actions whose keys work only while the tool is active (A, S, X, C
pick the prompt kind, G propagates in 3D, Enter accepts, Esc rejects, Shift+Backspace clears;
Ctrl+Z undoes the last prompt while there are prompts)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence

from ..shortcuts import KEYS
from .prompt_controller import PromptController
from .prompt_panel import PromptPanel
from .prompt_tool import PromptTool, prompt_cursor

TOOL = "prompt"
ACTIONS = ("prompt_positive", "prompt_negative", "prompt_box", "prompt_scribble", "prompt_3d",
           "prompt_accept", "prompt_reject", "prompt_clear")


class PromptUI:
    def __init__(self, host, ctl, proposal_panel):
        self.host, self.ctl = host, ctl
        self.pc = PromptController(ctl, host.window)
        self.tools = {plane: PromptTool(view, self.pc) for plane, view in host.views.items()}
        self.proposal_panel = proposal_panel
        self.panel = PromptPanel(self.pc, self, host.window)
        self.active = False
        self.pc.sig_prompts_changed.connect(self._update_cursor)
        host.registry.actions(None, [
            ("prompt_positive", "Prompt: positive clicks", lambda: self.pc.set_mode("positive"), ""),
            ("prompt_negative", "Prompt: negative clicks", lambda: self.pc.set_mode("negative"), ""),
            ("prompt_box", "Prompt: box", lambda: self.pc.set_mode("box"), ""),
            ("prompt_scribble", "Prompt: scribble", lambda: self.pc.set_mode("scribble"), ""),
            ("prompt_3d", "Prompt: propagate in 3D", self.prompt_3d, ""),
            ("prompt_accept", "Prompt: accept the result", self.prompt_accept, ""),
            ("prompt_reject", "Prompt: reject the result", self.prompt_reject, ""),
            ("prompt_clear", "Prompt: clear the prompts", self.pc.clear, ""),
        ])

    def start(self) -> None:
        acts = self.host.actions
        acts["prompt_accept"].setShortcuts([QKeySequence(Qt.Key.Key_Return),
                                            QKeySequence(Qt.Key.Key_Enter)])
        self._enable(False)

    # ------------------------------------------------------------------ tool switching
    def _enable(self, on: bool) -> None:
        acts = self.host.actions
        for name in ACTIONS:
            acts[name].setEnabled(on)
        nav, esc = acts.get("tool_navigate"), QKeySequence(KEYS["prompt_reject"])
        if nav is None:
            return
        if on and nav.shortcut() == esc:
            nav.setShortcut(QKeySequence())  # Esc rejects while prompting
        elif not on and nav.shortcut().isEmpty():
            ai = acts.get("ai_cancel")  # Esc belongs to a running AI job until it ends
            if ai is None or ai.shortcut() != esc:
                nav.setShortcut(QKeySequence(KEYS["tool_navigate"]))

    def on_tool_changed(self, name: str) -> None:
        was, self.active = self.active, name == TOOL
        if was != self.active:
            self._enable(self.active)
        for tool in self.tools.values():
            tool.cancel()
        if self.active:
            self.panel.show()
        self._update_cursor()

    def _update_cursor(self) -> None:
        if not self.active:
            return
        cursor = prompt_cursor(self.pc.mode)
        for view in self.host.views.values():
            view.setCursor(cursor)

    # ------------------------------------------------------------------ commands
    def undo(self) -> bool:
        """Ctrl+Z in the Prompt tool: the last prompt (True), else nothing (False)."""
        if self.active and self.pc.entries:
            self.pc.undo()
            return True
        return False

    def prompt_3d(self):
        return self.pc.propagate()

    def prompt_accept(self):
        return self.pc.accept(replace=self.proposal_panel.replace.isChecked())

    def prompt_reject(self):
        return self.pc.reject()
