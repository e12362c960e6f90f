# examples/progress.py: a one-line progress bar for the training examples (no dependency).
# Part of streamrnn, MIT licence.
import sys
import time


def progress(steps, describe=lambda: ""):
    """Yields 0..steps-1, redrawing `[#####.....] step/steps  elapsed  <describe()>` on one line,
    at most ten times a second."""
    start = drawn = time.perf_counter()
    for step in range(steps):
        yield step
        now = time.perf_counter()
        if now - drawn < 0.1 and step + 1 < steps:
            continue
        drawn = now
        done = (step + 1) * 30 // steps
        sys.stderr.write(f"\r[{'#' * done}{'.' * (30 - done)}] {step + 1}/{steps}  "
                         f"{now - start:5.1f}s  {describe()}")
        sys.stderr.flush()
    sys.stderr.write("\n")
