"""Try each candidate learning rate of config.json for one quick epoch.

usage: python3 trial.py

Prints each candidate's holdout loss after one epoch (lower is better). Takes a second or two.
"""

from __future__ import annotations

import sys

import model


def main(argv: list[str]) -> int:
    if argv:
        print(__doc__.strip())
        return 2
    hx, hy = model.holdout()
    print("lr        holdout loss after 1 epoch")
    for lr in model.candidates():
        w, b = model.train(lr, 1)
        print(f"{lr:<9g} {model.loss(w, b, hx, hy):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
