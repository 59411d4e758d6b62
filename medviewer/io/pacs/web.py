"""DICOMweb with dicomweb-client: QIDO-RS (studies, series, instances), WADO-RS (a series as it
is stored, or the missing instances one by one when part of it is cached) and STOW-RS. Every
request has the server's timeout (connect and each read); credentials go in the session,
never in a URL or a message."""
from __future__ import annotations

import io
import threading
from collections import OrderedDict
from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional, Sequence

from .cache import InstanceSink, cached_uids
from .common import (CancelFn, IncompleteRetrieve, Match, PacsError, PacsServer, Query,
                     RetrieveCancelled, dicom_date_range, match_from,
                     quiet_third_party_logs)

__all__ = ["WebClient"]

_ANY_SYNTAX = (("application/dicom", "*"),)  # as stored: no transcoding on the server
_FIELDS = ["PatientID", "PatientName", "PatientBirthDate", "StudyDate", "StudyDescription",
           "AccessionNumber", "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
           "NumberOfStudyRelatedInstances", "SeriesNumber", "SeriesDescription", "Modality",
           "NumberOfSeriesRelatedInstances"]
_TAGS = {"PatientID": "00100020", "PatientName": "00100010", "PatientBirthDate": "00100030",
         "StudyInstanceUID": "0020000D", "StudyDate": "00080020", "StudyDescription": "00081030",
         "AccessionNumber": "00080050", "ModalitiesInStudy": "00080061",
         "SeriesInstanceUID": "0020000E", "SeriesNumber": "00200011",
         "SeriesDescription": "0008103E", "Modality": "00080060",
         "NumberOfStudyRelatedSeries": "00201206", "NumberOfStudyRelatedInstances": "00201208",
         "NumberOfSeriesRelatedInstances": "00201209", "SOPInstanceUID": "00080018"}


def _value(item: dict, keyword: str) -> str:
    values = (item.get(_TAGS[keyword]) or {}).get("Value") or []
    out = []
    for v in values:
        out.append(v.get("Alphabetic", "") if isinstance(v, dict) else str(v))
    return "\\".join(out)


def _int(item: dict, keyword: str) -> Optional[int]:
    try:
        return int(_value(item, keyword))
    except ValueError:
        return None


def _match(item: dict, level: str) -> Match:
    return match_from(level, lambda k: _value(item, k), lambda k: _int(item, k))


