"""The classroom kit: student releases, an offline autograder, and the files an instructor needs.

`tfcourse release OUT_DIR [NN ...]` and `tfcourse grade SUBMISSIONS_DIR --out results.csv` call it;
INSTRUCTORS.md says how to use them. Introduced for instructors, not in a notebook.
"""

from tfcourse.classroom._assemble import assemble, check_modules
from tfcourse.classroom._grade import (
    Limits,
    Outcome,
    Submission,
    default_jobs,
    find_submissions,
    grade,
)
from tfcourse.classroom._release import package_edition, release_chapters
from tfcourse.classroom._report import companion_paths, write_feedback, write_results, write_summary

__all__ = [
    "Limits",
    "Outcome",
    "Submission",
    "assemble",
    "check_modules",
    "companion_paths",
    "default_jobs",
    "find_submissions",
    "grade",
    "package_edition",
    "release_chapters",
    "write_feedback",
    "write_results",
    "write_summary",
]
