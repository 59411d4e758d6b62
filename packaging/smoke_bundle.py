#!/usr/bin/env python3
"""Smoke-test the standalone bundle (dist/medviewer/) from a temporary folder outside the checkout.

Usage: python3 packaging/smoke_bundle.py [BUNDLE_DIR] [--data SHARED_DATA]
  BUNDLE_DIR   default <repo>/dist/medviewer
  --data       default $MEDVIEWER_SHARED_DATA, else <repo>/../shared/data

Standard library only (any Python 3.8+ runs it; the bundle brings its own). Runs: --version,
`models --json` (built-ins inside the bundle), `--demo --screenshot` offscreen (the PNG must exist
and not be blank), `info --json` on the real chest CT, `convert` of one MR image stored in 7
transfer syntaxes (every decoder must give the same voxels), `predict` with the CT organ model
on one CT slice (label map with organs) and the pneumonia model on a radiograph (probabilities
sum to 1), and `-m medviewer.ai.training --help` (how the GUI starts fine-tuning). Prints one
line per check and the time it took; exit code 1 when any check failed.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHEST_CT = "tcia_cmb_crc_ct_chest"
TS_FOLDER = "dcm_qa_ts/In"  # one MR slice in 9 files, 7 transfer syntaxes (lossless)


class Check:
    def __init__(self):
        self.failed: list[str] = []

    def __call__(self, name, fn):
        t0 = time.perf_counter()
        try:
            detail = fn()
            status = "ok  "
        except Exception as exc:  # report every check, then fail at the end
            detail, status = f"{type(exc).__name__}: {exc}", "FAIL"
            self.failed.append(name)
        print(f"{status} {name:<38} {time.perf_counter() - t0:6.1f} s  {detail or ''}", flush=True)


def run(app, *args, cwd, env, timeout=300):
    proc = subprocess.run([str(app), *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {proc.stderr.strip()[-1500:]}")
    return proc


def png_pixels(path: Path):
    """(width, height, channels, rows of bytes) of an 8-bit non-interlaced PNG (what Qt writes)."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, head = 8, b"", None
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    w, h, depth, ctype, _, _, interlace = head
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(ctype)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"unsupported PNG (depth {depth}, colour type {ctype}, "
                         f"interlace {interlace})")
    raw, stride, rows, prev = zlib.decompress(idat), w * channels, [], bytearray(w * channels)
    for y in range(h):
        start = y * (stride + 1)
        ftype, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, channels, rows


