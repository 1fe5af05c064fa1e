"""Defaults of `apollo serve` and `apollo demo`, importable without the web stack."""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8321
# The demo: an instance of two task families (train split), each followed by the simulated
# annotator, so the dashboard has more than one run to watch and hints to see delivered.
DEMO_TASKS = ("noise-filter@1000", "bug-patch@1000")
DEMO_STEPS = 16
# The model the demo runs on: Qwen2.5-Coder-1.5B, the one whose runs make progress on the
# families (tasks/noise-filter/CALIBRATION.md); the 0.5B never ran a filter there.
DEMO_MODEL = "embedded:qwen2.5-coder-1.5b"
# Cores each demo run gets: two 1.5B servers on 2 cores did not reach 3 steps within a
# family's 5 minutes of working time, so there the runs go one after another.
DEMO_CORES_PER_RUN = 2


def demo_max_running(cpus: int) -> int:
    """The demo runs driven at once on `cpus` cores (the rest wait in the queue)."""
    return max(1, cpus // DEMO_CORES_PER_RUN)


DEMO_SUMMARY_THRESHOLD = 5000  # the embedded model's window is small: summarize early
# Run limits of `apollo serve` (docs/api.md "Run limits").
MAX_RUNNING = 8
MAX_RUNNING_PER_ANNOTATOR = 4
MAX_QUEUED_PER_ANNOTATOR = 20
# Failed logins allowed per client address and per name within the window.
LOGIN_FAILURES = 10
LOGIN_WINDOW_S = 300.0
