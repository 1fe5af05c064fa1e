"""Quick learning-rate probe (a few seconds): 3 epochs per learning rate, no pacing.

Usage: python3 probe.py LR [LR ...]      e.g. python3 probe.py 0.0001 0.001 0.01 0.1 1

Prints the holdout log-loss and accuracy after 3 epochs for each learning rate, using the
same data, split, model and SGD as train.py. Lower holdout loss is better. It writes
nothing; it is only a guide for choosing train.py's --lr.
"""

import argparse
import os
import random

import train

PROBE_EPOCHS = 3


def main():
    parser = argparse.ArgumentParser(description="Probe learning rates for train.py.")
    parser.add_argument("lrs", type=float, nargs="+", help="learning rates, 0.0001 to 1")
    args = parser.parse_args()
    os.chdir(os.path.dirname(os.path.abspath(__file__)))
    X, y = train.load(train.DATA)
    train_X, train_y, hold_X, hold_y = train.split(X, y)
    print(f"{'lr':>10}  {'holdout loss':>12}  {'holdout acc':>11}   (after {PROBE_EPOCHS} epochs)")
    for lr in args.lrs:
        if not 0.0001 <= lr <= 1.0:
            print(f"{lr:>10g}  skipped: outside 0.0001 to 1")
            continue
        rng = random.Random(train.SEED)
        w, b = [0.0] * len(X[0]), 0.0
        for _ in range(PROBE_EPOCHS):
            w, b = train.sgd_epoch(w, b, train_X, train_y, lr, rng)
        loss, acc = train.evaluate(w, b, hold_X, hold_y)
        print(f"{lr:>10g}  {loss:>12.4f}  {acc:>11.4f}")


if __name__ == "__main__":
    main()
