#!/usr/bin/python3
"""The command outputs shown in README.md and docs/*.md, regenerated from real runs or checked
against them.

Every output block in the Markdown files sits under a marker (an HTML comment, invisible on the
rendered page) that names the shell command producing it, run from the repository root:

    <!-- output: build/qkv gradcheck --arch none | sed -n 1,5p -->
        $ build/qkv gradcheck --arch none
        attention, padding (keys 3, 4 of example 0 hidden):
        ...

The block is the indented or fenced code block right below the marker. Its first line, when it
starts with "$ ", is the command as shown to the reader and is kept; the rest is the output.
A region of Markdown (not a code block) is marked with a begin and an end marker:

    <!-- output begin: build/qkv explain --format markdown | tail -n +2 -->
    ...
    <!-- output end -->

A marker that needs files made by training says so: `<!-- output needs runs/pronoun/best.h5:
CMD -->`. scripts/regen_docs.sh trains those runs and then calls `doc_outputs.py write`.

  doc_outputs.py write [--qkv PATH] [FILE.md ...]   rewrite every block from its command
  doc_outputs.py check [--qkv PATH] [--no-runs] [FILE.md ...]
                                                    run every marker whose files exist and check
                                                    that the lines shown appear, in order, in
                                                    the real output ("..." lines stand for
                                                    omitted ones; floating-point noise below
                                                    1e-5, written like 4.3e-11, may differ)
  doc_outputs.py list                               the markers and what they need

`build/qkv` in a command is replaced by --qkv. Exit status: 0 when everything was written or
matched, 1 otherwise (one line per difference).
"""

import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MARKER = re.compile(r"^<!-- output(?P<begin> begin)?(?: needs (?P<needs>[^:]+))?: (?P<cmd>.*) -->\s*$")
END = "<!-- output end -->"
NOISE = re.compile(r"\b\d\.\d+e-(?:0[6-9]|[1-9]\d)\b")  # rounding noise, e.g. 4.3e-11


def markdown_files():
    files = ["README.md"] + sorted(
        os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md"))
    return [f for f in files if os.path.exists(os.path.join(ROOT, f))]


class Block:
    """One marked output: lines [start, end) of the file hold the output (after any $ line)."""

    def __init__(self, path, line, cmd, needs, start, end, indent, shown):
        self.path, self.line, self.cmd, self.needs = path, line, cmd, needs
        self.start, self.end, self.indent, self.shown = start, end, indent, shown

    def where(self):
        return f"{self.path}:{self.line}"


def parse(path, lines):
    blocks = []
    i = 0
    while i < len(lines):
        m = MARKER.match(lines[i])
        if not m:
            i += 1
            continue
        needs = m.group("needs").split() if m.group("needs") else []
        line = i + 1
        if m.group("begin"):
            j = i + 1
            while j < len(lines) and lines[j].rstrip("\n") != END:
                j += 1
            if j == len(lines):
                raise SystemExit(f"{path}:{line}: '{lines[i].strip()}' has no '{END}'")
            blocks.append(Block(path, line, m.group("cmd"), needs, i + 1, j, "", lines[i + 1:j]))
            i = j + 1
            continue
        j = i + 1
        if j < len(lines) and lines[j].startswith("```"):
            k = j + 1
            while k < len(lines) and not lines[k].startswith("```"):
                k += 1
            start, end, indent = j + 1, k, ""
        elif j < len(lines) and lines[j].startswith("    "):
            k = j
            while k < len(lines) and (lines[k].startswith("    ") or
                                      (lines[k].strip() == "" and k + 1 < len(lines) and
                                       lines[k + 1].startswith("    "))):
                k += 1
            start, end, indent = j, k, "    "
        else:
            raise SystemExit(f"{path}:{line}: the marker is not followed by a code block")
        if start < end and lines[start][len(indent):].startswith("$ "):
            start += 1  # the command as shown stays
        body = [l[len(indent):] if l.startswith(indent) else l.lstrip() for l in lines[start:end]]
        blocks.append(Block(path, line, m.group("cmd"), needs, start, end, indent, body))
        i = end
    return blocks


def unmarked(path, lines, blocks):
    """Problems: a `$ build/qkv …` line (a command shown with its output) outside every marked
    block, so no script would regenerate or check what follows it."""
    covered = set()
    for b in blocks:
        covered.update(range(b.start - 1, b.end))
    return [f"{path}:{i + 1}: a command's output is shown without an '<!-- output: … -->' marker"
            for i, line in enumerate(lines)
            if line.lstrip().startswith("$ build/qkv") and i not in covered]


def run(block, qkv):
    cmd = block.cmd.replace("build/qkv", qkv)
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=ROOT, capture_output=True,
                       text=True, env=dict(os.environ, COLUMNS="100", TERM="dumb"))
    # A pipe cut short by head or sed ends its writer with SIGPIPE (141): not a failure.
    if r.returncode not in (0, 141):
        raise RuntimeError(f"{block.where()}: `{block.cmd}` exited {r.returncode}: "
                           f"{(r.stderr or r.stdout).strip()[:300]}")
    out = r.stdout.splitlines()
    while out and not out[-1].strip():
        out.pop()
    return out