class WebClient:
    """DICOMweb calls to one server (``PacsServer`` with ``url`` and optional user/password)."""

    def __init__(self, server: PacsServer):
        server.check()
        self.server = server
        quiet_third_party_logs()
        import requests
        from dicomweb_client.api import DICOMwebClient

        session = requests.Session()
        if server.username or server.password:
            session.auth = (server.username, server.password)
        t = float(server.timeout)
        self.client = DICOMwebClient(server.url.rstrip("/"), session=session, timeout=(t, t))
        # its retrying also retries a refused connection with back-off (31 s for a wrong
        # port): every call keeps to the server's one timeout instead
        self.client.set_http_retry_params(retry=False)

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turn requests' errors into one-sentence PacsErrors (no URL query, no credentials)."""
        import requests

        s = self.server
        try:
            yield
        except requests.exceptions.HTTPError as exc:
            code = exc.response.status_code if exc.response is not None else 0
            if code in (401, 403):
                raise PacsError(f"{s.label} refused our credentials for the {what} (HTTP {code})") from None
            if code == 404:
                raise PacsError(f"{s.label} has no such object or no DICOMweb service for the "
                                f"{what} (HTTP 404)") from None
            raise PacsError(f"{s.label} failed the {what} (HTTP {code})") from None
        except requests.exceptions.Timeout:
            raise PacsError(f"{s.label} did not answer the {what} within {s.timeout:g} s") from None
        except requests.exceptions.ConnectionError as exc:
            text = str(exc)
            why = "connection refused" if "refused" in text.lower() else "cannot connect"
            raise PacsError(f"cannot reach {s.label} for the {what} ({why}): check the URL") from None

    # ------------------------------------------------------------------ QIDO-RS
    def echo(self) -> None:
        with self._errors("check"):
            self.client.search_for_studies(limit=1)

    def _filters(self, query: Query) -> dict:
        f = {"PatientID": query.patient_id, "PatientName": query.patient_name,
             "StudyDate": dicom_date_range(query.date_from, query.date_to),
             "AccessionNumber": query.accession, "StudyInstanceUID": query.study_uid}
        if query.level == "series":
            f["Modality"] = query.modality
        elif query.modality:
            f["ModalitiesInStudy"] = query.modality
        return {k: v for k, v in f.items() if v}

    def find(self, query: Query, cancel: Optional[CancelFn] = None) -> List[Match]:
        """QIDO-RS at ``query.level``; patients are the studies' distinct patients (QIDO-RS
        has no patient level)."""
        filters = self._filters(query)
        with self._errors("search"):
            if query.level == "series":
                study = filters.pop("StudyInstanceUID", None)
                items = self.client.search_for_series(study_instance_uid=study,
                                                      search_filters=filters, fields=_FIELDS)
            else:
                items = self.client.search_for_studies(search_filters=filters, fields=_FIELDS)
        matches = [_match(it, query.level) for it in items]
        if query.level != "patient":
            return matches
        patients: "OrderedDict[str, Match]" = OrderedDict()
        for m in matches:
            patients.setdefault(m.patient_id, Match(level="patient", patient_id=m.patient_id,
                                                    patient_name=m.patient_name,
                                                    patient_birth_date=m.patient_birth_date))
        return list(patients.values())

    def instance_uids(self, study_uid: str, series_uid: str) -> List[str]:
        with self._errors("search"):
            items = self.client.search_for_instances(study_uid, series_uid,
                                                     fields=["SOPInstanceUID"])
        return [_value(it, "SOPInstanceUID") for it in items]

    # ------------------------------------------------------------------ WADO-RS
    def retrieve_series(self, study_uid: str, series_uid: str, sink: InstanceSink,
                        method: str = "wado", cancel: Optional[CancelFn] = None) -> None:
        import requests

        counted = None
        if cached_uids(sink.folder_for(series_uid)):  # resuming: which instances are missing?
            uids = self.instance_uids(study_uid, series_uid)
            self._expect(sink, uids)
        else:  # the first retrieve: count the instances while the first ones arrive
            uids, counted = [], self._count_aside(study_uid, series_uid, sink)
        have = sink.note_existing(series_uid, uids)
        missing = [u for u in uids if not sink.exists(series_uid, u)]
        if uids and not missing:
            return
        try:
            with self._errors("retrieve"):
                if have:  # resume: only what is not in the cache
                    for uid in missing:
                        self._check_cancel(cancel, sink)
                        ds = self.client.retrieve_instance(study_uid, series_uid, uid,
                                                           media_types=_ANY_SYNTAX)
                        self._write(sink, series_uid, ds)
                else:
                    it = self.client.iter_series(study_uid, series_uid, media_types=_ANY_SYNTAX)
                    try:
                        for i, ds in enumerate(it):
                            self._write(sink, series_uid, ds)
                            if i == 0 and counted is not None:
                                counted.join()  # the count is in before the second instance
                            self._check_cancel(cancel, sink)
                    finally:
                        it.close()
        except (PacsError, requests.exceptions.RequestException) as exc:
            if isinstance(exc, IncompleteRetrieve):
                raise
            res = sink.result
            raise IncompleteRetrieve(
                f"{self.server.label} stopped mid-transfer ({exc}): {len(res.paths)} of "
                f"{res.expected} instances arrived and are kept in {res.folder}", res) from None
        finally:
            if counted is not None:
                counted.join()
        if counted is not None and counted.error is not None:
            res = sink.result
            raise IncompleteRetrieve(f"{self.server.label} did not say how many instances the "
                                     f"series has ({counted.error}): {len(res.paths)} arrived and "
                                     f"are kept in {res.folder}", res)
        res = sink.result
        if len(res.paths) < (res.expected or 0):
            raise IncompleteRetrieve(
                f"{self.server.label} stopped mid-transfer (the answer ended early): "
                f"{len(res.paths)} of {res.expected} instances arrived and are kept in "
                f"{res.folder}", res)

    @staticmethod
    def _expect(sink: InstanceSink, uids: List[str]) -> None:
        sink.set_expected((sink.expected or 0) + len(uids) if sink.expected else len(uids))

    def _count_aside(self, study_uid: str, series_uid: str, sink: InstanceSink):
        """A thread that asks (QIDO-RS, its own session) how many instances the series has and
        sets the sink's expected count: WADO-RS's stream can end early without an error."""
        worker = threading.Thread(name="pacs-qido-count", daemon=True)
        worker.error = None

        def count():
            try:
                self._expect(sink, WebClient(self.server).instance_uids(study_uid, series_uid))
            except PacsError as exc:
                worker.error = exc

        worker.run = count
        worker.start()
        return worker

    @staticmethod
    def _check_cancel(cancel: Optional[CancelFn], sink: InstanceSink) -> None:
        if cancel is not None and cancel():
            res = sink.result
            raise RetrieveCancelled(f"retrieve cancelled: {len(res.paths)} of {res.expected} "
                                    f"instances arrived and are kept in {res.folder}", res)

    @staticmethod
    def _write(sink: InstanceSink, series_uid: str, ds) -> None:
        from pydicom import dcmwrite

        buf = io.BytesIO()
        dcmwrite(buf, ds, enforce_file_format=True)
        sink.write(series_uid, str(ds.SOPInstanceUID), buf.getvalue())

    # ------------------------------------------------------------------ STOW-RS
    def store(self, paths: Sequence[str], progress: Optional[Callable] = None,
              cancel: Optional[CancelFn] = None, batch: int = 16) -> int:
        """STOW-RS ``paths`` in batches; returns how many the server stored."""
        from pydicom import dcmread

        ok = 0
        for start in range(0, len(paths), batch):
            if cancel is not None and cancel():
                raise PacsError(f"send cancelled after {ok} of {len(paths)} instances")
            part = paths[start:start + batch]
            try:
                datasets = [dcmread(p) for p in part]
            except Exception as exc:
                raise PacsError(f"cannot send: not a DICOM file ({exc})") from None
            with self._errors("send"):
                resp = self.client.store_instances(datasets)
            failed = len(resp.get("FailedSOPSequence", []) or []) if resp is not None else 0
            if failed:
                raise PacsError(f"{self.server.label} refused {failed} of {len(part)} instances")
            ok += len(part)
            if progress is not None:
                progress(ok, len(paths), f"sent {ok} of {len(paths)}")
        return ok
