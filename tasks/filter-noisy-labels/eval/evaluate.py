"""Hidden evaluator for filter-noisy-labels.

Usage: python3 evaluate.py WORKSPACE   (run with this folder as the working directory)

Reads WORKSPACE/output/clean.jsonl, takes the ids it lists, trains the fixed naive Bayes
classifier (nb.py) on those training records with their *original* labels, and measures
accuracy on the hidden test set. The score maps accuracy linearly: training on the whole
noisy set -> 0, training on exactly the correctly-labelled records (the oracle subset) -> 85,
clamped to [0, 100]. Prints one JSON object on its last line: {"score", "details"}.
"""

import json
import sys
from pathlib import Path

import nb

HERE = Path(__file__).resolve().parent
ORACLE_SCORE = 85.0
MIN_FRACTION = 0.4


def read_jsonl(path):
    """Records of a JSON-lines file (blank lines skipped)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def finish(score, **details):
    """Print the result line and exit."""
    print(json.dumps({"score": round(score, 2), "details": details}))
    sys.exit(0)


def submitted_ids(path, known):
    """The ids listed in the submission, in order, without repeats; or an error text."""
    ids = []
    seen = set()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                return None, f"line {n} is not valid JSON"
            if not isinstance(rec, dict) or not isinstance(rec.get("id"), str):
                return None, f"line {n} has no string 'id'"
            if rec["id"] not in known:
                return None, f"line {n}: id {rec['id']!r} is not in data/train.jsonl"
            if rec["id"] not in seen:
                seen.add(rec["id"])
                ids.append(rec["id"])
    return ids, None


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python3 evaluate.py WORKSPACE")
    submission = Path(sys.argv[1]) / "output" / "clean.jsonl"
    # Texts and labels come from the hidden copy of the training set, so edits in the
    # workspace (relabelling, rewriting texts) cannot change what is trained on.
    train = {r["id"]: r for r in read_jsonl(HERE / "data" / "train_truth.jsonl")}
    test = read_jsonl(HERE / "data" / "test.jsonl")

    baseline = nb.accuracy(nb.train(list(train.values())), test)
    oracle_set = [r for r in train.values() if r["label"] == r["true_label"]]
    oracle = nb.accuracy(nb.train(oracle_set), test)
    anchors = {"baseline_accuracy": round(baseline, 4), "oracle_accuracy": round(oracle, 4)}

    if not submission.is_file():
        finish(0.0, error="output/clean.jsonl not found", **anchors)
    ids, error = submitted_ids(submission, train)
    if error:
        finish(0.0, error=error, **anchors)
    if len(ids) < MIN_FRACTION * len(train):
        finish(0.0, error=f"kept {len(ids)} records; at least {MIN_FRACTION:.0%} of "
               f"{len(train)} must be kept", kept=len(ids), **anchors)

    kept = [train[i] for i in ids]
    acc = nb.accuracy(nb.train(kept), test)
    score = ORACLE_SCORE * (acc - baseline) / (oracle - baseline)
    finish(max(0.0, min(100.0, score)), accuracy=round(acc, 4), kept=len(ids),
           kept_fraction=round(len(ids) / len(train), 4), **anchors)


if __name__ == "__main__":
    main()
