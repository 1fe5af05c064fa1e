"""`python -m llama_cpp.server` under another command line, for benchmarks/embedded_models.py.

On a shared machine, a test suite of this project running at the same time ends at its close
every process whose command line names `llama_cpp.server` that it did not see start
(tests/conftest.py), which would kill the benchmark's servers mid-measurement.
"""

import runpy
import sys

if __name__ == "__main__":
    sys.argv[0] = "llama_cpp.server"
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
