#!/bin/sh
# The reference solution: sh apply.sh WORKSPACE
# Test every candidate fix against the visible tests and apply the one that passes them all.
set -e
cd "$1"
for candidate in patches/*.py; do
  if python3 check.py "$candidate"; then  # it is in kit.py now
    echo "applied $candidate"
    exit 0
  fi
done
echo "no candidate passes the visible tests" >&2
exit 1
