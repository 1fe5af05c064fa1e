#!/bin/sh
# The reference solution: sh apply.sh WORKSPACE
# Take the candidate with the lowest one-epoch holdout loss and let train.py run to the end
# (about 30 seconds) without interrupting it.
set -e
cd "$1"
lr=$(python3 trial.py | awk 'NR > 1 && (best == "" || $2 < best) { best = $2; lr = $1 } END { print lr }')
echo "chosen lr: $lr"
python3 train.py --lr "$lr"
