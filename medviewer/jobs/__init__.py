"""Background work, stdlib only: progress and cancellation (:mod:`.progress`), the one driver
of step-yielding generators (:mod:`.drive`) and the thread-pool job runner (:mod:`.runner`)
that the Qt bridge and the command line both use."""
from .drive import Step, drive
from .progress import CancelToken, Cancelled, Progress, Reporter
from .runner import Job, JobRunner

__all__ = ["CancelToken", "Cancelled", "Job", "JobRunner", "Progress", "Reporter", "Step", "drive"]
