"""A real Orthanc for the PACS tests and the ``pacs`` benchmark: its own config (loopback DICOM
and HTTP ports, our AE registered for C-MOVE, the DICOMweb plugin, a user and password) in a
temporary folder, started as a plain process, loaded over its REST API, stopped after.

Debian: ``apt-get install orthanc orthanc-dicomweb dcmtk`` (``packaging/install.sh --test``
does it when run as root)."""
from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path
from typing import Iterable, List, Optional

ORTHANC_AET = "ORTHANC"
OUR_AET = "MEDVIEWER"
USER, PASSWORD = "mvtest", "s3cret-Pa55"
PLUGIN_GLOBS = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
                "/usr/lib/orthanc/libOrthancDicomWeb.so*",
                "/usr/lib/x86_64-linux-gnu/orthanc/*DicomWeb*.so*")
INSTALL_HINT = ("Orthanc is not installed: run `bash packaging/install.sh --test` as root, or "
                "`apt-get install -y orthanc orthanc-dicomweb dcmtk` (Debian/Ubuntu)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def orthanc_binary() -> Optional[str]:
    return shutil.which("Orthanc") or (os.path.exists("/usr/sbin/Orthanc") and "/usr/sbin/Orthanc") or None


def dicomweb_plugin() -> Optional[str]:
    for pattern in PLUGIN_GLOBS:
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[0]
    return None


class Orthanc:
    """One Orthanc process. ``start()`` waits for its HTTP port; ``stop()`` ends it."""

    def __init__(self, folder: Path, move_port: Optional[int] = None):
        self.folder = Path(folder)
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.move_port = move_port or free_port()  # our storage SCP's port for C-MOVE
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def config(self) -> dict:
        plugin = dicomweb_plugin()
        return {
            "Name": "medviewer-test", "StorageDirectory": str(self.folder / "db"),
            "IndexDirectory": str(self.folder / "db"), "StorageCompression": False,
            "HttpServerEnabled": True, "HttpPort": self.http_port, "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD},
            "DicomServerEnabled": True, "DicomAet": ORTHANC_AET, "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": True, "DicomScpTimeout": 30,
            "DicomModalities": {"medviewer": {"AET": OUR_AET, "Host": "127.0.0.1",
                                              "Port": self.move_port, "AllowEcho": True,
                                              "AllowFind": True, "AllowGet": True,
                                              "AllowMove": True, "AllowStore": True}},
            "Plugins": [plugin] if plugin else [],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True,
                         "StudiesMetadata": "Full", "SeriesMetadata": "Full"},
            "ConcurrentJobs": 2, "HttpThreadsCount": 8, "StableAge": 1,
            "LimitFindResults": 0, "LimitFindInstances": 0,
        }

    def start(self, timeout: float = 30.0) -> "Orthanc":
        binary = orthanc_binary()
        if binary is None or dicomweb_plugin() is None:
            raise RuntimeError(INSTALL_HINT)
        (self.folder / "db").mkdir(parents=True, exist_ok=True)
        cfg = self.folder / "orthanc.json"
        cfg.write_text(json.dumps(self.config(), indent=1))
        self.log = open(self.folder / "orthanc.log", "wb")
        self.proc = subprocess.Popen([binary, str(cfg)], stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=self.folder)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.proc.returncode}; its log: "
                                   f"{(self.folder / 'orthanc.log').read_text()[-2000:]}")
            try:
                self.rest("/system")
                return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer on port {self.http_port} within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()

    def kill(self) -> None:
        """Stop it at once (SIGKILL), as a crashed server would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    # ------------------------------------------------------------------ REST
    def rest(self, path: str, data: Optional[bytes] = None, method: Optional[str] = None):
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", "Basic " + b64encode(f"{USER}:{PASSWORD}".encode()).decode())
        if data is not None:
            req.add_header("Content-Type", "application/dicom")
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
        return json.loads(body) if body[:1] in (b"{", b"[") else body

    def upload(self, blobs: Iterable[bytes]) -> List[str]:
        return [self.rest("/instances", data=b)["ID"] for b in blobs]

    def upload_files(self, paths: Iterable[Path]) -> List[str]:
        return self.upload(Path(p).read_bytes() for p in paths)


def totalseg_with_uids(folder: Path) -> List[bytes]:
    """The TotalSegmentator DICOM example with the UIDs and SOP class it lacks filled in
    (derived from the file names, so they are the same in every run)."""
    import io

    import pydicom
    from pydicom.uid import CTImageStorage, generate_uid

    out = []
    study = generate_uid(entropy_srcs=["medviewer-totalseg-study"])
    series = generate_uid(entropy_srcs=["medviewer-totalseg-series"])
    for p in sorted(folder.iterdir()):
        ds = pydicom.dcmread(p)
        sop = generate_uid(entropy_srcs=["medviewer-totalseg", p.name])
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, sop
        ds.SOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.PatientID = ds.get("PatientID") or "TOTALSEG-EXAMPLE"
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(buf.getvalue())
    return out
