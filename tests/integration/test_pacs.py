"""PACS against a real Orthanc (tests/orthanc_server.py, fixture ``orthanc`` in tests/conftest.py):
C-ECHO, C-FIND at each level, C-GET, C-MOVE to our own SCP, C-STORE, QIDO-RS, WADO-RS, STOW-RS,
a DICOM SEG sent and retrieved back equal, resume after a partial retrieve, cancel, a server
killed mid-transfer, wrong AE title / port / password, and no identifiers or password in logs."""
import json
import logging
import socket
import sys
import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from medviewer.jobs import CancelToken, Cancelled, Reporter
from medviewer.services import pacs
from medviewer.services.pacs import IncompleteRetrieve, PacsError, PacsServer, Query

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from orthanc_server import (ORTHANC_AET, OUR_AET, PASSWORD, USER, Orthanc,  # noqa: E402
                            free_port)

CHEST_PID = "CMB-CRC-MSB-01068"
N_CHEST = 100


@pytest.fixture(scope="module")
def dimse(orthanc) -> PacsServer:
    return PacsServer(name="test", host="127.0.0.1", port=orthanc.dicom_port,
                      called_aet=ORTHANC_AET, calling_aet=OUR_AET, timeout=10,
                      move_port=orthanc.move_port)


@pytest.fixture(scope="module")
def web(orthanc) -> PacsServer:
    return PacsServer(name="web", url=orthanc.dicomweb_url, username=USER, password=PASSWORD,
                      timeout=10)


@pytest.fixture(scope="module")
def chest_series(dimse):
    (m,) = pacs.find(dimse, Query(level="series", patient_id=CHEST_PID))
    return m


def _uids(paths):
    return sorted(str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths)


def test_echo_dimse_and_dicomweb(dimse, web):
    pacs.echo(dimse)
    pacs.echo(web)


def test_find_at_each_level(dimse, web, chest_series):
    patients = pacs.find(dimse, Query(level="patient"))
    assert {CHEST_PID, "TOTALSEG-EXAMPLE"} <= {m.patient_id for m in patients}
    assert len(patients) >= 3  # and the MR's; tests that send add more
    studies = pacs.find(dimse, Query(level="study", patient_id=CHEST_PID))
    assert len(studies) == 1 and studies[0].study_uid == chest_series.study_uid
    ct = pacs.find(dimse, Query(level="series", modality="CT"))
    assert len(ct) == 2 and {m.n_instances for m in ct} == {N_CHEST, 20}
    assert chest_series.n_instances == N_CHEST and chest_series.modality == "CT"
    mr = pacs.find(dimse, Query(level="study", modality="MR"))
    assert len(mr) == 1 and mr[0].modalities == "MR"
    # QIDO-RS answers the same
    web_series = pacs.find(web, Query(level="series", modality="CT"))
    assert sorted(m.series_uid for m in web_series) == sorted(m.series_uid for m in ct)
    assert {m.patient_id for m in pacs.find(web, Query(level="patient"))} == \
        {m.patient_id for m in patients}
    assert pacs.find(dimse, Query(level="study", patient_id="NOBODY-HERE")) == []


def test_c_get_series_then_resume_fetches_only_what_is_missing(dimse, chest_series, tmp_path,
                                                               chest_ct_dir):
    seen = []
    res = pacs.retrieve(dimse, chest_series.study_uid, chest_series.series_uid, out=tmp_path,
                        reporter=Reporter(lambda p: seen.append(p)))
    assert res.complete and res.arrived == N_CHEST and len(res.paths) == N_CHEST
    assert seen[-1].done == N_CHEST and seen[-1].total == N_CHEST
    assert _uids(res.paths) == _uids(sorted(chest_ct_dir.glob("*.dcm")))
    src = {str(pydicom.dcmread(p).SOPInstanceUID): p for p in sorted(chest_ct_dir.glob("*.dcm"))[:3]}
    for uid, p in src.items():
        got = pydicom.dcmread(Path(res.folder) / chest_series.series_uid / f"{uid}.dcm")
        assert np.array_equal(got.pixel_array, pydicom.dcmread(p).pixel_array)
    gone = sorted(res.paths)[:7]
    for p in gone:
        Path(p).unlink()
    cut = sorted(res.paths)[7:9]  # what a power loss can leave (the cache skips fsync)
    Path(cut[0]).write_bytes(b"")
    Path(cut[1]).write_bytes(Path(cut[1]).read_bytes()[:100])
    again = pacs.retrieve(dimse, chest_series.study_uid, chest_series.series_uid, out=tmp_path)
    assert again.complete and again.arrived == 9 and again.already_there == N_CHEST - 9
    assert all(Path(p).exists() for p in gone)
    assert all(pydicom.dcmread(p).SOPInstanceUID for p in cut)


