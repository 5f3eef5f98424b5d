#!/usr/bin/python3
"""docs/tasks.md's tables are the program's real defaults.

For every task, trains one step with `qkv train --task NAME --steps 1` and reads the effective
configs that the checkpoint records (/config attributes task, model, train). Then:
  - each option row of the task's table (`option` | `default` | …) must equal the recorded task
    option, and every recorded option must have a row;
  - each row of the two "Default model and training configs" tables must equal the recorded
    model and train config, except `steps`, which this test sets to 1, and `warmup`, which a run
    shorter than the warm-up shortens (to a tenth of the run).

Usage: tasks_doc_test.py --qkv build/qkv [--root REPO]. Exits 77 (skipped) without h5py.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

from doc_check import report

try:
    import h5py
except ImportError:  # pragma: no cover - depends on the machine
    print("tasks_doc_test: skipped, cannot import h5py")
    sys.exit(77)

TASKS = ["pronoun", "copy", "reverse", "sort", "modadd", "numbers", "charlm"]


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse_doc(path):
    """({task: {option: default}}, [model rows], [train rows]) from the Markdown tables."""
    options, tables, section, tasks_here, header = {}, {}, None, [], None
    for line in open(path, encoding="utf-8"):
        if line.startswith("### "):
            tasks_here = re.findall(r"`([a-z]+)`", line)
            section, header = "options", None
            continue
        if line.startswith("## "):
            section, header, tasks_here = "defaults", None, []
            continue
        if not line.startswith("|"):
            header = None
            continue
        row = cells(line)
        if header is None:
            header = row
            continue
        if set(line.strip()) <= set("|-: "):
            continue
        if section == "options" and header[0] == "option":
            value = json.loads(row[1].strip("`"))
            for t in tasks_here:
                options.setdefault(t, {})[row[0].strip("`")] = value
        elif section == "defaults" and header[0] == "task":
            tables.setdefault(tuple(header), []).append(row)
    return options, tables


def same(doc_value, real):
    """A table cell against a recorded value: numbers numerically, the rest as text."""
    if isinstance(real, bool):
        return doc_value == ("true" if real else "false")
    if isinstance(real, (int, float)):
        try:
            return float(doc_value) == float(real)
        except ValueError:
            return False
    return doc_value == str(real)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qkv", required=True)
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    args = ap.parse_args()
    doc = os.path.join(os.path.abspath(args.root), "docs", "tasks.md")
    options, tables = parse_doc(doc)
    problems = []
    if set(options) != set(TASKS):
        problems.append(f"docs/tasks.md has option tables for {sorted(options)}, expected {TASKS}")
    if len(tables) != 2:
        problems.append(f"docs/tasks.md: expected the model and the train table, found {len(tables)}")
    with tempfile.TemporaryDirectory(prefix="qkv-tasks-doc-") as tmp:
        for task in TASKS:
            out = os.path.join(tmp, task)
            r = subprocess.run([args.qkv, "train", "--task", task, "--steps", "1", "--out", out,
                                "--progress", "quiet"], capture_output=True, text=True)
            if r.returncode != 0:
                problems.append(f"qkv train --task {task} exited {r.returncode}: {r.stderr.strip()}")
                continue
            with h5py.File(os.path.join(out, "last.h5"), "r") as f:
                real = {k: json.loads(f["config"].attrs[k]) for k in ("task", "model", "train")}
            real_options = {k: v for k, v in real["task"].items() if k != "name"}
            doc_options = options.get(task, {})
            for key in sorted(set(real_options) | set(doc_options)):
                if key not in doc_options:
                    problems.append(f"{task}: option '{key}' (default {real_options[key]!r}) is "
                                    "missing from docs/tasks.md")
                elif key not in real_options:
                    problems.append(f"{task}: docs/tasks.md lists option '{key}', which the task "
                                    "does not have")
                elif doc_options[key] != real_options[key]:
                    problems.append(f"{task}: docs/tasks.md says '{key}' defaults to "
                                    f"{doc_options[key]!r}; the program uses {real_options[key]!r}")
            for header, rows in tables.items():
                row = next((r for r in rows if r[0].strip("`") == task), None)
                if row is None:
                    problems.append(f"{task}: no row in the table {' | '.join(header)}")
                    continue
                for key, cell in zip(header[1:], row[1:]):
                    part = "model" if key in real["model"] else "train"
                    if key in ("steps", "warmup") or key not in real[part]:
                        if key not in real[part]:
                            problems.append(f"docs/tasks.md: column '{key}' is not a config key")
                        continue
                    if not same(cell, real[part][key]):
                        problems.append(f"{task}: docs/tasks.md says {key} = {cell}; the program "
                                        f"uses {real[part][key]!r}")
    return report(problems, f"{len(TASKS)} tasks checked against docs/tasks.md")


if __name__ == "__main__":
    sys.exit(main())
