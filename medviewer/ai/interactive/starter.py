"""``python -m medviewer.ai.starters interactive``: train the promptable model, measure it on the
held-out structures and cases against the classical engine, and write the model folder
(weights, model.json, README.md). ``--metrics-only`` re-measures an existing folder."""
from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = ["run", "measure", "readme_text"]


def measure(quick: bool = False, log=print) -> dict:
    """Held-out click metrics of the loaded learned model and of the classical engine."""
    from medviewer.ai.interactive import classical, learned
    from medviewer.ai.interactive.evaluate import (compare, engine_fn, evaluate,
                                                   evaluation_set, summary)

    items = evaluation_set(quick)
    log(f"evaluating on {len(items)} held-out structures")
    rows_l = evaluate(engine_fn(learned), items)
    rows_c = evaluate(engine_fn(classical), items)
    return {"split": "held-out structure classes and held-out cases (never trained on)",
            "protocol": "next click at the centre of the largest error region, up to 20 "
                        "clicks, on the axial slice where the structure is largest",
            "learned": summary(rows_l), "classical": summary(rows_c),
            "vs_classical": compare(rows_l, rows_c),
            "per_structure": [dict(r, noc85_classical=c["noc85"]) for r, c in
                              zip(rows_l, rows_c)]}


def readme_text(card: dict) -> str:
    m = card.get("metrics") or {}
    t = card["training"]
    lines = [f"# {card['name']} {card['version']}", "", card["description"], "",
             "## What it does",
             "Clicks (positive/negative), boxes and scribbles on one slice of any plane and "
             "modality to a mask, in MedViewer's Prompt tool and `medviewer prompt --engine "
             "learned`. It also corrects a previous mask and carries a mask to the next slice "
             "(3D propagation).", "",
             "## Held-out evaluation (click protocol, up to 20 clicks)"]
    if m:
        lines += ["| engine | group | n | median NoC@85 | mean NoC@85 | median NoC@90 | "
                  "Dice@1 | Dice@3 | Dice@5 |", "|---|---|---|---|---|---|---|---|---|"]
        for eng in ("learned", "classical"):
            for g, s in m.get(eng, {}).items():
                lines.append(f"| {eng} | {g} | {s['n']} | {s['median_noc85']} | "
                             f"{s['mean_noc85']} | {s['median_noc90']} | {s['mean_dice_1']} | "
                             f"{s['mean_dice_3']} | {s['mean_dice_5']} |")
        vc = m.get("vs_classical", {})
        lines += ["", f"Mean NoC@85: learned {vc.get('mean_noc85_learned')}, classical "
                      f"{vc.get('mean_noc85_classical')} ({vc.get('fewer_clicks_pct')} % fewer "
                      f"clicks)."]
    lines += ["", "## Training",
              f"- Command: `{t['command']}` (seed {t['seed']}, {t['steps']} steps of "
              f"{t['batch_size']}, {t['wall_time_s']} s on {t['device']}).",
              f"- Data: {t['data']}.",
              f"- Held-out classes: {', '.join(t['held_out_classes'])}.",
              f"- Held-out cases: {', '.join(t['held_out_cases'])}.",
              f"- Prompts: {t['prompts']}.", f"- Augmentation: {t['augmentation']}.", "",
              "## Limits"] + [f"- {x}" for x in card["limits"]] + [
              "", f"Licence: {card['license']}.", ""]
    return "\n".join(lines)


def run(args, name: str, version: str) -> int:
    from medviewer.ai.cards import ModelCard
    from medviewer.ai.interactive import learned
    from medviewer.ai.interactive.train import card_dict, train
    from medviewer.ai.starters.common import command_line, write_model_folder
    from medviewer.core.atomic import atomic_write_text

    out = Path(args.out)
    if args.metrics_only:
        card = ModelCard.load(out)
        from medviewer.ai.weights import load_model

        learned.set_model(load_model(card).eval(), card)
        data = json.loads((out / "model.json").read_text())
        data["metrics"] = measure()
        atomic_write_text(out / "model.json", json.dumps(data, indent=2) + "\n")
        atomic_write_text(out / "README.md", readme_text(data))
        print(json.dumps({k: data["metrics"][k] for k in ("learned", "classical",
                                                          "vs_classical")}))
        return 0
    if (out / "model.json").exists():
        print(f"{out} already holds a model; a version is never overwritten", file=sys.stderr)
        return 1
    result = train(out, seed=args.seed, steps=args.steps, batch_size=args.batch_size,
                   lr=args.lr)
    model = result.pop("model")
    learned.set_model(model)
    try:
        metrics = measure()
    except Exception as exc:  # keep the trained weights whatever happens
        print(f"held-out evaluation failed: {exc}", file=sys.stderr)
        metrics = {"error": str(exc)}
    card = card_dict(name, version, args.parent_version, result, command_line(), metrics)
    write_model_folder(out, model, card, readme_text(card))
    (out / "checkpoint.safetensors").unlink(missing_ok=True)  # kept until the folder is whole
    print(json.dumps({k: metrics.get(k) for k in ("learned", "classical", "vs_classical")}))
    return 0