def test_c_move_to_our_scp_keeps_jpeg2000_as_stored(dimse, orthanc, tmp_path, shared_data):
    (ts,) = [m for m in pacs.find(dimse, Query(level="series", modality="CT")) if m.n_instances == 20]
    res = pacs.retrieve(dimse, ts.study_uid, ts.series_uid, out=tmp_path, method="move")
    assert res.complete and res.arrived == 20
    ds = pydicom.dcmread(res.paths[0])
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"  # not transcoded
    src = sorted((shared_data / "totalseg/tests/reference_files/example_ct_dicom").iterdir())
    orig = {int(pydicom.dcmread(p).InstanceNumber): pydicom.dcmread(p).pixel_array for p in src}
    for p in res.paths[:3]:
        got = pydicom.dcmread(p)
        assert np.array_equal(got.pixel_array, orig[int(got.InstanceNumber)])


def test_c_move_to_an_unknown_destination_says_what_to_register(dimse, chest_series, tmp_path):
    stranger = dimse.with_(calling_aet="STRANGER", move_port=free_port())
    with pytest.raises(PacsError) as err:
        pacs.retrieve(stranger, chest_series.study_uid, chest_series.series_uid, out=tmp_path,
                      method="move")
    assert "STRANGER" in str(err.value)


def test_c_get_whole_study_multiframe(dimse, tmp_path):
    (study,) = pacs.find(dimse, Query(level="study", modality="MR"))
    res = pacs.retrieve(dimse, study.study_uid, out=tmp_path)
    assert res.complete and len(res.paths) == 1
    assert int(pydicom.dcmread(res.paths[0]).NumberOfFrames) == 10


def _new_instance(tmp_path, pydicom_file: str = "emri_small.dcm") -> Path:
    import data_store

    ds = pydicom.dcmread(Path(data_store.__file__).parent / "data" / pydicom_file)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientID = "SENT-" + ds.SOPInstanceUID[-6:]
    path = tmp_path / "new.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_c_store_then_find_it(dimse, tmp_path):
    path = _new_instance(tmp_path)
    assert pacs.send(dimse, [str(path)]) == 1
    pid = str(pydicom.dcmread(path).PatientID)
    (m,) = pacs.find(dimse, Query(level="series", patient_id=pid))
    assert m.n_instances == 1


def test_stow_then_qido_and_wado_back(web, tmp_path):
    path = _new_instance(tmp_path)
    sent = pydicom.dcmread(path)
    assert pacs.send(web, [str(path)]) == 1
    (m,) = pacs.find(web, Query(level="series", patient_id=str(sent.PatientID)))
    res = pacs.retrieve(web, m.study_uid, m.series_uid, out=tmp_path / "back")
    assert res.complete and len(res.paths) == 1
    back = pydicom.dcmread(res.paths[0])
    assert back.SOPInstanceUID == sent.SOPInstanceUID
    assert np.array_equal(back.pixel_array, sent.pixel_array)


def test_wado_series_as_stored_and_resume(web, dimse, tmp_path):
    (ts,) = [m for m in pacs.find(web, Query(level="series", modality="CT")) if m.n_instances == 20]
    res = pacs.retrieve(web, ts.study_uid, ts.series_uid, out=tmp_path)
    assert res.complete and res.arrived == 20
    assert pydicom.dcmread(res.paths[0]).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"
    for p in res.paths[:4]:
        Path(p).unlink()
    again = pacs.retrieve(web, ts.study_uid, ts.series_uid, out=tmp_path)
    assert again.arrived == 4 and again.already_there == 16 and again.complete


def test_seg_sent_and_retrieved_back_is_equal(dimse, chest_ct_dir, tmp_path):
    from medviewer.io.dicom_seg import read_seg
    from medviewer.io.load import open_first

    vol = open_first([chest_ct_dir])
    labels = np.zeros(vol.shape, np.uint8)
    labels[40:60, 200:300, 150:250] = 1
    labels[45:50, 220:260, 300:360] = 3
    table = {"labels": [{"value": 1, "name": "Box", "color": [255, 0, 0]},
                        {"value": 3, "name": "Slab", "color": [0, 255, 0]}]}
    path = pacs.send_seg(dimse, labels, table, vol, folder=tmp_path)
    sent = pydicom.dcmread(path)
    (m,) = [m for m in pacs.find(dimse, Query(level="series", modality="SEG",
                                              study_uid=str(sent.StudyInstanceUID)))
            if m.series_uid == sent.SeriesInstanceUID]
    res = pacs.retrieve(dimse, m.study_uid, m.series_uid, out=tmp_path / "back")
    (back_path,) = res.paths
    back = pydicom.dcmread(back_path)
    assert back.SOPInstanceUID == sent.SOPInstanceUID and back.PatientID == CHEST_PID
    assert back.PixelData == sent.PixelData
    got, got_table, _ = read_seg(back_path, vol.geometry, vol.source_paths)
    assert np.array_equal(got, labels)
    assert [(e["value"], e["name"]) for e in got_table["labels"]] == [(1, "Box"), (3, "Slab")]


