"""The feature registry: each feature (annotation, AI, review, later 3D and PACS) declares its
menus, actions (with their shortcuts), docks and the objects it shares; the main window reads
the registry and builds them. Features never import each other, never look a menu up by its
text and never touch the main window's internals: what one feature offers another goes
through :meth:`FeatureRegistry.provide` / :meth:`FeatureHost.get` and :class:`AppEvents`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from PySide6.QtCore import QObject, Qt, Signal

AREAS = {"left": Qt.DockWidgetArea.LeftDockWidgetArea,
         "right": Qt.DockWidgetArea.RightDockWidgetArea,
         "bottom": Qt.DockWidgetArea.BottomDockWidgetArea}

# (name, text, slot, tip) or None for a separator; names key ui.shortcuts.KEYS
ActionItem = Optional[Tuple[str, str, Callable[[], Any], str]]


class AppEvents(QObject):
    """Signals the main window routes between features."""

    sig_record_stored = Signal(object)  # a store Record (labels saved, prediction, review)
    sig_model_selected = Signal(object)  # the selected ModelCard, or None
    sig_models_changed = Signal()  # model folders or active versions changed: re-read them
    sig_status = Signal(str)  # a status-bar message
    sig_error = Signal(str, str)  # title, message: a non-modal error dialog

    def __init__(self, parent=None):
        super().__init__(parent)
        self.selected_model = None  # the last ModelCard announced by sig_model_selected
        self.sig_model_selected.connect(self._remember_model)

    def _remember_model(self, card) -> None:
        self.selected_model = card


def run_leave_guards(guards, what: str, proceed: Callable[[], None], closing: bool) -> bool:
    """Run ``guards`` in order (see FeatureRegistry.leave_guard). True: all let it go ahead
    now (``proceed`` is not called); False: one asked the user, and ``proceed()`` runs once
    every guard agreed."""
    guards = list(guards)

    def run_from(i: int, deferred: bool) -> bool:
        while i < len(guards):
            nxt = i + 1
            if not guards[i](what, lambda: run_from(nxt, True), closing):
                return False
            i = nxt
        if deferred:
            proceed()
        return True

    return run_from(0, False)


@dataclass
class MenuSpec:
    key: str
    title: str
    object_name: str
    order: int = 50  # feature menus sit between Tools and Help, lowest order first


@dataclass
class DockSpec:
    name: str  # objectName, also how other docks refer to it
    title: str
    widget: Any
    area: str = "right"
    tab_with: Optional[str] = None  # tabify with this dock (a core or earlier feature's dock)
    hidden: bool = False  # shown on demand (View > Panels, a menu action)
    tab_title: str = ""  # a short title for its tab (``title``: menu and tooltip), if needed


@dataclass
class Declared:
    menus: List[MenuSpec] = field(default_factory=list)
    actions: List[Tuple[Optional[str], ActionItem, bool]] = field(default_factory=list)
    docks: List[DockSpec] = field(default_factory=list)
    raise_docks: List[str] = field(default_factory=list)
    leave_guards: List[Callable] = field(default_factory=list)


class FeatureRegistry:
    """What the features declared, in order; the main window builds from it."""

    def __init__(self):
        self.declared = Declared()
        self._shared: Dict[str, Any] = {}

    def menu(self, key: str, title: str, object_name: str, order: int = 50) -> None:
        self.declared.menus.append(MenuSpec(key, title, object_name, order))

    def actions(self, menu_key: Optional[str], items: Sequence[ActionItem],
                checkable: Sequence[str] = ()) -> None:
        """Window-wide actions (their shortcuts work wherever the focus is) in menu
        ``menu_key`` (None: on the window only)."""
        for item in items:
            self.declared.actions.append((menu_key, item, item is not None and item[0] in checkable))

    def dock(self, spec: DockSpec) -> None:
        self.declared.docks.append(spec)

    def raise_dock(self, name: str) -> None:
        """Bring ``name`` to the front of its tab group once all docks are in."""
        self.declared.raise_docks.append(name)

    def leave_guard(self, guard: Callable[[str, Callable[[], None], bool], bool]) -> None:
        """``guard(what, proceed, closing)`` runs before the window closes or the series
        changes: True lets it go ahead now; False means the guard asked the user and calls
        ``proceed()`` once they agreed (never, on Cancel)."""
        self.declared.leave_guards.append(guard)

    def provide(self, name: str, obj: Any) -> None:
        """Share ``obj`` with the features built after this one (see FeatureHost.get)."""
        self._shared[name] = obj

    def shared(self, name: str) -> Any:
        if name not in self._shared:
            raise KeyError(f"no feature provides {name!r} (features are built in order)")
        return self._shared[name]


@dataclass
class FeatureHost:
    """What a feature gets from the main window: the shared services, the window's views and
    status/error routes, the action table, the event hub and what earlier features shared."""

    window: Any  # the QMainWindow: a parent for widgets and dialogs only
    services: Any  # medviewer.services.context.AppServices
    bridge: Any  # the QtJobBridge of services.runner
    settings: Any
    views: Dict[str, Any]  # plane -> SliceView
    tri: Any  # TriPlanarView (tool switching, reslicers)
    events: AppEvents
    actions: Dict[str, Any]  # name -> QAction (filled when the window builds the actions)
    menus: Dict[str, Any]  # menu key -> QMenu (filled when the window builds the menus)
    docks: Dict[str, Any]  # dock objectName -> QDockWidget (filled when the window builds them)
    registry: FeatureRegistry
    status_bar: Any
    show_error: Callable[[str, str], None]
    show_notice: Callable[[str], None]
    # confirm_leave(what, proceed) -> True: go ahead now; False: a question is open and
    # proceed() runs once the user agreed (unsaved strokes are saved or discarded)
    confirm_leave: Callable[[str, Callable[[], None]], bool] = lambda what, proceed: True
    withdraw_notice: Callable[[str], None] = lambda text: None  # a notice no longer holds
    privacy: Any = None  # the window's PatientPrivacy (patient details shown or hidden)
    open_paths: Callable[[List[str]], None] = lambda paths: None  # open files/folders as local
    # add_series(volume, source): a derived series into the session and the series browser
    add_series: Optional[Callable[[Any, Any], Any]] = None

    @property
    def session(self):
        return self.services.session

    def get(self, name: str, *default) -> Any:
        """What an earlier feature shared as ``name``; ``default`` (when given) if none did."""
        try:
            return self.registry.shared(name)
        except KeyError:
            if default:
                return default[0]
            raise

    def status(self, message: str, ms: int = 8000) -> None:
        self.status_bar.showMessage(message, ms)
