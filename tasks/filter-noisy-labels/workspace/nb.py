"""The fixed classifier: multinomial naive Bayes over lower-cased word tokens.

This file is identical to the evaluator's copy; changing it does not change how you are scored.
"""

import math
import re
from collections import Counter

TOKEN = re.compile(r"[a-z0-9']+")


def tokenize(text):
    """Lower-cased word tokens of a text."""
    return TOKEN.findall(text.lower())


def train(records, alpha=1.0):
    """Fit on records with 'text' and 'label'; return a model usable by predict()."""
    class_docs = Counter()
    word_counts = {}
    vocab = set()
    for rec in records:
        label = rec["label"]
        class_docs[label] += 1
        counts = word_counts.setdefault(label, Counter())
        for tok in tokenize(rec["text"]):
            counts[tok] += 1
            vocab.add(tok)
    total_docs = sum(class_docs.values())
    model = {"vocab_size": len(vocab), "classes": {}}
    for label, n_docs in class_docs.items():
        counts = word_counts[label]
        total = sum(counts.values())
        denom = total + alpha * len(vocab)
        model["classes"][label] = {
            "log_prior": math.log(n_docs / total_docs),
            "log_unseen": math.log(alpha / denom),
            "log_prob": {w: math.log((c + alpha) / denom) for w, c in counts.items()},
        }
    return model


def scores(model, text):
    """Log-posterior (up to a constant) of each class for a text."""
    toks = tokenize(text)
    out = {}
    for label, cls in model["classes"].items():
        lp, unseen = cls["log_prob"], cls["log_unseen"]
        out[label] = cls["log_prior"] + sum(lp.get(t, unseen) for t in toks)
    return out


def predict(model, text):
    """The most probable class for a text (ties broken by class name)."""
    s = scores(model, text)
    return max(sorted(s), key=lambda label: s[label])


def accuracy(model, records):
    """Fraction of records whose 'label' predict() gets right."""
    if not records:
        return 0.0
    return sum(predict(model, r["text"]) == r["label"] for r in records) / len(records)
