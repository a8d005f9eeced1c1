"""Keep TensorFlow's C++ start-up log lines off the learner's screen, and everything else on it.

TensorFlow's C++ code writes to the process's file descriptor 2 directly, so neither
`TF_CPP_MIN_LOG_LEVEL` nor `sys.stderr` stops all of it. `filtered_stderr()` catches it at the
descriptor; `strip_tf_noise()` decides what is noise, for it and for the notebook normaliser.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

#: TensorFlow's and LiteRT's C++ start-up chatter on stderr: noise, not output. The one list of it.
TF_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\).*"
    r"|[IWE]\d{4} .*"
    r"|=== Source Location Trace: ===|\S+\.(cc|h):\d+"  # under cuInit's error, from TF 2.23 on
    r"|.*oneDNN custom operations are on.*"
    r"|.*To enable the following instructions: .*"
    r"|.*rebuild TensorFlow with the appropriate compiler flags.*"
    r"|.*This TensorFlow binary is optimized to use available CPU instructions.*"
    r"|(INFO|WARNING): \[\w+\.cc:\d+\] .*"  # LiteRT's runtime: the accelerators it looks for
    r"|\u2514 Could not load shared library .*)$"
)


def strip_tf_noise(text: str) -> str:
    """Remove TensorFlow's C++ log lines from stderr text, keeping everything else.

    What is left is returned as is, unless it is only blank lines: then it is ``""``.
    """
    kept = "".join(
        line for line in text.splitlines(keepends=True) if not TF_NOISE.match(line.rstrip())
    )
    return kept if kept.strip() else ""


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Send file descriptor 2 to a temporary file for the block, then re-emit what is not noise.

    What the block writes to stderr (C++ logs, and Python's `sys.stderr` where that is the
    descriptor itself, as in a terminal) is held back; afterwards the lines that
    `strip_tf_noise()` keeps are written to `sys.stderr`, so real warnings and errors still show.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = strip_tf_noise(capture.read().decode("utf-8", errors="replace"))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
