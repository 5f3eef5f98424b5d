#!/usr/bin/python3
"""PyTorch parity of `qkv grads`: loss, logits, attention maps and every parameter's gradient.

For each case (three architectures; pre-LN, post-LN and no LayerNorm; gelu, relu and gelu_tanh;
tied and untied embeddings; learned and sinusoidal positions; padding masks everywhere, dropout
in some configs to prove `qkv grads` turns it off) this script

  1. writes a qkv checkpoint with h5py in qkv's format from random numpy weights (so it also
     proves that a checkpoint written by another tool loads), and a batch file;
  2. runs `qkv grads` in float64 and in float32;
  3. builds the same model in PyTorch (python/qkv_torch.py, the project's PyTorch companion, which
     follows docs/model.md), loads the checkpoint's /model with load_state_dict(strict=True), and
     computes the same quantities;
  4. compares each tensor by  err = max|qkv - torch| / max(max|torch|, tiny):
     float64 must agree to 1e-9, float32 (qkv float32 against torch float32) to 1e-4.

Prints the worst error per case and exits 1 on any failure, 77 (CTest's "skipped") when torch or
h5py cannot be imported. Usage: parity.py --qkv build/qkv [--keep DIR] [--only SUBSTRING]
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

try:
    import h5py
    import numpy as np
    import torch
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"parity: skipped, cannot import {e.name} ({e})")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from qkv_torch import QkvModel  # noqa: E402  (the repository's PyTorch companion)

TOL = {"float64": 1e-9, "float32": 1e-4}
TINY = 1e-30
GRAD_FLOOR = 1e-2  # see compare()


def torch_reference(config, params, batch, dtype):
    """loss, logits, {name: grad}, {path: P} from the PyTorch model in `dtype`."""
    torch_dtype = {"float64": torch.float64, "float32": torch.float32}[dtype]
    model = QkvModel(config).to(torch_dtype)
    state = {n: torch.from_numpy(v).to(torch_dtype) for n, v in params.items()}
    model.load_state_dict(state, strict=True)  # every parameter by its qkv name, exactly once
    model.eval()
    loss, logits, maps = model(batch)
    loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    return loss.detach(), logits.detach(), grads, {k: v.detach() for k, v in maps.items()}


# ---- checkpoints and batches written with h5py ---------------------------------------------------


def canonical_shapes(c):
    """(name, shape) of every parameter, as docs/model.md's table lists them (written out here
    independently of python/qkv_torch.py, so that a wrong name there fails the strict load)."""
    d, f = c["d_model"], c["d_ff"]
    norm = c["norm"] != "none"

    def linear(name, n_in, n_out):
        return [(f"{name}.weight", (n_out, n_in)), (f"{name}.bias", (n_out,))]

    def ln(name):
        return [(f"{name}.weight", (d,)), (f"{name}.bias", (d,))] if norm else []

    def stack(prefix, vocab, max_len, cross, head):
        out = [(f"{prefix}tok_emb.weight", (vocab, d))]
        if c["pos"] == "learned":
            out.append((f"{prefix}pos_emb.weight", (max_len, d)))
        for i in range(c["n_layers"]):
            p = f"{prefix}blocks.{i}."
            out += ln(p + "ln1")
            for w in ("W_Q", "W_K", "W_V", "W_O"):
                out += linear(f"{p}attn.{w}", d, d)
            if cross:
                out += ln(p + "ln_x")
                for w in ("W_Q", "W_K", "W_V", "W_O"):
                    out += linear(f"{p}xattn.{w}", d, d)
            out += ln(p + "ln2")
            out += linear(p + "ff.fc1", d, f) + linear(p + "ff.fc2", f, d)
        if c["norm"] == "pre":
            out.append((f"{prefix}ln_f.weight", (d,)))
            out.append((f"{prefix}ln_f.bias", (d,)))
        if head:
            out += linear(f"{prefix}head", d, c["n_out"])
        return out

    head = not c["tie_embeddings"]
    if c["arch"] == "seq2seq":
        return stack("enc.", c["src_vocab_size"], c["src_max_len"], False, False) + stack(
            "dec.", c["vocab_size"], c["max_len"], True, head
        )
    return stack("", c["vocab_size"], c["max_len"], False, head)


def random_params(c, rng):
    """Unit-scale weights (so that attention is far from uniform and no gradient is tiny)."""
    params = {}
    for name, shape in canonical_shapes(c):
        if len(shape) == 2:
            sd = 1.0 if "_emb." in name else 1.0 / math.sqrt(shape[1])
            v = rng.normal(0.0, sd, shape)
        elif ".ln" in name or name.startswith("ln"):
            v = (1.0 if name.endswith(".weight") else 0.0) + rng.normal(0.0, 0.2, shape)
        else:
            v = rng.normal(0.0, 0.2, shape)
        params[name] = v.astype(np.float32)
    return params


def write_checkpoint(path, config, params, vocab):
    """qkv's checkpoint, version 1, as another tool would write it: /model in name order
    (h5py does not track creation order), no /optimizer, no /train, an extra unknown attr."""
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "qkv-checkpoint"
        f.attrs["format_version"] = 1
        f.attrs["qkv_version"] = "parity.py"
        f.attrs["written_by"] = "tests/parity/parity.py (h5py)"
        g = f.create_group("config")
        g.attrs["model"] = json.dumps(config)
        g.attrs["train"] = json.dumps({"seed": 0})
        g.attrs["task"] = json.dumps({})
        m = f.create_group("model")
        for name, v in params.items():
            m.create_dataset(name, data=v)
        f.create_dataset("vocab", data=vocab, dtype=h5py.string_dtype())


def random_batch(c, rng, B=3, T=7, S=6):
    """Padding in every example but the first; decoder targets -1 at padding and at one real
    position; for the decoder, example 2 is left-padded so its first query sees no key at all."""
    V, n_out = c["vocab_size"], c["n_out"]
    tokens = rng.integers(0, V, (B, T)).astype(np.int32)
    mask = np.ones((B, T), dtype=np.uint8)
    mask[1, T - 2 :] = 0
    b = {"tokens": tokens}
    if c["arch"] == "encoder":
        mask[2, T - 3 :] = 0
        b["mask"] = mask
        b["positions"] = np.array([T - 1, 2, 0], dtype=np.int32)
        b["targets"] = rng.integers(0, n_out, (B,)).astype(np.int32)
        return b
    if c["arch"] == "decoder":
        mask[2, :2] = 0  # left padding: query 0 of example 2 sees no key
    else:
        mask[2, T - 1 :] = 0
    b["mask"] = mask
    targets = rng.integers(0, n_out, (B, T)).astype(np.int32)
    targets[mask == 0] = -1
    targets[0, 3] = -1
    b["targets"] = targets
    if c["arch"] == "seq2seq":
        b["src"] = rng.integers(0, c["src_vocab_size"], (B, S)).astype(np.int32)
        src_mask = np.ones((B, S), dtype=np.uint8)
        src_mask[1, S - 3 :] = 0
        src_mask[2, S - 1 :] = 0
        b["src_mask"] = src_mask
    return b


def write_batch(path, batch):
    with h5py.File(path, "w") as f:
        for k, v in batch.items():
            f.create_dataset(k, data=v)


# ---- the cases -----------------------------------------------------------------------------------


def make_config(arch, norm, activation, tie, pos, dropout):
    c = {
        "arch": arch,
        "vocab_size": 13,
        "max_len": 9,
        "d_model": 16,
        "n_heads": 4,
        "n_layers": 2,
        "d_ff": 24,
        "activation": activation,
        "norm": norm,
        "pos": pos,
        "tie_embeddings": tie,
        "n_out": 13,
        "dropout": dropout,
        "ln_eps": 1e-5,
    }
    if arch == "encoder" and not tie:
        c["n_out"] = 4
    if arch == "seq2seq":
        c["src_vocab_size"] = 10
        c["src_max_len"] = 8
    return c


def cases():
    """Per architecture, all 9 (norm, activation) pairs; tie and pos vary so that every pair of
    options (norm, activation, tie, pos) appears in each architecture."""
    out = []
    norms = ["pre", "post", "none"]
    acts = ["gelu", "relu", "gelu_tanh"]
    for arch in ["encoder", "decoder", "seq2seq"]:
        for i, norm in enumerate(norms):
            for j, act in enumerate(acts):
                tie = (i + j) % 2 == 1
                pos = "sinusoidal" if (i + 2 * j) % 3 == 1 or (i == 2 and j == 0) else "learned"
                dropout = 0.1 if (i + j) % 3 == 0 else 0.0
                out.append(make_config(arch, norm, act, tie, pos, dropout))
    return out


def case_name(c):
    return "{} {}-LN {} {} {}{}".format(
        c["arch"], c["norm"], c["activation"], "tied" if c["tie_embeddings"] else "untied",
        c["pos"], " dropout" if c["dropout"] else "")


def rel_err(a, b, floor=TINY):
    """max|a - b| / max(max|b|, floor); inf when the shapes differ."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return math.inf
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), floor, TINY))


