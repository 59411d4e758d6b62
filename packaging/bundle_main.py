"""Entry point of the standalone bundle (packaging/medviewer.spec): ``medviewer ARGS`` is
``medviewer.app:main`` (GUI, ``info``, ``convert``, ``predict``, ``models``, ``finetune``).

``medviewer -m MODULE ARGS`` runs a MedViewer module as ``python -m`` would: the GUI starts a
fine-tuning run as ``sys.executable -m medviewer.ai.training ...``, and in the bundle
``sys.executable`` is this program, not a Python interpreter.
"""
import multiprocessing
import runpy
import sys


def main() -> int:
    if len(sys.argv) >= 3 and sys.argv[1] == "-m":
        module = sys.argv[2]
        if module != "medviewer" and not module.startswith("medviewer."):
            print(f"medviewer: -m runs MedViewer modules only, not {module!r}", file=sys.stderr)
            return 2
        sys.argv = [sys.argv[0], *sys.argv[3:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return 0
    from medviewer.app import main as app_main

    return app_main()


if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
