"""The judges of the two-part checks: each decides on what its probe observed.

Judges hold the expected values, so this package is what the student edition of the course leaves
out and what the grader's sandbox hides. A judge takes the observations (plain data, which a
student's kernel may have forged) and the probe's seed, and returns a sentence or raises `Wrong`.
"""
