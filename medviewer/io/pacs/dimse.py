"""DIMSE with pynetdicom: C-ECHO, C-FIND (patient/study/series/image), C-GET, C-MOVE to our own
storage SCP, and C-STORE. Every call has the server's timeout (TCP connect, association,
each message); a retrieve writes each instance into the cache as it arrives, can be cancelled
(the association is aborted) and says how many instances arrived when it ends early."""
from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional, Sequence

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from .cache import InstanceSink, cached_uids
from .common import (CancelFn, IncompleteRetrieve, Match, PacsError, PacsServer, Query,
                     RetrieveCancelled, quiet_third_party_logs)
from .identifiers import answer_match, identifier, int_of, text_of
from .negotiation import get_contexts, is_loopback, no_delay

__all__ = ["DimseClient"]

_PENDING = (0xFF00, 0xFF01)
_STORE_OK = (0x0000, 0xB000, 0xB006, 0xB007)


def _pnd():
    import pynetdicom
    from pynetdicom import sop_class

    return pynetdicom, sop_class


class DimseClient:
    """DIMSE calls to one server (``PacsServer`` with host, port and AE titles)."""

    def __init__(self, server: PacsServer):
        server.check()
        self.server = server
        quiet_third_party_logs()

    # ------------------------------------------------------------------ association
    def _ae(self):
        pynetdicom, _ = _pnd()
        ae = pynetdicom.AE(ae_title=self.server.calling_aet)
        t = float(self.server.timeout)
        ae.connection_timeout = ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = t
        return ae

    def _why_not(self, assoc, waited: float) -> str:
        s = self.server
        where = f"{s.host}:{s.port}"
        if assoc.is_rejected:
            return (f"{where} rejected the association: check the AE titles (ours "
                    f"{s.calling_aet!r}, the server's {s.called_aet!r}) and that the server "
                    f"knows ours")
        try:
            with socket.create_connection((s.host, int(s.port)), timeout=s.timeout):
                pass
        except ConnectionRefusedError:
            return f"nothing listens on {where} (connection refused): check the host and port"
        except socket.timeout:
            return f"{where} did not answer within {s.timeout:g} s"
        except OSError as exc:
            return f"cannot reach {where}: {exc.strerror or exc}"
        if assoc.is_aborted and waited < 0.9 * s.timeout:
            return f"{where} aborted the association: check the AE titles and the port"
        return (f"{where} did not answer the association request within {s.timeout:g} s "
                f"(is it a DICOM port?)")

    @contextmanager
    def _assoc(self, ae, **kwargs) -> Iterator:
        s = self.server
        t0 = time.monotonic()
        assoc = ae.associate(s.host, int(s.port), ae_title=s.called_aet, **kwargs)
        if not assoc.is_established:
            raise PacsError(self._why_not(assoc, time.monotonic() - t0))
        no_delay(assoc)
        try:
            yield assoc
        finally:
            if assoc.is_established:
                assoc.release()

    # ------------------------------------------------------------------ calls
    def echo(self) -> None:
        _, sc = _pnd()
        ae = self._ae()
        ae.add_requested_context(sc.Verification)
        with self._assoc(ae) as assoc:
            status = assoc.send_c_echo()
        if "Status" not in status:
            raise PacsError(f"{self.server.label} did not answer the C-ECHO within "
                            f"{self.server.timeout:g} s")
        if status.Status != 0:
            raise PacsError(f"{self.server.label} answered the C-ECHO with status 0x{status.Status:04X}")

    def find(self, query: Query, cancel: Optional[CancelFn] = None) -> List[Match]:
        """C-FIND at ``query.level`` (patient root for patients, study root otherwise)."""
        return [answer_match(ds, query.level) for ds in self._find(identifier(query), query.level, cancel)]

    def _find(self, ident: Dataset, level: str, cancel: Optional[CancelFn]) -> List[Dataset]:
        _, sc = _pnd()
        model = (sc.PatientRootQueryRetrieveInformationModelFind if level == "patient"
                 else sc.StudyRootQueryRetrieveInformationModelFind)
        ae = self._ae()
        ae.add_requested_context(model)
        out: List[Dataset] = []
        with self._assoc(ae) as assoc:
            for status, found in assoc.send_c_find(ident, model):
                if "Status" not in status:
                    raise PacsError(f"{self.server.label} stopped answering the C-FIND "
                                    f"(no reply within {self.server.timeout:g} s)")
                if status.Status in _PENDING:
                    if found is not None:
                        out.append(found)
                    if cancel is not None and cancel():
                        assoc.abort()
                        break
                elif status.Status != 0:
                    raise PacsError(f"{self.server.label} refused the C-FIND (status "
                                    f"0x{status.Status:04X}): does it allow queries from "
                                    f"{self.server.calling_aet!r}?")
        return out

    def instance_uids(self, study_uid: str, series_uid: str) -> List[str]:
        """The SOP Instance UIDs of a series (an IMAGE-level C-FIND)."""
        ds = Dataset()
        ds.QueryRetrieveLevel = "IMAGE"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = ""
        return [text_of(f, "SOPInstanceUID") for f in self._find(ds, "image", None)]

    # ------------------------------------------------------------------ retrieve
    def retrieve_series(self, study_uid: str, series_uid: str, sink: InstanceSink,
                        method: str = "get", cancel: Optional[CancelFn] = None) -> None:
        """Fetch one series into ``sink`` by C-GET or C-MOVE; instances already in the cache
        are not fetched again (the missing ones are asked for in one request listing their
        UIDs, or one by one where the server cannot match a list)."""
        uids = None
        if cached_uids(sink.folder_for(series_uid)):  # resuming: which instances are missing?
            try:
                uids = self.instance_uids(study_uid, series_uid)
            except PacsError:
                uids = None  # no image-level queries: fetch the series, keep what is there
        # else the first retrieve of this series: no extra query before the first image; the
        # server's sub-operation counts say how many instances to expect
        requests: List[Dataset] = []
        if uids is not None:
            sink.set_expected((sink.expected or 0) + len(uids) if sink.expected else len(uids))
            have = sink.note_existing(series_uid, uids)
            missing = [u for u in uids if not sink.exists(series_uid, u)]
            if not missing:
                return
            if have:  # one IMAGE-level request listing the missing instances' UIDs
                ds = self._retrieve_id("IMAGE", study_uid, series_uid)
                ds.SOPInstanceUID = missing if len(missing) > 1 else missing[0]
                requests.append(ds)
        if not requests:
            requests.append(self._retrieve_id("SERIES", study_uid, series_uid))
        # C-GET: propose storage contexts for the study's SOP classes only when the server
        # names them (127 contexts took 0.17 s to negotiate with Orthanc, 20 took 0.02 s)
        classes = self.study_sop_classes(study_uid) if method == "get" else None
        fetch = (self._move if method == "move"
                 else lambda reqs, snk, cn: self._get(reqs, snk, cn, classes))
        try:
            fetch(requests, sink, cancel)
        except RetrieveCancelled:
            raise
        except PacsError as exc:
            # a class missing from SOPClassesInStudy fails its sub-operations (Orthanc then
            # answers 0xC000; others count them as failed)
            narrowed = bool(classes) and (not isinstance(exc, IncompleteRetrieve)
                                          or exc.result.failed > 0)
            listed = isinstance(exc, IncompleteRetrieve) and bool(
                requests[0].get("SOPInstanceUID")) and uids is not None
            if not narrowed and not listed:
                raise
            # the rest: with every storage context when some class was missing from the
            # study's list, one by one when the server did not match a list of UIDs
            if uids is None:
                try:
                    uids = self.instance_uids(study_uid, series_uid)
                except PacsError:
                    raise exc from None
            rest = [u for u in uids if not sink.exists(series_uid, u)]
            sink.result.failed = 0
            if not rest:
                return
            if narrowed and len(rest) == len(uids):  # nothing arrived: the series again
                again = [self._retrieve_id("SERIES", study_uid, series_uid)]
            elif narrowed:
                again = [self._retrieve_id("IMAGE", study_uid, series_uid)]
                again[0].SOPInstanceUID = rest if len(rest) > 1 else rest[0]
            else:
                again = []
                for uid in rest:
                    again.append(self._retrieve_id("IMAGE", study_uid, series_uid))
                    again[-1].SOPInstanceUID = uid
            if method == "move":
                self._move(again, sink, cancel)
            else:
                self._get(again, sink, cancel, None)

    def study_sop_classes(self, study_uid: str) -> Optional[List[str]]:
        """The SOP classes the server says the study holds (SOPClassesInStudy), or None."""
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = study_uid
        ds.SOPClassesInStudy = ""
        try:
            found = self._find(ds, "study", None)
        except PacsError:
            return None
        out: List[str] = []
        for f in found:
            v = f.get("SOPClassesInStudy", None)
            for uid in (v if isinstance(v, MultiValue) else [v] if v else []):
                if str(uid) not in out:
                    out.append(str(uid))
        return out or None

    @staticmethod
    def _retrieve_id(level: str, study_uid: str, series_uid: str) -> Dataset:
        ds = Dataset()
        ds.QueryRetrieveLevel = level
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        return ds

    def _store_handler(self, sink: InstanceSink, cancel: Optional[CancelFn], errors: list):
        def handle(event):
            if cancel is not None and cancel():
                return 0xA700
            try:
                sink.write(sink.series_uid, event.request.AffectedSOPInstanceUID,
                           event.encoded_dataset(include_meta=True))
            except Exception as exc:  # a full disk: refuse this one, report after
                errors.append(exc)
                return 0xA700
            return 0x0000
        return handle

    @contextmanager
    def _cancel_watch(self, assoc, cancel: Optional[CancelFn]):
        """Abort ``assoc`` when ``cancel()`` turns true (the caller is blocked in a generator)."""
        stop = threading.Event()
        hit = []

        def watch():
            while not stop.wait(0.1):
                if cancel():
                    hit.append(True)
                    assoc.abort()
                    # the caller waits for the next DIMSE message up to the whole timeout:
                    # wake it now with the (None, None) that stands for "aborted"
                    queue = getattr(getattr(assoc, "dimse", None), "msg_queue", None)
                    if queue is not None:
                        queue.put((None, None))
                    return

        t = None
        if cancel is not None:
            t = threading.Thread(target=watch, name="pacs-cancel", daemon=True)
            t.start()
        try:
            yield hit
        finally:
            stop.set()
            if t is not None:
                t.join()

    def _run_retrieve(self, assoc, requests, send, sink, cancel, what: str) -> None:
        last = None
        with self._cancel_watch(assoc, cancel) as cancelled:
            for ds in requests:
                for status, _ in send(ds):
                    last = status
                    if "Status" not in status:
                        break
                    if status.Status in _PENDING and len(requests) == 1:
                        n = sum(int_of(status.get(k)) or 0 for k in (
                            "NumberOfRemainingSuboperations", "NumberOfCompletedSuboperations",
                            "NumberOfFailedSuboperations", "NumberOfWarningSuboperations"))
                        if n and not sink.expected:
                            sink.set_expected(n)
                if last is None or "Status" not in last:
                    break
                if last.Status not in (0x0000, 0xB000) and last.Status not in _PENDING:
                    self._refused(last.Status, what)
                sink.result.failed += int_of(last.get("NumberOfFailedSuboperations")) or 0
        self._check_done(sink, last, bool(cancelled) or (cancel is not None and cancel()), what)

    def _refused(self, status: int, what: str) -> None:
        s = self.server
        if status == 0xA801:
            raise PacsError(f"{s.label} does not know {s.calling_aet!r} as a C-MOVE destination: "
                            f"register it in the server's modality list with our host and "
                            f"port {s.move_port or '(the storage port)'}, or use C-GET")
        raise PacsError(f"{s.label} refused the {what} (status 0x{status:04X})")

    def _check_done(self, sink: InstanceSink, last, cancelled: bool, what: str) -> None:
        res = sink.result
        n, total = len(res.paths), res.expected
        of = f"{n} of {total}" if total else f"{n}"
        if cancelled:
            raise RetrieveCancelled(f"retrieve cancelled: {of} instances arrived and are kept "
                                    f"in {res.folder}", res)
        if (last is None or "Status" not in last) and n == 0:
            s = self.server
            dest = (f" and know it as a move destination at port {s.move_port}"
                    if what == "C-MOVE" else "")
            raise IncompleteRetrieve(
                f"{s.label} ended the {what} without an answer and sent nothing: does it "
                f"allow {what} from our AE title {s.calling_aet!r}{dest}?", res)
        if last is None or "Status" not in last:
            raise IncompleteRetrieve(
                f"{self.server.label} stopped mid-transfer ({what} got no reply within "
                f"{self.server.timeout:g} s or the connection closed): {of} instances arrived "
                f"and are kept in {res.folder}", res)
        if not res.complete:
            raise IncompleteRetrieve(f"{self.server.label} sent {of} instances ({res.failed} "
                                     f"failed); those that arrived are kept in {res.folder}", res)

    def _get(self, requests: Sequence[Dataset], sink: InstanceSink, cancel: Optional[CancelFn],
             sop_classes: Optional[List[str]] = None):
        pynetdicom, sc = _pnd()
        from pynetdicom import build_role, evt

        ae = self._ae()
        ae.add_requested_context(sc.StudyRootQueryRetrieveInformationModelGet)
        classes = []
        for uid, syntaxes in get_contexts(sop_classes):
            ae.add_requested_context(uid, syntaxes)
            if uid not in classes:
                classes.append(uid)
        roles = [build_role(uid, scp_role=True) for uid in classes]
        errors: list = []
        handlers = [(evt.EVT_C_STORE, self._store_handler(sink, cancel, errors))]
        with self._assoc(ae, ext_neg=roles, evt_handlers=handlers) as assoc:
            send = lambda ds: assoc.send_c_get(ds, sc.StudyRootQueryRetrieveInformationModelGet)  # noqa: E731
            self._run_retrieve(assoc, requests, send, sink, cancel, "C-GET")
        if errors:
            raise PacsError(f"cannot write into {sink.root}: {errors[0]}")

    def _move(self, requests: Sequence[Dataset], sink: InstanceSink, cancel: Optional[CancelFn]):
        pynetdicom, sc = _pnd()
        from pynetdicom import AllStoragePresentationContexts, evt

        s = self.server
        scp = self._ae()
        for cx in AllStoragePresentationContexts:
            scp.add_supported_context(cx.abstract_syntax, pynetdicom.ALL_TRANSFER_SYNTAXES)
        errors: list = []
        handlers = [(evt.EVT_C_STORE, self._store_handler(sink, cancel, errors)),
                    (evt.EVT_ESTABLISHED, lambda event: no_delay(event.assoc))]
        bind = "127.0.0.1" if is_loopback(s.host) else ""
        try:
            server = scp.start_server((bind, int(s.move_port)), block=False, evt_handlers=handlers)
        except OSError as exc:
            raise PacsError(f"cannot listen on port {s.move_port} for the C-MOVE: "
                            f"{exc.strerror or exc}") from None
        try:
            ae = self._ae()
            ae.add_requested_context(sc.StudyRootQueryRetrieveInformationModelMove)
            with self._assoc(ae) as assoc:
                send = lambda ds: assoc.send_c_move(  # noqa: E731
                    ds, s.calling_aet, sc.StudyRootQueryRetrieveInformationModelMove)
                self._run_retrieve(assoc, requests, send, sink, cancel, "C-MOVE")
        finally:
            server.shutdown()
        if errors:
            raise PacsError(f"cannot write into {sink.root}: {errors[0]}")

    # ------------------------------------------------------------------ send
    def store(self, paths: Sequence[str], progress: Optional[Callable] = None,
              cancel: Optional[CancelFn] = None) -> int:
        """C-STORE ``paths``; returns how many the server accepted (raises if any failed)."""
        from pydicom import dcmread
        from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

        wanted: dict = {}
        for p in paths:
            try:
                ds = dcmread(p, stop_before_pixels=True, specific_tags=["SOPClassUID"])
                wanted.setdefault(str(ds.SOPClassUID), set()).add(str(ds.file_meta.TransferSyntaxUID))
            except Exception as exc:
                raise PacsError(f"cannot send {p}: not a DICOM file with an SOP class ({exc})") from None
        if len(wanted) > 128:
            raise PacsError("more than 128 kinds of DICOM object in one send: send them in parts")
        ae = self._ae()
        for sop, syntaxes in wanted.items():
            ae.add_requested_context(sop, sorted(syntaxes | {ExplicitVRLittleEndian,
                                                             ImplicitVRLittleEndian}))
        ok = failed = 0
        with self._assoc(ae) as assoc:
            for i, p in enumerate(paths):
                if cancel is not None and cancel():
                    raise PacsError(f"send cancelled after {ok} of {len(paths)} instances")
                try:
                    status = assoc.send_c_store(p)
                except ValueError as exc:  # no accepted context for its class/syntax
                    raise PacsError(f"{self.server.label} accepts no transfer syntax for "
                                    f"{p}: {exc}") from None
                if "Status" not in status:
                    raise PacsError(f"{self.server.label} stopped answering after {ok} of "
                                    f"{len(paths)} instances (no reply within "
                                    f"{self.server.timeout:g} s)")
                if status.Status in _STORE_OK:
                    ok += 1
                else:
                    failed += 1
                if progress is not None:
                    progress(i + 1, len(paths), f"sent {i + 1} of {len(paths)}")
        if failed:
            raise PacsError(f"{self.server.label} refused {failed} of {len(paths)} instances")
        return ok
