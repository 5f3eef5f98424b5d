#!/usr/bin/python3
"""docs/checkpoint-format.md's Python code runs as written.

Trains a tiny pronoun model with `qkv train` into runs/pronoun/ of a temporary folder (where the
document's code expects it, with python/ linked beside it), runs every ```python block of the
document in order in one namespace, then evaluates the from_torch.h5 that the last block writes
with `qkv eval`: its loss and accuracy must be those of runs/pronoun/best.h5.

Usage: checkpoint_doc_test.py --qkv build/qkv [--root REPO]. Exits 77 (skipped) when h5py or
torch cannot be imported.
"""

import argparse
import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile

try:
    import h5py  # noqa: F401
    import torch  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"checkpoint_doc_test: skipped, cannot import {e.name}")
    sys.exit(77)


def python_blocks(path):
    return re.findall(r"^```python\n(.*?)^```", open(path, encoding="utf-8").read(), re.S | re.M)


def eval_lines(qkv, ckpt):
    r = subprocess.run([qkv, "eval", "--checkpoint", ckpt, "--split", "test"], capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise SystemExit(f"qkv eval {ckpt} exited {r.returncode}: {r.stderr.strip()}")
    # The lines with numbers, except the first (the file's name, model and training step: a file
    # written from PyTorch has no training state).
    return [line for line in r.stdout.splitlines()[1:] if re.search(r"\d", line)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qkv", required=True)
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    args = ap.parse_args()
    root, qkv = os.path.abspath(args.root), os.path.abspath(args.qkv)
    doc = os.path.join(root, "docs", "checkpoint-format.md")
    blocks = python_blocks(doc)
    if len(blocks) < 3:
        print(f"{doc}: expected at least 3 python blocks, found {len(blocks)}")
        return 1

    with tempfile.TemporaryDirectory(prefix="qkv-ckpt-doc-") as tmp:
        os.symlink(os.path.join(root, "python"), os.path.join(tmp, "python"))
        r = subprocess.run([qkv, "train", "--task", "pronoun", "--steps", "30", "--eval-every",
                            "15", "--out", "runs/pronoun", "--progress", "quiet"], cwd=tmp,
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(f"qkv train exited {r.returncode}: {r.stderr.strip()}")
            return 1
        os.chdir(tmp)
        namespace = {"__name__": "__docs__"}
        for i, code in enumerate(blocks, 1):
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    exec(compile(code, f"{doc} (python block {i})", "exec"), namespace)
            except Exception as e:  # the block as a user would see it fail
                print(f"python block {i} of docs/checkpoint-format.md failed: "
                      f"{type(e).__name__}: {e}\n{code}")
                return 1
            print(f"--- block {i}:\n{out.getvalue()}", end="")
        if not os.path.exists("from_torch.h5"):
            print("the last block did not write from_torch.h5")
            return 1
        want = eval_lines(qkv, os.path.join(tmp, "runs/pronoun/best.h5"))
        got = eval_lines(qkv, os.path.join(tmp, "from_torch.h5"))
        if want != got or not want:
            print("qkv eval of from_torch.h5 differs from runs/pronoun/best.h5:")
            print("\n".join(f"  best.h5:       {a}\n  from_torch.h5: {b}" for a, b in zip(want, got)))
            return 1
        print(f"--- qkv eval of from_torch.h5 equals best.h5's:\n" + "\n".join(got))
    return 0


if __name__ == "__main__":
    sys.exit(main())
