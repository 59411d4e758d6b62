"""Features declare menus, actions (with shortcuts) and docks to the registry; the main window
builds them, and features reach each other only through what they share and the event hub."""
import pytest
from PySide6.QtWidgets import QLabel

from medviewer.ui.features import DockSpec


class ToyFeature:
    """A feature written only against the registry API (as a 3D or PACS feature would be)."""

    name = "toy"

    def __init__(self, host):
        self.host, self.calls, self.stored = host, [], []
        reg = host.registry
        reg.menu("toy", "&Toy", "toyMenu", order=5)
        reg.actions("toy", [("toy_go", "&Go", lambda: self.calls.append("go"), "Do the toy thing"),
                            None, ("toy_more", "&More", lambda: None, "")])
        reg.dock(DockSpec("toyDock", "Toy", QLabel("toy", host.window), tab_with="tagDock"))
        reg.provide("toy-counter", self.calls)
        host.events.sig_record_stored.connect(self.stored.append)
        self.started = False

    def start(self):
        self.started = self.host.actions["toy_go"] is not None

    def shutdown(self):
        self.calls.append("shutdown")


class NeedsToy:
    name = "needs"

    def __init__(self, host):
        self.counter = host.get("toy-counter")

    def start(self):
        pass

    def shutdown(self):
        pass


@pytest.fixture
def toy_window(qtbot, monkeypatch):
    from medviewer.ui import shortcuts
    from medviewer.ui.main_window import MainWindow

    monkeypatch.setitem(shortcuts.KEYS, "toy_go", "Ctrl+Alt+T")
    win = MainWindow(features=[ToyFeature, NeedsToy])
    qtbot.addWidget(win)
    yield win
    win.close()


def test_declared_menu_action_dock_and_sharing(qtbot, toy_window):
    win = toy_window
    toy = win.features["toy"]
    titles = [a.text() for a in win.menuBar().actions()]
    assert titles.index("&Toy") == titles.index("&Help") - 1  # feature menus sit before Help
    menu = win.feature_host.menus["toy"]
    assert [a.objectName() for a in menu.actions() if not a.isSeparator()] == [
        "action_toy_go", "action_toy_more"]
    assert len([a for a in menu.actions() if a.isSeparator()]) == 1
    go = win.actions_by_name["toy_go"]
    assert go.shortcut().toString() == "Ctrl+Alt+T" and go in win.actions()
    go.trigger()
    assert toy.calls == ["go"] and toy.started
    dock = win.docks["toyDock"]
    assert dock in win.tabifiedDockWidgets(win.tag_dock)
    assert win.features["needs"].counter is toy.calls  # shared through the registry
    assert win.toy is toy  # features by name
    win.events.sig_record_stored.emit("a record")
    assert toy.stored == ["a record"]
    win.close()
    assert toy.calls[-1] == "shutdown"


def test_a_feature_built_before_its_provider_fails_clearly(qtbot):
    from medviewer.ui.main_window import MainWindow

    with pytest.raises(KeyError, match="toy-counter"):
        MainWindow(features=[NeedsToy])


def test_the_app_features_menus_and_docks(window):
    titles = [a.text() for a in window.menuBar().actions()]
    assert titles[-5:] == ["&Labels", "F&indings", "&AI", "Re&gistration", "&Help"]
    tabbed = window.tabifiedDockWidgets(window.docks["segmentationDock"])
    assert {window.docks["aiDock"], window.docks["reviewQueueDock"]} <= set(tabbed)
    acts = window.actions_by_name
    assert acts["case_label_1"].shortcut().toString() == "Alt+1"
    assert acts["review_next"].shortcut().toString() == "N"
    assert acts["ai_finetune"] in window.feature_host.menus["ai"].actions()
    assert set(window.features) == {"annotation", "ai", "review", "view3d", "pacs", "registration",
                                    "enhance", "findings"}
    assert window.docks["findingsDock"] in window.tabifiedDockWidgets(window.docks["historyDock"])
    assert not window.docks["registrationDock"].isVisible()  # shown once a registration ends
    assert acts["register_series"].shortcut().toString() == "Ctrl+Alt+R"
    assert acts["register_series"] in window.feature_host.menus["registration"].actions()
    assert window.docks["pacsDock"] in window.tabifiedDockWidgets(window.docks["seriesDock"])
    # a feature adds to the View menu (menu key "view"): the 3D pane's switch, shortcut 4
    assert acts["view3d_toggle"] in window.feature_host.menus["view"].actions()
    assert acts["view3d_toggle"].shortcut().toString() == "4"
    # and to the Tools menu (menu key "tools"): Enhance image…, Ctrl+Alt+E
    assert acts["enhance_image"] in window.feature_host.menus["tools"].actions()
    assert acts["enhance_image"].shortcut().toString() == "Ctrl+Alt+E"


def test_the_docks_leave_the_slice_views_room(window):
    """Every feature's dock shares a side with others: none may be so wide that the slice
    views shrink (a PACS dock with four buttons a row once left the axial view 179 px of a
    1300 px window)."""
    from PySide6.QtWidgets import QDockWidget

    for dock in window.findChildren(QDockWidget):
        assert dock.minimumSizeHint().width() <= 400, dock.objectName()
    ax = window.tri.views["axial"]
    assert ax.viewport().width() >= 240
