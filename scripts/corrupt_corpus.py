#!/usr/bin/env python3
"""Corruption corpus: seeded mutants of every kind of file qkv writes, run through qkv's loaders.

For each kind (checkpoint, batch file, qkv grads output) it takes one file qkv wrote and makes
N mutants with a seeded RNG: bit flips (1-64 bits), overwritten byte runs, truncations and
duplicated chunks. A quarter of them first lose qkv's 512-byte checksum header, so they reach
the path files from h5py take (read in full by a child process before qkv opens them).
qkv_check_files loads them, many per process, and this script asserts:
  - 0 crashes and 0 hangs (every file answered within --hang-s),
  - 0 silent corruptions: a checksummed mutant that loads gives exactly the original's values,
  - every message is one line of valid UTF-8 naming the file,
  - the peak memory of the loader (and its checking children) stays below --max-rss-mb.
It prints one table row per kind and exits 1 when any assertion fails.

  scripts/corrupt_corpus.py --qkv build/qkv --checker build/fuzz/qkv_check_files -n 2000
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile

HEADER = 512


def mutate(rng, data):
    """One seeded mutation: (description, bytes)."""
    kind = rng.choice(["flip", "flip", "run", "truncate", "duplicate"])
    b = bytearray(data)
    if kind == "flip":
        k = rng.choice([1, 1, 1, 2, 4, 8, 16, 64])
        for _ in range(k):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return f"flip{k}", bytes(b)
    if kind == "run":
        n = rng.randint(1, 64)
        i = rng.randrange(len(b))
        fill = rng.choice(["random", "zero", "ff"])
        for j in range(i, min(len(b), i + n)):
            b[j] = rng.randrange(256) if fill == "random" else (0 if fill == "zero" else 255)
        return f"run{n}-{fill}", bytes(b)
    if kind == "truncate":
        n = rng.randrange(len(b))
        return "truncate", bytes(b[:n])
    n = rng.randint(1, 512)
    i = rng.randrange(len(b))
    j = rng.randrange(len(b))
    chunk = b[i:i + n]
    return "duplicate", bytes(b[:j] + chunk + b[j:])


def run_checker(checker, kind, paths, hang_s):
    """[(status, ms, hash, message bytes)] per path, or None when the process crashed or hung."""
    try:
        p = subprocess.run([checker, kind], input="\n".join(paths) + "\n", capture_output=True,
                           text=True, timeout=hang_s * 4 + 2 * len(paths))
    except subprocess.TimeoutExpired:
        return None, 0
    if p.returncode != 0:
        return None, 0
    rows, rss = [], 0
    for line in p.stdout.splitlines():
        f = line.split("\t")
        if f[0] == "maxrss_kb":
            rss = max(int(f[1]), int(f[2]))
            continue
        rows.append((f[0], float(f[1]), f[2], bytes.fromhex(f[3]) if len(f) > 3 else b""))
    return (rows if len(rows) == len(paths) else None), rss


def check_kind(args, kind, checker_kind, original, workdir, rng):
    data = open(original, "rb").read()
    assert data[:16] == b"QKV-CHECKSUM-V1\n", f"{original} has no qkv checksum header"
    base, base_rss = run_checker(args.checker, checker_kind, [original], args.hang_s)
    assert base and base[0][0] == "ok", f"{original} does not load: {base}"
    want = base[0][2]
    stats = dict(tried=0, rejected=0, loaded_same=0, loaded_unsealed_diff=0, silent=0, crash=0,
                 hang=0, bad_message=0, unsealed=0)
    max_ms, max_rss = 0.0, base_rss
    examples = {}
    mutants = []
    for i in range(args.n):
        unsealed = i % 4 == 3
        src = data[HEADER:] if unsealed else data
        what, mutant = mutate(rng, src)
        path = os.path.join(workdir, f"{kind}-{i:05d}-{'u' if unsealed else 's'}-{what}.h5")
        with open(path, "wb") as f:
            f.write(mutant)
        mutants.append((path, unsealed))
    for start in range(0, len(mutants), args.chunk):
        chunk = mutants[start:start + args.chunk]
        rows, rss = run_checker(args.checker, checker_kind, [p for p, _ in chunk], args.hang_s)
        if rows is None:  # one of them crashed or hung the loader: find it, one at a time
            rows = []
            for p, _ in chunk:
                one, rss1 = run_checker(args.checker, checker_kind, [p], args.hang_s)
                rows.append(one[0] if one else ("crash", 0.0, "", b""))
                rss = max(rss, rss1)
        max_rss = max(max_rss, rss)
        for (path, unsealed), (status, ms, h, msg) in zip(chunk, rows):
            stats["tried"] += 1
            stats["unsealed"] += unsealed
            max_ms = max(max_ms, ms)
            if status == "crash":
                stats["crash"] += 1
                examples.setdefault("crash", path)
                continue
            if ms > args.hang_s * 1000:
                stats["hang"] += 1
                examples.setdefault("hang", path)
            if status == "ok":
                if h == want:
                    stats["loaded_same"] += 1
                elif unsealed:  # no checksum: nothing can tell changed values from real ones
                    stats["loaded_unsealed_diff"] += 1
                else:
                    stats["silent"] += 1
                    examples.setdefault("silent", path)
                continue
            stats["rejected"] += 1
            try:
                text = msg.decode("utf-8")
                good = "\n" not in text and path in text
            except UnicodeDecodeError:
                good = False
            if not good:
                stats["bad_message"] += 1
                examples.setdefault("bad_message", (path, msg[:300]))
    return stats, max_ms, max_rss, examples


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--qkv", required=True, help="the qkv program (for a real qkv grads file)")
    ap.add_argument("--checker", required=True, help="qkv_check_files")
    ap.add_argument("-n", type=int, default=2000, help="mutants per file kind")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=250, help="mutants per loader process")
    ap.add_argument("--hang-s", type=float, default=15.0,
                    help="a file taking longer is a hang (the child check gives up at 10 s)")
    ap.add_argument("--max-rss-mb", type=float, default=768.0,
                    help="bound on the loader's peak resident memory (and its children's)")
    ap.add_argument("--kinds", default="checkpoint,batch,grads")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="qkv-corpus-") as work:
        subprocess.run([args.checker, "make", work], check=True)
        originals = {"checkpoint": ("checkpoint", os.path.join(work, "checkpoint.h5")),
                     "batch": ("batch", os.path.join(work, "batch.h5"))}
        if "grads" in args.kinds:
            grads = os.path.join(work, "grads.h5")
            subprocess.run([args.qkv, "grads", "--checkpoint", originals["checkpoint"][1],
                            "--batch", originals["batch"][1], "--out", grads], check=True,
                           stdout=subprocess.DEVNULL)
            originals["grads"] = ("h5", grads)
        failed = False
        print(f"corruption corpus, seed {args.seed}, {args.n} mutants per kind "
              f"(every 4th without the checksum header)")
        cols = ["kind", "bytes", "tried", "rejected", "loaded=orig", "unsealed≠orig", "silent",
                "crash", "hang", "bad msg", "max ms", "peak MB"]
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        for kind in args.kinds.split(","):
            checker_kind, original = originals[kind]
            mdir = os.path.join(work, kind)
            os.makedirs(mdir)
            s, max_ms, rss, ex = check_kind(args, kind, checker_kind, original, mdir, rng)
            peak = rss / 1024
            print(f"| {kind} | {os.path.getsize(original)} | {s['tried']} | {s['rejected']} | "
                  f"{s['loaded_same']} | {s['loaded_unsealed_diff']} | {s['silent']} | "
                  f"{s['crash']} | {s['hang']} | {s['bad_message']} | {max_ms:.0f} | {peak:.0f} |")
            bad = s["silent"] + s["crash"] + s["hang"] + s["bad_message"]
            if bad or peak > args.max_rss_mb:
                failed = True
                print(f"  FAILED: {ex} (peak {peak:.0f} MB, bound {args.max_rss_mb:.0f} MB)")
        print(f"bound on peak memory: {args.max_rss_mb:.0f} MB; a hang is > {args.hang_s:g} s")
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
