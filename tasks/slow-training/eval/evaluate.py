"""Score output/model.json of a slow-training instance: python3 evaluate.py WORKSPACE

missing: 0; an incomplete run (killed, or still going): at most 5; a complete run of the
unchanged train.py: 40, plus up to 60 for its gain in test log loss over untrained weights,
as a share of the gain of the instance's best candidate learning rate."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sys
from pathlib import Path

EPOCHS, EPOCH_SECONDS = 6, 5.0


def result(score: float, **details: object) -> None:
    print(json.dumps({"score": round(score, 1), "details": details}))


def test_loss(weights: list[float], bias: float) -> float:
    with open("truth/test.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    total = 0.0
    for row in rows:
        *x, y = (float(v) for v in row)
        z = max(-30.0, min(30.0, sum(w * v for w, v in zip(weights, x)) + bias))
        p = min(1 - 1e-9, max(1e-9, 1 / (1 + math.exp(-z))))
        total -= y * math.log(p) + (1 - y) * math.log(1 - p)
    return total / len(rows)


def main() -> None:
    workspace = Path(sys.argv[1])
    answer = json.loads(Path("truth/answer.json").read_text())
    path = workspace / "output" / "model.json"
    if not path.is_file():
        return result(0, error="output/model.json not found; run train.py to the end")
    train_py = workspace / "train.py"
    shipped = Path("train.py.sha256").read_text().strip()
    if not train_py.is_file() or hashlib.sha256(train_py.read_bytes()).hexdigest() != shipped:
        return result(0, error="train.py was changed or removed; train with the original")
    try:
        model = json.loads(path.read_text())
        done, lr = int(model["epochs_done"]), float(model["lr"])
        weights, bias = [float(w) for w in model["weights"]], float(model["bias"])
        took = float(model["updated_at"]) - float(model["started_at"])
    except (ValueError, KeyError, TypeError) as exc:
        return result(0, error=f"output/model.json is not a checkpoint of train.py ({exc})")
    if model.get("complete") is not True or done < EPOCHS:
        return result(min(5.0, done), epochs_done=done, error="the training run did not finish")
    if took < 0.9 * EPOCHS * EPOCH_SECONDS:
        return result(0, error=f"a complete run takes about {EPOCHS * EPOCH_SECONDS:g} s, this "
                      f"one {took:.1f} s; output/model.json must come from train.py")
    if str(lr) not in answer["test_loss"]:
        return result(0, error=f"lr {lr:g} is not one of config.json's candidates")
    loss = test_loss(weights, bias)
    best = min(answer["test_loss"].values())
    gain = min(1.0, max(0.0, (math.log(2) - loss) / (math.log(2) - best)))
    result(40 + 60 * gain, epochs_done=done, lr=lr, test_loss=round(loss, 4))


if __name__ == "__main__":
    main()
