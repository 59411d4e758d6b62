"""services.finetune.TrainerOutput: the trainer's stdout read in arbitrary chunks."""
import json

from medviewer.services.finetune import TrainerOutput, trainer_args


def test_events_split_across_chunks_and_text_lines():
    out = TrainerOutput()
    lines = [json.dumps({"event": "start", "epochs": 2}), "plain text",
             json.dumps({"event": "gate", "promote": True}),
             json.dumps({"event": "done", "version": "1.1.0"})]
    data = ("\n".join(lines)).encode()
    items = []
    for i in range(0, len(data), 7):  # 7-byte chunks cut lines anywhere
        items += out.feed(data[i:i + 7])
    items += out.flush()  # the last line had no newline
    assert [x if isinstance(x, str) else x["event"] for x in items] == ["start", "plain text",
                                                                       "gate", "done"]
    assert out.gate["promote"] is True
    assert out.outcome(0, False) == ("done", {"event": "done", "version": "1.1.0"})


def test_outcomes_cancelled_and_failed():
    out = TrainerOutput()
    out.feed(b'{"event": "error", "message": "bad manifest"}\n')
    assert out.outcome(2, False) == ("failed", "training exited with code 2: bad manifest")
    assert out.outcome(130, False)[0] == "cancelled"
    assert out.outcome(-15, True)[0] == "cancelled"
    silent = TrainerOutput()
    assert silent.outcome(1, False, "x\nTraceback: boom") == (
        "failed", "training exited with code 1: Traceback: boom")


def test_trainer_args():
    assert trainer_args("m:1.0.0", 3, 0.02, "/models", promote=False, extra=["--seed", "1"]) == [
        "--base", "m:1.0.0", "--epochs", "3", "--margin", "0.02", "--models-dir", "/models",
        "--no-promote", "--seed", "1"]