def compare(out_path, config, params, batch, dtype):
    """(worst error, tensor name, problems) for one qkv output file against PyTorch."""
    loss, logits, grads, maps = torch_reference(config, params, batch, dtype)
    problems = []
    worst, worst_name = 0.0, ""

    # The exact gradient of every W_K.bias is zero (softmax ignores a constant added to a row of
    # scores, and q·b_K is one), so both sides hold rounding noise there: gradients are measured
    # against max(max|torch|, GRAD_FLOOR · the case's largest gradient element).
    grad_floor = GRAD_FLOOR * max(float(g.abs().max()) for g in grads.values())

    def check(name, a, b):
        nonlocal worst, worst_name
        e = rel_err(a, b, grad_floor if name.startswith("grad/") else TINY)
        if not e <= worst:
            worst, worst_name = e, name
        if not e <= TOL[dtype]:
            problems.append(f"{name}: error {e:.3g} (shape {np.shape(a)} vs {tuple(b.shape)})")

    want_dtype = np.float64 if dtype == "float64" else np.float32
    with h5py.File(out_path, "r") as f:
        for key in ("loss", "logits"):
            if f[key].dtype != want_dtype:
                problems.append(f"/{key} has dtype {f[key].dtype}, expected {dtype}")
        check("loss", f["loss"][()], loss.numpy())
        check("logits", f["logits"][()], logits.numpy())
        got = set(f["grad"].keys())
        if got != set(grads):
            problems.append(f"/grad names differ: extra {sorted(got - set(grads))}, "
                            f"missing {sorted(set(grads) - got)}")
        for name, g in grads.items():
            if name in f["grad"]:
                check("grad/" + name, f["grad"][name][()], g.numpy())
        got = set(f["attention"].keys())
        if got != set(maps):
            problems.append(f"/attention names differ: {sorted(got)} vs {sorted(maps)}")
        for path, p in maps.items():
            if path in f["attention"]:
                check("attention/" + path, f["attention"][path][()], p.numpy())
    return worst, worst_name, problems