def nifti(path: Path):
    """(dims x, y, z, bytes per voxel, voxel bytes) of a NIfTI-1 .nii.gz."""
    raw = gzip.decompress(path.read_bytes())
    if struct.unpack("<i", raw[:4])[0] != 348:
        raise ValueError("not a little-endian NIfTI-1 file")
    dims = struct.unpack("<8h", raw[40:56])
    bitpix = struct.unpack("<h", raw[72:74])[0]
    offset = int(struct.unpack("<f", raw[108:112])[0])
    return dims[1], dims[2], max(dims[3], 1), bitpix // 8, raw[offset:]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bundle", nargs="?", default=str(REPO / "dist" / "medviewer"))
    ap.add_argument("--data", default=os.environ.get("MEDVIEWER_SHARED_DATA")
                    or str(REPO.parent / "shared" / "data"))
    args = ap.parse_args(argv)
    bundle = Path(args.bundle).resolve()
    app, data = bundle / "medviewer", Path(args.data).resolve()
    if not app.is_file():
        print(f"no bundle at {app}: build it with `bash packaging/build_bundle.sh`",
              file=sys.stderr)
        return 2
    have_data = (data / CHEST_CT).is_dir()
    work = Path(tempfile.mkdtemp(prefix="medviewer-smoke-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(QT_QPA_PLATFORM="offscreen", MEDVIEWER_MODELS=str(work / "user-models"),
               MEDVIEWER_SETTINGS_DIR=str(work / "settings"), MEDVIEWER_AI_PRELOAD="0")
    if have_data:
        env["MEDVIEWER_SHARED_DATA"] = str(data)  # the demo adds the chest CT
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file() and not f.is_symlink())
    print(f"bundle {bundle} ({size / 2**20:.0f} MiB); cwd {work}; "
          f"data {data if have_data else 'missing: data checks skipped'}")
    check = Check()
    go = dict(cwd=work, env=env)

    check("--version", lambda: run(app, "--version", **go).stdout.strip())

    def models():
        doc = json.loads(run(app, "models", "--json", **go).stdout)
        builtin = Path(doc["builtin_dir"]).resolve()
        assert builtin.is_relative_to(bundle), f"built-in models outside the bundle: {builtin}"
        refs = sorted(m["ref"] for m in doc["models"] if m["source"] == "built-in")
        assert len(refs) >= 2 and not doc["refused"], doc
        return ", ".join(refs)
    check("models --json", models)

    def screenshot():
        png = work / "demo.png"
        run(app, "--demo", "--screenshot", png, **go)
        w, h, ch, rows = png_pixels(png)
        pixels = [r[i:i + ch] for r in rows[::4] for i in range(0, len(r), 4 * ch)]
        colours = {}
        for p in pixels:
            colours[p] = colours.get(p, 0) + 1
        top = max(colours.values()) / len(pixels)
        assert w >= 400 and h >= 300 and len(colours) >= 64 and top < 0.9, \
            f"blank-looking screenshot: {w}x{h}, {len(colours)} colours, top colour {top:.0%}"
        return (f"{png.stat().st_size} bytes, {w}x{h}, {len(colours)} colours (sampled), "
                f"top colour {top:.0%}")
    check("--demo --screenshot (offscreen)", screenshot)

    if have_data:
        def info():
            doc = json.loads(run(app, "info", data / CHEST_CT, "--json", **go).stdout)
            (s,) = doc["series"]
            assert s["modality"] == "CT" and s["shape_zyx"] == [100, 512, 512] and not s["error"], s
            return f"CT {s['shape_zyx']} spacing {s['spacing_xyz']} {s['orientation']}"
        check("info --json (chest CT)", info)

        def decoders():
            files = sorted((data / TS_FOLDER).glob("*.dcm"), key=lambda p: int(p.stem))
            voxels = []
            for f in files:
                run(app, "convert", f, work / f"ts{f.stem}.nii.gz", **go)
                voxels.append(nifti(work / f"ts{f.stem}.nii.gz")[4])
            same = [v == voxels[0] for v in voxels]
            assert voxels[0].strip(b"\0") and all(same), f"decoded voxels differ: {same}"
            return f"{len(files)} files decode to identical voxels"
        check("convert (7 transfer syntaxes)", decoders)

        def segment():
            run(app, "predict", "--model", "ct-abdomen-organs", "--slice", "60", data / CHEST_CT,
                "--out", "seg.nii.gz", **go)
            nx, ny, nz, bpp, vox = nifti(work / "seg.nii.gz")
            plane = nx * ny * bpp
            sl = vox[60 * plane:61 * plane]
            side = json.loads((work / "seg.labels.json").read_text())
            names = {lab["value"]: lab["name"] for lab in side["labels"]}
            found = sorted({b for b in sl if b})
            assert bpp == 1 and found and sum(1 for b in sl if b) > 1000, (bpp, found)
            return (f"{nx}x{ny}x{nz}; slice 60: {sum(1 for b in sl if b)} labelled voxels, "
                    f"{', '.join(names.get(v, str(v)) for v in found)}")
        check("predict ct-abdomen-organs --slice 60", segment)

    def classify():
        (rg,) = list((bundle / "_internal").glob("data_store/data/RG1_UNCI.dcm")) or \
            list(bundle.rglob("RG1_UNCI.dcm"))
        out = run(app, "predict", "--model", "pneumonia-cxr", rg, "--out", "-", **go).stdout
        (rec,) = [json.loads(line) for line in out.splitlines() if line.strip()]
        total = sum(rec["probabilities"].values())
        assert abs(total - 1) < 1e-5 and rec["class"] in rec["probabilities"], rec
        return f"radiograph (pydicom-data, in the bundle): {rec['class']} {rec['probabilities']}"
    check("predict pneumonia-cxr", classify)

    def training_entry():
        text = run(app, "-m", "medviewer.ai.training", "--help", **go).stdout
        assert "usage" in text.lower(), text[:300]
        return text.strip().splitlines()[0][:90]
    check("-m medviewer.ai.training --help", training_entry)

    shutil.rmtree(work, ignore_errors=True)
    print(f"{'FAILED: ' + ', '.join(check.failed) if check.failed else 'all checks passed'}")
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())
