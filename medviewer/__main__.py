"""`python -m medviewer`: same as the `medviewer` command."""
import sys

from medviewer.app import main

sys.exit(main())
