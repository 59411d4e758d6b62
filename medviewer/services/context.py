"""AppServices: the shared objects of one running app — the Session (what is open), the job
runner, the Workspace (label store) and the model catalogue. Made once by the composition
root and handed to every feature; no feature makes its own or borrows another's."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from medviewer.core.session import Session
from medviewer.jobs import JobRunner

from .models import ModelCatalog
from .workspace import Workspace


@dataclass
class AppServices:
    session: Session
    runner: JobRunner  # the I/O pool (the UI attaches its GUI-thread dispatch)
    workspace: Workspace
    catalog: ModelCatalog

    @classmethod
    def create(cls, settings=None, session: Optional[Session] = None,
               runner: Optional[JobRunner] = None) -> "AppServices":
        """The default composition: a fresh Session, a 2-thread I/O runner, the workspace of
        ``settings`` (anything with ``value(key, default)``) and the model folders."""
        return cls(session or Session(), runner or JobRunner(max_workers=2),
                   Workspace(settings), ModelCatalog())

    def close(self) -> None:
        self.runner.shutdown()
        self.workspace.close()
