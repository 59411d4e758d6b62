"""Command line of the starter-model trainers: ``python -m medviewer.ai.starters pneumonia|ct-organs``.

Examples (from the repository root, CPU):

    python -m medviewer.ai.starters pneumonia --arch small_cnn --out models/pneumonia-cxr-smallcnn/1.0.0 --seed 0
    python -m medviewer.ai.starters pneumonia --arch monai_resnet18 --out models/pneumonia-cxr/1.0.0 --seed 0
    python -m medviewer.ai.starters ct-organs --out models/ct-abdomen-organs/1.0.0 --seed 0
    python -m medviewer.ai.starters ct-trunk --out models/ct-trunk-organs/1.0.0 --seed 0 --steps 4000
    python -m medviewer.ai.starters ood-reference --out models/ct-abdomen-organs/1.0.0
    python -m medviewer.ai.starters denoise-ae --out models/denoise-ae/1.0.0 --seed 0

Training ends with the OOD reference of the new model; ``ood-reference`` (re)computes it for an
existing model folder (weights untouched) and writes the card's domain, limits and README.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m medviewer.ai.starters",
                                description="Train MedViewer's starter models on ../shared/data.")
    sub = p.add_subparsers(dest="command", required=True)
    pn = sub.add_parser("pneumonia", help="PneumoniaMNIST classifier (normal vs pneumonia)")
    pn.add_argument("--arch", default="monai_resnet18",
                    choices=["small_cnn", "monai_resnet18", "monai_densenet121"])
    pn.add_argument("--out", required=True, type=Path, help="models/<name>/<version> folder")
    pn.add_argument("--name", default=None, help="model name (default: from --out)")
    pn.add_argument("--version", default=None, help="model version (default: from --out)")
    pn.add_argument("--parent-version", default=None)
    pn.add_argument("--seed", type=int, default=0)
    pn.add_argument("--epochs", type=int, default=20)
    pn.add_argument("--lr", type=float, default=1e-3)
    pn.add_argument("--batch-size", type=int, default=128)
    pn.add_argument("--no-augment", action="store_true", help="train without augmentation")
    dn = sub.add_parser("denoise-ae", help="learned 2D denoiser for CT and MR slices")
    dn.add_argument("--out", required=True, type=Path, help="models/denoise-ae/<version>")
    dn.add_argument("--seed", type=int, default=0)
    dn.add_argument("--steps", type=int, default=2000)
    ct = sub.add_parser("ct-organs", help="2D abdominal organ segmentation (TotalSegmentator refs)")
    ct.add_argument("--out", required=True, type=Path)
    ct.add_argument("--name", default=None)
    ct.add_argument("--version", default=None)
    ct.add_argument("--parent-version", default=None)
    ct.add_argument("--seed", type=int, default=0)
    ct.add_argument("--epochs", type=int, default=60)
    ct.add_argument("--lr", type=float, default=2e-3)
    ct.add_argument("--batch-size", type=int, default=4)
    tr = sub.add_parser("ct-trunk", help="2.5D CT segmentation of chest and abdomen (trunk)")
    tr.add_argument("--out", required=True, type=Path)
    tr.add_argument("--name", default=None)
    tr.add_argument("--version", default=None)
    tr.add_argument("--parent-version", default=None)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--steps", type=int, default=3500)
    tr.add_argument("--lr", type=float, default=2e-3)
    tr.add_argument("--batch-size", type=int, default=8)
    tr.add_argument("--metrics-only", action="store_true",
                    help="an existing model folder: the current post-processing, card texts "
                         "and held-out Dice (weights untouched)")
    it = sub.add_parser("interactive", help="class-agnostic promptable model (clicks, boxes)")
    it.add_argument("--out", required=True, type=Path)
    it.add_argument("--name", default=None)
    it.add_argument("--version", default=None)
    it.add_argument("--parent-version", default=None)
    it.add_argument("--seed", type=int, default=0)
    it.add_argument("--steps", type=int, default=5000)
    it.add_argument("--lr", type=float, default=2e-3)
    it.add_argument("--batch-size", type=int, default=16)
    it.add_argument("--metrics-only", action="store_true",
                    help="recompute the held-out click metrics of an existing model folder")
    ref = sub.add_parser("ood-reference", help="OOD reference statistics of a starter model")
    ref.add_argument("--out", required=True, type=Path, help="the model's folder")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    if args.command == "denoise-ae":
        from medviewer.ai.starters.denoise_ae import CARD, train

        if (out / CARD).exists():
            print(f"{out} already holds a model; a version is never overwritten", file=sys.stderr)
            return 1
        train(out, seed=args.seed, steps=args.steps)
        return 0
    if args.command == "ood-reference":
        from medviewer.ai.starters.ood_reference import write_reference

        write_reference(out)
        return 0
    name = args.name or out.parent.name
    version = args.version or out.name
    if args.command == "interactive":
        from medviewer.ai.interactive.starter import run

        return run(args, name, version)
    if args.command == "ct-trunk" and args.metrics_only:
        from medviewer.ai.starters.trunk_ct import remeasure

        remeasure(out)
        return 0
    if (out / "model.json").exists():
        print(f"{out} already holds a model; a version is never overwritten", file=sys.stderr)
        return 1
    if args.command == "pneumonia":
        from medviewer.ai.starters.pneumonia import train

        train(args.arch, out, seed=args.seed, epochs=args.epochs, lr=args.lr,
              batch_size=args.batch_size, augment=not args.no_augment, version=version,
              name=name, parent_version=args.parent_version)
    elif args.command == "ct-trunk":
        from medviewer.ai.starters.trunk_ct import train

        train(out, seed=args.seed, steps=args.steps, lr=args.lr, batch_size=args.batch_size,
              version=version, name=name, parent_version=args.parent_version)
        from medviewer.ai.starters.ood_reference import write_reference

        write_reference(out)
    else:
        from medviewer.ai.starters.ct_organs import train

        train(out, seed=args.seed, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
              version=version, name=name, parent_version=args.parent_version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