def test_cancel_keeps_what_arrived_and_a_second_call_resumes(dimse, chest_series, tmp_path):
    token = CancelToken()

    def progress(p):
        if p.done >= 10:
            token.cancel()

    with pytest.raises(Cancelled) as err:
        pacs.retrieve(dimse, chest_series.study_uid, chest_series.series_uid, out=tmp_path,
                      reporter=Reporter(progress, token))
    kept = list((tmp_path / chest_series.series_uid).glob("*.dcm"))
    assert 10 <= len(kept) < N_CHEST and "kept" in str(err.value)
    for p in kept:
        pydicom.dcmread(p)  # whole files only
    res = pacs.retrieve(dimse, chest_series.study_uid, chest_series.series_uid, out=tmp_path)
    assert res.complete and res.already_there == len(kept)


@pytest.mark.parametrize("protocol", ["dimse", "dicomweb"])
def test_server_killed_mid_transfer_keeps_what_arrived(tmp_path, chest_ct_dir, protocol):
    server = Orthanc(tmp_path / "orthanc").start()
    try:
        server.upload_files(sorted(chest_ct_dir.glob("*.dcm")))
        s = PacsServer(host="127.0.0.1", port=server.dicom_port, called_aet=ORTHANC_AET,
                       calling_aet=OUR_AET, timeout=5)
        if protocol == "dicomweb":
            s = PacsServer(url=server.dicomweb_url, username=USER, password=PASSWORD, timeout=5)
        (m,) = pacs.find(s, Query(level="series"))
        killed = threading.Event()

        def progress(p):
            if p.done >= 15 and not killed.is_set():
                killed.set()
                server.kill()

        with pytest.raises(IncompleteRetrieve) as err:
            pacs.retrieve(s, m.study_uid, m.series_uid, out=tmp_path / "cache",
                          reporter=Reporter(progress))
    finally:
        server.stop()
    msg = str(err.value)
    n = len(err.value.result.paths)
    assert 15 <= n < N_CHEST and "stopped mid-transfer" in msg and f"{n} of {N_CHEST}" in msg
    assert "kept" in msg
    files = list((tmp_path / "cache" / m.series_uid).glob("*.dcm"))
    assert len(files) == n
    for p in files:
        pydicom.dcmread(p)


def test_wrong_called_aet_is_rejected(dimse):
    with pytest.raises(PacsError, match="rejected the association.*AE titles"):
        pacs.echo(dimse.with_(called_aet="NOT-ORTHANC", timeout=3))


def test_wrong_port_and_silent_port_fail_within_the_timeout(dimse):
    with pytest.raises(PacsError, match="connection refused"):
        pacs.echo(dimse.with_(port=free_port(), timeout=2))
    with socket.socket() as silent:  # accepts the TCP connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        with pytest.raises(PacsError, match="did not answer.*within 1 s"):
            pacs.echo(dimse.with_(port=silent.getsockname()[1], timeout=1))


def test_dicomweb_wrong_password_and_port(web):
    with pytest.raises(PacsError, match="refused our credentials"):
        pacs.echo(web.with_(password="wrong"))
    with pytest.raises(PacsError, match="connection refused"):
        pacs.echo(web.with_(url=f"http://127.0.0.1:{free_port()}/dicom-web", timeout=2))


