"""The grading kernels' write fence; only its `sitecustomize.py` matters (see `_worker`).

This file makes the folder a package, so that wheels ship it.
"""
