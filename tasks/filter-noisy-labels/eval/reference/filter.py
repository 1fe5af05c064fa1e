"""Reference filter: iterated cross-fitted naive Bayes with the trusted class balance.

The noisy labels inflate the priors of the queues that received flipped tickets, so a model
fitted on them agrees with its own mistakes. We (1) replace the fitted priors with the class
balance of the trusted dev set, (2) keep a ticket only when a model that never saw it
predicts its given label, and (3) refit on what was kept and repeat a few rounds.
Run from the workspace: python3 filter.py
"""

import json
import math
import random
from collections import Counter
from pathlib import Path

import nb

FOLDS = 5
ROUNDS = 2


def read_jsonl(path):
    """Records of a JSON-lines file."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def predict(model, text, log_prior):
    """Class with the highest score once the fitted prior is swapped for log_prior."""
    s = nb.scores(model, text)
    s = {c: v - model["classes"][c]["log_prior"] + log_prior[c] for c, v in s.items()}
    return max(sorted(s), key=s.get)


def cross_fit_keep(train, keep, log_prior):
    """Ids whose given label a model trained on the other folds (kept ids only) predicts."""
    order = list(range(len(train)))
    random.Random(0).shuffle(order)
    agreed = set()
    for fold in range(FOLDS):
        held = set(order[fold::FOLDS])
        fit = [r for i, r in enumerate(train) if i not in held and r["id"] in keep]
        model = nb.train(fit)
        agreed |= {train[i]["id"] for i in held
                   if predict(model, train[i]["text"], log_prior) == train[i]["label"]}
    return agreed


def main():
    train = read_jsonl("data/train.jsonl")
    dev = read_jsonl("data/dev.jsonl")
    balance = Counter(r["label"] for r in dev)
    log_prior = {c: math.log(n / len(dev)) for c, n in balance.items()}
    keep = {r["id"] for r in train}
    for _ in range(ROUNDS):
        keep = cross_fit_keep(train, keep, log_prior)
    Path("output").mkdir(exist_ok=True)
    with open("output/clean.jsonl", "w", encoding="utf-8") as f:
        for r in train:
            if r["id"] in keep:
                f.write(json.dumps(r) + "\n")
    print(f"kept {len(keep)} of {len(train)}")


if __name__ == "__main__":
    main()