def missing_needs(block):
    return [n for n in block.needs if not os.path.exists(os.path.join(ROOT, n))]


def check_block(block, qkv):
    """Problems: each shown line (except "...") must be a real line, in order."""
    real = [NOISE.sub("~", l.rstrip()) for l in run(block, qkv)]
    pos = 0
    for n, shown in enumerate(block.shown):
        s = shown.rstrip("\n").rstrip()
        if s.strip() in ("...", "…", ""):
            continue
        want = NOISE.sub("~", s)
        try:
            pos = real.index(want, pos) + 1
        except ValueError:
            return [f"{block.path}:{block.start + n + 1}: shown line not in the output of "
                    f"`{block.cmd}` (or out of order): {s.strip()!r}"]
    return []


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["write", "check", "list"])
    ap.add_argument("files", nargs="*", help="Markdown files, relative to the repository root")
    ap.add_argument("--qkv", default=os.path.join(ROOT, "build", "qkv"))
    ap.add_argument("--no-runs", action="store_true",
                    help="check: skip every marker that needs trained runs, even when they exist")
    args = ap.parse_args()
    qkv = os.path.abspath(args.qkv)
    files = args.files or markdown_files()
    problems, checked, skipped, written = [], 0, 0, 0
    for path in files:
        full = os.path.join(ROOT, path)
        lines = open(full, encoding="utf-8").readlines()
        blocks = parse(path, lines)
        if args.mode == "list":
            for b in blocks:
                print(f"{b.where()}: {b.cmd}" + (f"   (needs {' '.join(b.needs)})" if b.needs else ""))
            continue
        if args.mode == "check":
            problems += unmarked(path, lines, blocks)
            for b in blocks:
                if b.needs and (args.no_runs or missing_needs(b)):
                    skipped += 1
                    continue
                try:
                    problems += check_block(b, qkv)
                except RuntimeError as e:
                    problems.append(str(e))
                checked += 1
            continue
        for b in reversed(blocks):  # from the end, so earlier line numbers stay valid
            if missing_needs(b):
                problems.append(f"{b.where()}: needs {' '.join(missing_needs(b))} "
                                "(scripts/regen_docs.sh makes it)")
                continue
            try:
                out = run(b, qkv)
            except RuntimeError as e:
                problems.append(str(e))
                continue
            lines[b.start:b.end] = [(b.indent + l).rstrip() + "\n" if l.strip() else "\n"
                                    for l in out]
            written += 1
        with open(full, "w", encoding="utf-8") as f:
            f.writelines(lines)
    for p in problems:
        print(p)
    if args.mode == "check":
        print(f"doc outputs: {checked} checked against real runs, {skipped} skipped (they need "
              f"trained runs: scripts/regen_docs.sh), {len(problems)} problems")
    elif args.mode == "write":
        print(f"doc outputs: {written} blocks rewritten, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
