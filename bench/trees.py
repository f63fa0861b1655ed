"""
Side-by-side benchmarks of two versions of Sentinel (``--against REF``):
the other version's ``sentinel`` package extracted from git, and a
benchmark's child process run on a given tree.
"""

import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def extract(ref, prefix="bench-tree-"):
    """A temporary directory holding git ref ``ref``'s ``sentinel`` package."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    archive = subprocess.run(["git", "-C", REPO, "archive", ref, "sentinel"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
    return tmp


def run_child(module, tree, args):
    """
    ``python -m module --child tree *args`` (the child puts ``tree`` first on
    its path) with a fixed hash seed; its last line of output, as JSON.
    """
    env = dict(os.environ, PYTHONHASHSEED="0")
    out = subprocess.run([sys.executable, "-m", module, "--child", tree, *args],
                         capture_output=True, text=True, cwd=REPO, env=env)
    if out.returncode:
        sys.exit(f"child for {tree} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def versions(ref, prefix="bench-tree-"):
    """
    ({label: tree} to measure, in turn: git ref ``ref`` (if given) and this
    checkout; the extracted directory to remove afterwards, or None).
    """
    if not ref:
        return {"this tree": REPO}, None
    tmp = extract(ref, prefix)
    return {ref: tmp, "this tree": REPO}, tmp
