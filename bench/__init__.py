"""Benchmarks (see docs/PERFORMANCE.md)."""

import sys


def use_tree(path):
    """Measure the ``sentinel`` package of the checkout at ``path`` instead of
    this one's (imported afresh: nothing of this one's stays loaded)."""
    sys.path.insert(0, path)
    for name in [m for m in sys.modules if m == "sentinel" or m.startswith("sentinel.")]:
        del sys.modules[name]
