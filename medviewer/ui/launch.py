"""run_gui: create the QApplication and main window, open paths, optionally save a screenshot."""
from __future__ import annotations

import sys
from typing import Callable, List, Optional


def run_gui(paths: List[str], demo: bool = False, screenshot: Optional[str] = None,
            layout: str = "tri", compose: Optional[Callable] = None,
            anonymise: bool = True) -> int:
    """Show the viewer. ``compose(settings)`` makes the app's shared services (the composition
    root passes it; default: the standard ones). With ``screenshot``, save the window once
    loading finished (patient details hidden in it unless ``anonymise`` is False) and exit."""
    import pyqtgraph as pg
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("MedViewer")
    app.setApplicationName("MedViewer")
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)
    from .gui_gc import GuiThreadCollector

    collector = GuiThreadCollector(parent=app).start()  # no collection on worker threads

    from . import settings as st
    from .main_window import MainWindow

    services = compose(st.app_settings()) if compose is not None else None
    win = MainWindow(services)
    if layout:
        win.set_layout(layout)
    paths = [str(p) for p in paths]
    if demo:
        try:
            from medviewer.services.studies import demo_paths

            paths += [str(p) for p in demo_paths()]
        except Exception as exc:  # the demo data are optional; say why and go on
            win.show_error("Demo data unavailable", f"{type(exc).__name__}: {exc}")
    result = {"code": 0}

    if screenshot:
        win.resize(1400, 900)

        def grab_and_quit():
            if result.get("done"):
                return
            if win.loader.busy:
                QTimer.singleShot(100, grab_and_quit)
                return
            result["done"] = True
            app.processEvents()
            try:
                win.save_screenshot(screenshot, anonymise=anonymise)
            except OSError as exc:
                print(f"medviewer: {exc}", file=sys.stderr)
                result["code"] = 1
            if paths and win.session.active is None:
                result["code"] = 1
            win.close()
            app.quit()

        def on_finished():
            QTimer.singleShot(300, grab_and_quit)  # let the views and tag browser settle

        win.loader.sig_finished.connect(on_finished)
        if not paths:
            QTimer.singleShot(200, grab_and_quit)
    win.show()
    if paths:
        QTimer.singleShot(0, lambda: win.open_paths(paths))
    app.exec()
    win.services.close()
    from medviewer.services import ai_process

    ai_process.shared().close()
    collector.stop(collect=False)
    return result["code"]