def test_no_patient_identifiers_or_password_in_logs(dimse, web, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("pynetdicom", "dicomweb_client", "urllib3"):
        logging.getLogger(name).setLevel(logging.NOTSET)  # as a host app might leave them
    pacs.find(dimse, Query(level="study", patient_id=CHEST_PID))
    pacs.find(web, Query(level="study", patient_id=CHEST_PID))
    pacs.find(dimse, Query(level="patient"))
    assert caplog.records  # something was logged
    text = caplog.text
    assert CHEST_PID not in text and PASSWORD not in text and "MSB" not in text


def test_cli_find_json_and_get(orthanc, chest_series, tmp_path, capsys, monkeypatch):
    from medviewer.cli import main

    base = ["pacs", "find", "--host", "127.0.0.1", "--port", str(orthanc.dicom_port),
            "--aet", OUR_AET, "--called-aet", ORTHANC_AET]
    assert main(base + ["--level", "series", "--modality", "CT", "--json"]) == 0
    lines = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2 and chest_series.series_uid in {d["series_uid"] for d in lines}
    assert all(d["patient_id"] == "(hidden)" for d in lines)
    get = ["pacs", "get", "--url", orthanc.dicomweb_url, "--user", USER,
           "--study", chest_series.study_uid, "--series", chest_series.series_uid,
           "--out", str(tmp_path)]
    assert main(get) == 1  # no password in $MEDVIEWER_PACS_PASSWORD
    assert "refused our credentials" in capsys.readouterr().err
    monkeypatch.setenv("MEDVIEWER_PACS_PASSWORD", PASSWORD)
    assert main(get) == 0
    assert len(list((tmp_path / chest_series.series_uid).glob("*.dcm"))) == N_CHEST
    echo = ["pacs", "echo", "--host", "127.0.0.1", "--port", str(free_port()),
            "--called-aet", ORTHANC_AET, "--timeout", "2"]
    assert main(echo) == 1
    assert "connection refused" in capsys.readouterr().err


def test_c_get_falls_back_to_every_storage_context_when_the_study_classes_are_wrong(
        dimse, chest_series, tmp_path, monkeypatch):
    """C-GET proposes only the classes SOPClassesInStudy names; a server that names the wrong
    ones (here: MR for the chest CT) makes every sub-operation fail, and the rest comes with
    the full list of storage contexts."""
    from medviewer.io.pacs.dimse import DimseClient

    assert DimseClient(dimse).study_sop_classes(chest_series.study_uid)[0] == \
        "1.2.840.10008.5.1.4.1.1.2"  # CT image storage (and the SEGs other tests sent)
    monkeypatch.setattr(DimseClient, "study_sop_classes",
                        lambda self, uid: ["1.2.840.10008.5.1.4.1.1.4"])
    res = pacs.retrieve(dimse, chest_series.study_uid, chest_series.series_uid, out=tmp_path)
    assert res.complete and len(res.paths) == N_CHEST and res.failed == 0


def test_cli_send_a_folder_then_find_it(orthanc, tmp_path, capsys):
    from medviewer.cli import main

    (tmp_path / "in").mkdir()
    path = _new_instance(tmp_path / "in")
    pid = str(pydicom.dcmread(path).PatientID)
    server = ["--host", "127.0.0.1", "--port", str(orthanc.dicom_port), "--aet", OUR_AET,
              "--called-aet", ORTHANC_AET]
    assert main(["pacs", "send", *server, str(path.parent)]) == 0
    assert "sent 1 instances" in capsys.readouterr().out
    assert main(["pacs", "find", *server, "--level", "patient", "--patient-id", pid,
                 "--json", "--show-patient"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["patient_id"] == pid
    assert main(["pacs", "send", *server, str(tmp_path / "missing.dcm")]) == 1
    assert "cannot send" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_pacs_predict_retrieves_segments_and_sends_the_seg_back(orthanc, chest_series,
                                                                     tmp_path, capsys):
    """`medviewer pacs predict` on one slice of the chest CT: the label map is written and a
    SEG of the same study is on the server afterwards, equal to the label map."""
    import nibabel as nib

    from medviewer.cli import main
    from medviewer.io.dicom_seg import read_seg
    from medviewer.io.load import open_first

    server = ["--host", "127.0.0.1", "--port", str(orthanc.dicom_port), "--aet", OUR_AET,
              "--called-aet", ORTHANC_AET]
    before = {m.series_uid for m in pacs.find(
        PacsServer(host="127.0.0.1", port=orthanc.dicom_port, called_aet=ORTHANC_AET,
                   calling_aet=OUR_AET), Query(level="series", modality="SEG"))}
    rc = main(["pacs", "predict", *server, "--model", "ct-trunk-organs", "--study",
               chest_series.study_uid, "--series", chest_series.series_uid, "--slice", "50",
               "--out", str(tmp_path), "--device", "cpu"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    (rec,) = [json.loads(ln) for ln in captured.out.splitlines()]
    assert rec["seg_sent"] and rec["labels"] and rec["series_uid"] == chest_series.series_uid
    s = PacsServer(host="127.0.0.1", port=orthanc.dicom_port, called_aet=ORTHANC_AET,
                   calling_aet=OUR_AET)
    (new,) = [m for m in pacs.find(s, Query(level="series", modality="SEG"))
              if m.series_uid not in before]
    assert new.study_uid == chest_series.study_uid
    back = pacs.retrieve(s, new.study_uid, new.series_uid, out=tmp_path / "back")
    vol = open_first([tmp_path / "images"])  # the series as predict retrieved it
    labels, _, _ = read_seg(back.paths[0], vol.geometry, vol.source_paths)
    written = np.asarray(nib.load(rec["out"]).dataobj)  # (x, y, z) RAS-flipped on disk
    assert labels[50].any() and not labels[:50].any() and not labels[51:].any()
    assert int((labels > 0).sum()) == int((written > 0).sum())
