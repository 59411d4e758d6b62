"""Query, retrieve and send against a PACS (DIMSE or DICOMweb), shared by the PACS dock and
``medviewer pacs``: one client per configured server, retrieves into the local cache with
progress and cancel (a jobs Reporter), a DICOM SEG of a label map sent back.

The cache is ``<workspace>/pacs-cache/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` unless the
caller names a folder; what arrived stays there, so a second retrieve fetches only the rest."""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from medviewer.io.pacs import (IncompleteRetrieve, Match, PacsError, PacsServer, Query,
                               RetrieveCancelled, RetrieveResult)
from medviewer.io.pacs.cache import InstanceSink
from medviewer.jobs import Cancelled

log = logging.getLogger(__name__)

__all__ = ["PacsError", "IncompleteRetrieve", "PacsServer", "Query", "Match", "RetrieveResult",
           "METHODS", "client_for", "echo", "find", "retrieve", "send", "send_seg",
           "default_cache", "Cancelled"]

METHODS = ("get", "move", "wado")  # wado only for DICOMweb servers; get/move only for DIMSE


def client_for(server: PacsServer):
    """The DICOMweb or DIMSE client for ``server`` (checked: a bad setting raises PacsError)."""
    if server.kind == "dicomweb":
        from medviewer.io.pacs.web import WebClient

        return WebClient(server)
    from medviewer.io.pacs.dimse import DimseClient

    return DimseClient(server)


def default_cache(settings=None) -> Path:
    from .workspace import workspace_dir

    return workspace_dir(settings) / "pacs-cache"


def _cancel_fn(reporter) -> Optional[Callable[[], bool]]:
    token = getattr(reporter, "cancel", None)
    return (lambda: token.cancelled) if token is not None else None


def echo(server: PacsServer) -> None:
    """C-ECHO (DIMSE) or a one-study QIDO-RS search (DICOMweb); raises PacsError."""
    client_for(server).echo()
    log.info("PACS %s answered", server.label)


def find(server: PacsServer, query: Query, reporter=None) -> List[Match]:
    matches = client_for(server).find(query, _cancel_fn(reporter))
    log.info("PACS %s: %d %s-level matches", server.label, len(matches), query.level)
    return matches


def retrieve(server: PacsServer, study_uid: str, series_uid: str = "", out=None,
             method: str = "", reporter=None,
             on_instance: Optional[Callable[[str], None]] = None) -> RetrieveResult:
    """Fetch one series (or every series of the study when ``series_uid`` is empty) into
    ``out`` (default :func:`default_cache`). ``method``: get or move (DIMSE), wado
    (DICOMweb); empty: get or wado. Raises IncompleteRetrieve (what arrived is kept and
    listed in its ``result``), PacsError, or jobs.Cancelled when the reporter's token is set."""
    client = client_for(server)
    method = method or ("wado" if server.kind == "dicomweb" else "get")
    if (method == "wado") != (server.kind == "dicomweb"):
        raise PacsError(f"{method} does not work with a {server.kind} server "
                        f"(DIMSE: get or move; DICOMweb: wado)")
    cancel = _cancel_fn(reporter)
    progress = None
    if reporter is not None:
        progress = lambda done, total, msg: reporter(done, total, msg)  # noqa: E731
    if series_uid:
        series = [series_uid]
    else:
        found = client.find(Query(level="series", study_uid=study_uid), cancel)
        series = [m.series_uid for m in found if m.series_uid]
        if not series:
            raise PacsError(f"{server.label} has no series in the study {study_uid}")
    sink = InstanceSink(out if out is not None else default_cache(), progress=None,
                        on_instance=on_instance)
    sink.progress = _guarded(progress, sink)
    try:
        for uid in series:
            sink.series_uid = uid
            client.retrieve_series(study_uid, uid, sink, method=method, cancel=cancel)
    except RetrieveCancelled as exc:
        log.info("PACS retrieve cancelled: %d instances kept", len(exc.result.paths))
        raise Cancelled(str(exc)) from None
    res = sink.result
    log.info("PACS %s: retrieved %d instances (%d were cached) by %s", server.label,
             res.arrived, res.already_there, method)
    return res


def _guarded(progress, sink: InstanceSink):
    """The reporter raises Cancelled when the token is set: inside a storage handler that
    must not escape (the client sees the token and stops cleanly), so it is swallowed."""
    if progress is None:
        return None

    def report(done, total, msg):
        try:
            progress(done, total, msg)
        except Cancelled:
            pass
    return report


def send(server: PacsServer, paths: Sequence[str], reporter=None) -> int:
    """C-STORE (DIMSE) or STOW-RS (DICOMweb) ``paths``; returns how many were stored."""
    paths = [str(p) for p in paths]
    if not paths:
        raise PacsError("nothing to send")
    progress = None
    if reporter is not None:
        progress = lambda done, total, msg: reporter(done, total, msg)  # noqa: E731
    n = client_for(server).store(paths, progress, _cancel_fn(reporter))
    log.info("PACS %s: sent %d instances", server.label, n)
    return n


def send_seg(server: PacsServer, labels, table: dict, volume, reporter=None,
             folder=None) -> Path:
    """Write ``labels`` on ``volume`` as a DICOM SEG of the same patient and study (not
    anonymised: it goes back to the archive it came from) and send it; returns the file."""
    from .exports import export_seg

    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="medviewer-seg-"))
    path = export_seg(labels, table, volume, folder / "seg.dcm", anonymise=False)
    send(server, [str(path)], reporter)
    return Path(path)
