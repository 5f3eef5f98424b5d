#!/usr/bin/python3
"""Every relative link in the repository's Markdown files resolves, and every repository path that
the docs or `qkv <command> --help` mention exists.

Checked:
  - each [text](target) and ![alt](target) in every tracked *.md file whose target is not a URL:
    the file or folder exists (relative to the Markdown file), and a #fragment names a heading of
    the target Markdown file (GitHub's anchor rule);
  - each `path` in backticks in those files that starts with a top-level folder of the repository
    and ends in a source or document extension exists;
  - the same for every such path in the help text of `qkv --help` and of every subcommand;
  - no Markdown file and no help text names a file outside the repository.

Usage: links_test.py --qkv build/qkv [--root REPO]. Exit 1 with one line per problem.
"""

import argparse
import os
import re
import subprocess
import sys

from doc_check import report

LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
REPO_PATH = re.compile(
    r"(?<![\w./-])((?:apps|autograd|bench|core|datasets|docs|examples|nn|plot|python|scripts|tests|train|\.ci)"
    r"/[\w./-]*\w\.(?:h|cpp|py|sh|md|txt|svg|json|jsonl|cmake|in))(?![\w/-])")
# A Markdown file named anywhere (prose, code, help text), and a path that climbs with "../".
MD_NAME = re.compile(r"(?<![\w/.-])([\w./-]*[\w-]\.md)\b")
PARENT = re.compile(r"(?<![\w.])(?:\.\./)+[\w.-][\w./-]*")


def outside(root, here, text, md_names):
    """The names in `text` of files outside the repository: a *.md that is neither a path from
    `here` or the root nor the name of one of the repository's Markdown files, and a ../ path that
    leaves the root or names nothing in it."""
    found = []
    for name in MD_NAME.findall(text):
        if (os.path.exists(os.path.join(here, name)) or os.path.exists(os.path.join(root, name))
                or os.path.basename(name) in md_names):
            continue
        found.append(name)
    for path in PARENT.findall(text):
        dest = os.path.normpath(os.path.join(here, path))
        if os.path.relpath(dest, root).startswith("..") or not os.path.exists(dest):
            found.append(path)
    return found


def tracked_markdown(root):
    out = subprocess.run(["git", "-C", root, "ls-files", "--cached", "--others", "--exclude-standard",
                          "*.md"], capture_output=True, text=True, check=True).stdout
    return sorted(p for p in out.splitlines() if p and os.path.exists(os.path.join(root, p)))


def slug(heading):
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path):
    found, fence = set(), False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("```"):
                fence = not fence
            elif not fence and line.startswith("#"):
                found.add(slug(line.lstrip("#")))
    return found


def prose_lines(path):
    """(line number, text) of the file outside fenced code blocks."""
    fence = False
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.startswith("```"):
                fence = not fence
                continue
            if not fence:
                yield n, line


def check_markdown(root, rel, problems, md_names):
    path = os.path.join(root, rel)
    here = os.path.dirname(path)
    for n, line in prose_lines(path):
        where = f"{rel}:{n}"
        for target in LINK.findall(line):
            if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
                continue
            file_part, _, fragment = target.partition("#")
            dest = os.path.normpath(os.path.join(here, file_part)) if file_part else path
            if not os.path.exists(dest):
                problems.append(f"{where}: link to '{target}', but {os.path.relpath(dest, root)} "
                                "does not exist")
                continue
            if fragment and dest.endswith(".md") and fragment not in anchors(dest):
                problems.append(f"{where}: link to '{target}', but {os.path.relpath(dest, root)} "
                                f"has no heading with the anchor #{fragment}")
        for span in CODE_SPAN.findall(line):
            for p in REPO_PATH.findall(span):
                if not os.path.exists(os.path.join(root, p)):
                    problems.append(f"{where}: mentions `{p}`, which is not in the repository")
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            for name in outside(root, here, line, md_names):
                problems.append(f"{rel}:{n}: names '{name}', which is not in the repository")


def help_texts(qkv):
    top = subprocess.run([qkv, "--help"], capture_output=True, text=True)
    texts = {"qkv --help": top.stdout + top.stderr}
    # CLI11 lists subcommands under "Subcommands:" (or "SUBCOMMANDS:"), one per line, name first.
    parts = re.split(r"(?im)^subcommands:\s*$", top.stdout, maxsplit=1)
    section = parts[1] if len(parts) == 2 else ""
    for line in section.splitlines():
        m = re.match(r"^\s+([a-z][a-z0-9-]*)\s", line)
        if m:
            r = subprocess.run([qkv, m.group(1), "--help"], capture_output=True, text=True)
            texts[f"qkv {m.group(1)} --help"] = r.stdout + r.stderr
    return texts


def check_help(root, qkv, problems, md_names):
    texts = help_texts(qkv)
    if len(texts) < 5:
        problems.append(f"found only {len(texts) - 1} subcommands in `qkv --help`: {sorted(texts)}")
    for name, text in texts.items():
        # Help lines wrap: join a path split at the line end back together.
        flat = re.sub(r"/\n\s+", "/", text)
        for p in REPO_PATH.findall(flat):
            if not os.path.exists(os.path.join(root, p)):
                problems.append(f"`{name}` mentions {p}, which is not in the repository")
        for outside_name in outside(root, root, flat, md_names):
            problems.append(f"`{name}` names '{outside_name}', which is not in the repository")
    return len(texts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qkv", required=True, help="path of the qkv program")
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    problems = []
    files = tracked_markdown(root)
    md_names = {os.path.basename(f) for f in files}
    for rel in files:
        check_markdown(root, rel, problems, md_names)
    n_help = check_help(root, args.qkv, problems, md_names)
    return report(problems, f"{len(files)} Markdown files and {n_help} help texts checked")


if __name__ == "__main__":
    sys.exit(main())
