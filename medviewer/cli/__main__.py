"""``python -m medviewer.cli COMMAND ...``: the headless commands without the GUI entry."""
import sys

from medviewer.cli import main

sys.exit(main())