def run_qkv(qkv, ckpt, batch, out, dtype):
    r = subprocess.run([qkv, "grads", "--checkpoint", ckpt, "--batch", batch, "--out", out,
                        "--dtype", dtype], capture_output=True, text=True)
    if r.returncode != 0:
        return f"qkv grads exited {r.returncode}: {r.stderr.strip() or r.stdout.strip()}"
    if os.path.exists(out + ".tmp"):
        return f"qkv grads left {out}.tmp behind"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qkv", required=True, help="path of the qkv program")
    ap.add_argument("--keep", help="write the files into this folder and keep them")
    ap.add_argument("--only", default="", help="run only cases whose name contains this")
    args = ap.parse_args()
    if not os.access(args.qkv, os.X_OK):
        print(f"parity: {args.qkv} is not an executable qkv program")
        return 2
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "2")

    tmp = None
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        folder = args.keep
    else:
        tmp = tempfile.TemporaryDirectory(prefix="qkv-parity-")
        folder = tmp.name

    start = time.time()
    failures = 0
    rows = []
    for k, config in enumerate(cases()):
        name = case_name(config)
        if args.only not in name:
            continue
        rng = np.random.default_rng(1000 + k)
        params = random_params(config, rng)
        batch = random_batch(config, rng)
        ckpt = os.path.join(folder, f"case{k}.ckpt.h5")
        bfile = os.path.join(folder, f"case{k}.batch.h5")
        write_checkpoint(ckpt, config, params, [f"tok{i}" for i in range(config["vocab_size"])])
        write_batch(bfile, batch)
        row = [name]
        for dtype in ("float64", "float32"):
            out = os.path.join(folder, f"case{k}.grads.{dtype}.h5")
            problem = run_qkv(args.qkv, ckpt, bfile, out, dtype)
            if problem:
                problems, worst, worst_name = [problem], math.inf, "-"
            else:
                worst, worst_name, problems = compare(out, config, params, batch, dtype)
            ok = not problems
            failures += not ok
            row.append(f"{worst:9.2e} {'ok' if ok else 'FAIL'}  {worst_name}")
            for p in problems[:8]:
                print(f"  {name} [{dtype}]: {p}")
        rows.append(row)
    if not rows:
        print(f"parity: no case matches --only {args.only!r}")
        return 2

    w = max(len(r[0]) for r in rows)
    print(f"PyTorch {torch.__version__} parity of `qkv grads` "
          f"(error = max|qkv - torch| / max|torch| per tensor, gradients floored at "
          f"{GRAD_FLOOR:g} x the case's largest; worst tensor shown; "
          f"tolerances float64 {TOL['float64']:g}, float32 {TOL['float32']:g})")
    print(f"{'case':<{w}}  {'float64':<50}  float32")
    for r in rows:
        print(f"{r[0]:<{w}}  {r[1]:<50}  {r[2]}")
    print(f"{len(rows)} cases, {failures} failures, {time.time() - start:.1f} s")
    if tmp:
        tmp.cleanup()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
