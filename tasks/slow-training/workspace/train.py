"""Train the model with one learning rate: python3 train.py --lr LR

Runs 6 epochs of about 5 seconds each (about 30 seconds in all) and must not be
interrupted. Writes output/model.json after every epoch; the last write has
"complete": true, and the last line printed starts with "done".
"""

from __future__ import annotations

import argparse
import json
import time

import model

EPOCHS = 6
EPOCH_SECONDS = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description="train the model with one learning rate")
    parser.add_argument("--lr", type=float, required=True, help="one of config.json's candidates")
    lr = parser.parse_args().lr
    if lr not in model.candidates():
        parser.error(f"--lr {lr:g} is not a candidate of config.json: {model.candidates()}")
    out = model.HERE / "output" / "model.json"
    out.parent.mkdir(exist_ok=True)
    hx, hy = model.holdout()
    started = time.time()

    def checkpoint(n: int, w: list[float], b: float) -> None:
        # Training is paced like a real job: each epoch ends on its five-second mark.
        time.sleep(max(0.0, started + n * EPOCH_SECONDS - time.time()))
        state = {
            "complete": n == EPOCHS, "epochs_done": n, "epochs": EPOCHS, "lr": lr,
            "weights": w, "bias": b, "started_at": started, "updated_at": time.time(),
        }
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(out)
        print(f"epoch {n}/{EPOCHS}  holdout loss {model.loss(w, b, hx, hy):.4f}", flush=True)

    print(f"training with lr {lr:g} for {EPOCHS} epochs (about {EPOCHS * EPOCH_SECONDS:g} s)",
          flush=True)
    model.train(lr, EPOCHS, checkpoint)
    print(f"done: output/model.json is complete after {time.time() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
