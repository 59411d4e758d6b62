"""``medviewer pacs echo|find|get|send``: the PACS from the command line (DIMSE or DICOMweb).

    medviewer pacs echo --host H --port P [--aet OURS] --called-aet THEIRS
    medviewer pacs find --url http://H:8042/dicom-web --level study|series|patient
                        [--patient-id ID] [--patient-name N] [--modality CT] [--study UID]
                        [--date-from YYYYMMDD] [--date-to YYYYMMDD] [--accession A] [--json]
    medviewer pacs get  ... --study UID [--series UID] --out DIR [--method get|move|wado]
    medviewer pacs send ... FILES...
    medviewer pacs predict ... --model NAME[:VERSION] --study UID [--series UID] --out DIR
                        [--slice N] [--no-send] [--force] [--device auto|cpu|cuda|mps]

DICOMweb credentials: ``--user NAME`` and the password in ``$MEDVIEWER_PACS_PASSWORD`` (never
on the command line, where other users see it). ``find`` prints patient names and IDs as
"(hidden)" unless ``--show-patient``. ``get`` exits 0 only when every instance arrived; what
did arrive is kept in DIR and a second run fetches only the rest. ``predict`` retrieves each
series (the study's series, or one), segments it as ``medviewer predict`` does, writes
``DIR/<SeriesInstanceUID>.nii.gz`` with its sidecar and sends the labels back as a DICOM SEG of
the same study (``--no-send``: keep them local); one JSON line per series; exit 0 when every
series succeeded. Exit 1 on any failure (one ``medviewer: error:`` line saying why), 2 for
usage errors."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from .progress import TtyProgress, reporter

__all__ = ["main", "build_parser", "PASSWORD_ENV"]

PASSWORD_ENV = "MEDVIEWER_PACS_PASSWORD"


def _server_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("server (DIMSE: --host/--port/--called-aet; DICOMweb: --url)")
    g.add_argument("--host", default="", help="DIMSE: the server's host name or address")
    g.add_argument("--port", type=int, default=0, help="DIMSE: the server's port")
    g.add_argument("--aet", default="MEDVIEWER", help="our AE title (default MEDVIEWER)")
    g.add_argument("--called-aet", default="", metavar="AET", help="DIMSE: the server's AE title")
    g.add_argument("--move-port", type=int, default=0, metavar="PORT",
                   help="with --method move: the port our storage SCP listens on (the server "
                        "must know our AE title at this port)")
    g.add_argument("--url", default="", help="DICOMweb: the service's base URL")
    g.add_argument("--user", default="", help=f"DICOMweb: user name (password in ${PASSWORD_ENV})")
    g.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="seconds each call may wait (default 10)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medviewer pacs", description="Query, retrieve and send "
                                "DICOM with a PACS (DIMSE or DICOMweb).")
    sub = p.add_subparsers(dest="action", required=True, metavar="{echo,find,get,send,predict}")
    pe = sub.add_parser("echo", help="check the server answers (C-ECHO or a QIDO-RS search)")
    _server_args(pe)
    pf = sub.add_parser("find", help="search patients, studies or series")
    _server_args(pf)
    pf.add_argument("--level", choices=("patient", "study", "series"), default="study")
    pf.add_argument("--patient-id", default="")
    pf.add_argument("--patient-name", default="", help="wildcards: *")
    pf.add_argument("--modality", default="")
    pf.add_argument("--study", default="", metavar="UID", help="only this study's series")
    pf.add_argument("--date-from", default="", metavar="YYYYMMDD")
    pf.add_argument("--date-to", default="", metavar="YYYYMMDD")
    pf.add_argument("--accession", default="")
    pf.add_argument("--json", action="store_true", help="one JSON object per match")
    pf.add_argument("--show-patient", action="store_true",
                    help="print patient names, IDs and birth dates (hidden by default)")
    pg = sub.add_parser("get", help="retrieve a study or one series into a folder")
    _server_args(pg)
    pg.add_argument("--study", required=True, metavar="UID")
    pg.add_argument("--series", default="", metavar="UID")
    pg.add_argument("--out", required=True, metavar="DIR")
    pg.add_argument("--method", choices=("get", "move", "wado"), default="",
                    help="C-GET (default for DIMSE), C-MOVE, or WADO-RS (DICOMweb)")
    ps = sub.add_parser("send", help="send DICOM files (C-STORE or STOW-RS)")
    _server_args(ps)
    ps.add_argument("files", nargs="+", metavar="FILE", help="DICOM files or folders")
    pp = sub.add_parser("predict", help="retrieve, segment with a model, send the SEG back")
    _server_args(pp)
    pp.add_argument("--model", required=True, metavar="NAME[:VERSION]")
    pp.add_argument("--study", required=True, metavar="UID")
    pp.add_argument("--series", default="", metavar="UID",
                    help="one series (default: every series of the study with a modality "
                         "other than SEG/SR/PR/KO)")
    pp.add_argument("--out", required=True, metavar="DIR")
    pp.add_argument("--slice", type=int, metavar="N", help="segment only slice N")
    pp.add_argument("--no-send", action="store_true", help="keep the labels local")
    pp.add_argument("--force", action="store_true", help="run outside the model's domain")
    pp.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    return p


def _server(args):
    from medviewer.services.pacs import PacsServer

    return PacsServer(host=args.host, port=args.port, calling_aet=args.aet,
                      called_aet=args.called_aet, url=args.url, username=args.user,
                      password=os.environ.get(PASSWORD_ENV, "") if args.url else "",
                      timeout=args.timeout, move_port=args.move_port)


def _files(items: Sequence[str]) -> list:
    out = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out += sorted(str(f) for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
        else:
            out.append(str(p))
    return out


def _human(m: dict) -> str:
    if m["level"] == "patient":
        return f"{m['patient_id']}  {m['patient_name']}"
    if m["level"] == "study":
        return (f"{m['study_uid']}  {m['study_date']}  {m['modalities']}  "
                f"{m['n_series'] or '?'} series  {m['study_description']}")
    return (f"{m['series_uid']}  {m['modality']}  #{m['series_number'] or '?'}  "
            f"{m['n_instances'] or '?'} images  {m['series_description']}  (study {m['study_uid']})")


def run(args, out=None) -> int:
    from medviewer.services import pacs

    out = out or sys.stdout
    try:
        server = _server(args)
        if args.action == "echo":
            pacs.echo(server)
            print(f"{server.label} answered", file=out)
            return 0
        if args.action == "find":
            query = pacs.Query(level=args.level, patient_id=args.patient_id,
                               patient_name=args.patient_name, modality=args.modality,
                               study_uid=args.study, date_from=args.date_from,
                               date_to=args.date_to, accession=args.accession)
            for m in pacs.find(server, query):
                d = m.to_dict(hide_patient=not args.show_patient)
                print(json.dumps(d) if args.json else _human(d), file=out)
            return 0
        if args.action == "get":
            tty = TtyProgress()
            try:
                res = pacs.retrieve(server, args.study, args.series, out=args.out,
                                    method=args.method, reporter=reporter(tty))
            finally:
                tty.done()
            print(f"{len(res.paths)} instances in {args.out} ({res.arrived} retrieved, "
                  f"{res.already_there} were there already)", file=out)
            return 0 if res.complete else 1
        if args.action == "predict":
            return _predict(server, args, out)
        files = _files(args.files)
        n = pacs.send(server, files)
        print(f"sent {n} instances to {server.label}", file=out)
        return 0
    except pacs.PacsError as exc:
        print(f"medviewer: error: {exc}", file=sys.stderr)
        return 1


_NOT_IMAGES = {"SEG", "SR", "PR", "KO", "RTSTRUCT", "DOC"}


def _predict(server, args, out) -> int:
    from medviewer.services import pacs
    from medviewer.services.ai_runs import ModelLane, cpu_cores
    from medviewer.services.model_fit import DomainMismatch
    from medviewer.services.models import ModelCatalog, ModelError, require_automatic
    from medviewer.services.pacs_predict import predict_series

    from .progress import err, reason

    lane = ModelLane(args.device, strict=True, threads=cpu_cores())
    try:
        card = ModelCatalog().get(args.model)
        require_automatic(card)
        lane.model(card)
    except (ModelError, RuntimeError, ValueError) as exc:
        err(f"error: {exc}")
        return 1
    series = [args.series] if args.series else [
        m.series_uid for m in pacs.find(server, pacs.Query(level="series", study_uid=args.study))
        if m.modality.upper() not in _NOT_IMAGES]
    if not series:
        err(f"error: no image series in study {args.study}")
        return 1
    ok = 0
    for uid in series:
        tty = TtyProgress()
        try:
            got = predict_series(server, args.study, uid, card, lane, args.out, z=args.slice,
                                 send=not args.no_send, force=args.force, reporter=reporter(tty))
        except DomainMismatch as exc:
            err(f"refused series {uid}: {card.ref} does not fit it: {exc.fit.reason}")
            continue
        except (pacs.PacsError, ValueError) as exc:
            err(f"series {uid}: {reason(exc)}")
            continue
        finally:
            tty.done()
        ok += 1
        print(json.dumps({"series_uid": uid, "model": card.ref, "out": got.label_map,
                          "seg_sent": got.seg is not None, "labels": got.labels}), file=out)
    return 0 if ok == len(series) else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    from . import run_command

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "pacs":
        args = args[1:]
    return run_command(build_parser(), args, run)
