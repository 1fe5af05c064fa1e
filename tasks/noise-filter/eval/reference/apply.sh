#!/bin/sh
# The reference solution: sh apply.sh WORKSPACE
# Run every candidate filter, then the one with the best dev accuracy again (last: its
# output is what stays in output/clean.jsonl).
set -e
cd "$1"
best=$(for f in $(python3 filters.py list | awk '{print $1}'); do
         python3 filters.py "$f" 2>&1
       done | tee /dev/stderr | sed 's/:.*dev accuracy / /; s/ (.*//' | sort -k2 -nr | head -1 | cut -d' ' -f1)
echo "chosen filter: $best"
python3 filters.py "$best"
