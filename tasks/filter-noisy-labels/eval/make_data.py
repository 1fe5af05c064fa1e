"""Regenerate this task's data deterministically (fixed seed; Python 3.11 stdlib only).

Writes workspace/data/train.jsonl (noisy labels), workspace/data/dev.jsonl (a small trusted
set), eval/data/train_truth.jsonl (the training set with every ticket's true label) and
eval/data/test.jsonl (the hidden test set). Run from anywhere: python3 eval/make_data.py
"""

import json
import random
from pathlib import Path

SEED = 20240611
HERE = Path(__file__).resolve().parent
WORKSPACE_DATA = HERE.parent / "workspace" / "data"
EVAL_DATA = HERE / "data"

CLASSES = ["account", "billing", "shipping", "technical"]

# Words that mostly belong to one queue.
SPECIFIC = {
    "account": "login password username profile email verify locked reset signup "
    "twofactor settings deactivate nickname avatar security phone recovery linked "
    "privacy preferences",
    "billing": "invoice charged refund payment card subscription price receipt "
    "overcharged plan renewal discount tax bank paypal billed fee upgrade downgrade cost",
    "shipping": "package delivery courier tracking shipped parcel address warehouse "
    "arrived delayed box label pickup dispatch carrier postage customs doorstep lost route",
    "technical": "crash error bug app screen loading freeze update install browser "
    "sync server timeout slow button firmware version restart glitch device",
}
# Confusable pairs share vocabulary (an account's plan, a device that shipped broken).
SHARED_PAIR = {
    ("account", "billing"): "account charge cancel membership renew premium",
    ("shipping", "technical"): "order tracker notification status broken replacement",
}
GENERAL = (
    "hi hello please help thanks thank you i my the a an is was it not can cant "
    "could would need still again today yesterday week since problem issue question "
    "urgent asap support team customer service soon why how what when working anymore "
    "just tried times already waiting any idea fix sorry really very"
).split()

# A ticket has LENGTH words: each is class-specific with probability P_SPECIFIC, shared with
# the confusable class with probability P_SHARED, and general otherwise.
LENGTH = (4, 9)
P_SPECIFIC = 0.15
P_SHARED = 0.25

# Structured label noise: a rushed labelling vendor routed whole kinds of tickets to the
# wrong queue. (true class -> (noisy class, probability)).
FLIPS = {
    "account": ("billing", 0.42),
    "billing": ("account", 0.12),
    "technical": ("shipping", 0.42),
    "shipping": ("technical", 0.18),
}


def vocab_for(label):
    """Specific and pair-shared words of a class."""
    specific = SPECIFIC[label].split()
    shared = []
    for pair, words in SHARED_PAIR.items():
        if label in pair:
            shared += words.split()
    return specific, shared


def ticket(rng, label):
    """One synthetic support ticket of a true class."""
    specific, shared = vocab_for(label)
    words = []
    for _ in range(rng.randint(*LENGTH)):
        r = rng.random()
        if r < P_SPECIFIC:
            words.append(rng.choice(specific))
        elif r < P_SPECIFIC + P_SHARED:
            words.append(rng.choice(shared))
        else:
            words.append(rng.choice(GENERAL))
    return " ".join(words)


def make(rng, n, prefix, noisy):
    """n tickets; each has its true label and, when noisy, a possibly flipped given label."""
    rows = []
    for i in range(n):
        true = rng.choice(CLASSES)
        given = true
        if noisy:
            target, p = FLIPS[true]
            if rng.random() < p:
                given = target
        rows.append({"id": f"{prefix}{i:05d}", "text": ticket(rng, true), "label": given,
                     "true_label": true})
    return rows


def write(path, rows, keys):
    """Write rows as JSON lines, keeping only some keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({k: row[k] for k in keys}) + "\n")


def main():
    rng = random.Random(SEED)
    train = make(rng, 3000, "tr", noisy=True)
    dev = make(rng, 200, "dv", noisy=False)
    test = make(rng, 2000, "te", noisy=False)
    write(WORKSPACE_DATA / "train.jsonl", train, ("id", "text", "label"))
    write(WORKSPACE_DATA / "dev.jsonl", dev, ("id", "text", "label"))
    write(EVAL_DATA / "train_truth.jsonl", train, ("id", "text", "label", "true_label"))
    write(EVAL_DATA / "test.jsonl", test, ("id", "text", "label"))


if __name__ == "__main__":
    main()
