#!/usr/bin/python3
"""The PyTorch peer of `qkv bench`: one AdamW training step on the same four configurations.

The models are python/qkv_torch.py's QkvModel, the PyTorch mirror of qkv's architectures, built
from the configurations of docs/bench.md (tiny: an encoder read out at position 0; small, medium,
large: GPT-2-style decoders with tied embeddings). Initialisation follows qkv's Model:
weights N(0, 0.02), W_O and fc2 weights N(0, 0.02/√(2·n_layers)), LayerNorm weights 1, biases 0.
The optimizer is AdamW(lr 1e-4, betas (0.9, 0.999), eps 1e-8, weight_decay 0), and each timed
step is zero_grad(set_to_none=True), forward, cross-entropy, backward and step on one fixed
random batch (decoders: B·T+1 uniform tokens, targets shifted by one; the encoder: uniform tokens
and targets), float32 on the CPU.

  torch_peer.py --config small [--threads N|best] [--steps N] [--warmup N] [--seed S] [--json]

With --threads best it times 1 and 2 threads and reports the faster, as `qkv bench` does. Each
thread count runs in a child process of its own (this script again, with --one), so that
peak_rss_mb is that measurement's alone: the child's ru_maxrss, read with os.wait4 as `qkv bench`
reads its own children's. Model FLOPs per step are counted as `qkv bench` counts them
(docs/bench.md): per token 6·N_mm (the weights of the products, the decoder's tied LM head
included) plus 12·L·T·C for attention; the encoder's head runs on one position per example.
--json prints one JSON object (the last line), which `qkv bench --peer` reads: config,
ms_per_step, threads, tokens_per_s, loss, params, flops_per_step, gflops, peak_rss_mb,
ms_per_step_by_threads, torch (the version).
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

try:
    import torch
    import torch.nn.functional as F  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"torch_peer: cannot import {e.name}; install python3-torch", file=sys.stderr)
    sys.exit(2)

from qkv_torch import QkvModel  # noqa: E402

# name: (arch, V, T, d_model, n_layers, n_heads, d_ff, batch, default timed steps)
CONFIGS = {
    "tiny": ("encoder", 64, 16, 32, 1, 1, 64, 64, 300),
    "small": ("decoder", 256, 64, 128, 2, 4, 512, 16, 30),
    "medium": ("decoder", 1024, 128, 256, 4, 4, 1024, 8, 15),
    "large": ("decoder", 4096, 256, 512, 4, 8, 2048, 4, 10),
}


def model_config(name):
    arch, V, T, C, L, H, F_, _, _ = CONFIGS[name]
    return {"arch": arch, "vocab_size": V, "max_len": T, "d_model": C, "n_layers": L,
            "n_heads": H, "d_ff": F_, "activation": "gelu_tanh", "norm": "pre", "pos": "learned",
            "tie_embeddings": arch == "decoder", "n_out": V, "dropout": 0.0, "ln_eps": 1e-5}


def build(name, seed):
    torch.manual_seed(seed)
    model = QkvModel(model_config(name))
    std_residual = 0.02 / math.sqrt(2 * CONFIGS[name][4])
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if p.dim() == 1:
                p.fill_(1.0 if ".ln" in f".{pname}" and pname.endswith("weight") else 0.0)
            elif pname.endswith(("W_O.weight", "fc2.weight")):
                p.normal_(0.0, std_residual)
            else:
                p.normal_(0.0, 0.02)
    return model


def batch(name, seed):
    arch, V, T, _, _, _, _, B, _ = CONFIGS[name]
    g = torch.Generator().manual_seed(seed + 7)
    if arch == "encoder":
        return {"tokens": torch.randint(0, V, (B, T), generator=g),
                "positions": torch.zeros(B, dtype=torch.long),
                "targets": torch.randint(0, V, (B,), generator=g)}
    data = torch.randint(0, V, (B * T + 1,), generator=g)
    return {"tokens": data[:-1].view(B, T), "targets": data[1:].view(B, T)}


def flops_per_step(name):
    arch, V, T, C, L, _, F_, B, _ = CONFIGS[name]
    per_token = 6 * L * (4 * C * C + 2 * C * F_) + 12 * L * T * C
    head = 6 * V * C * B * T if arch == "decoder" else 6 * C * V * B
    return per_token * B * T + head


def measure_in_child(args, threads):
    """Runs this script with --one for `threads`; returns its JSON and its peak RSS in MB."""
    cmd = [sys.executable, os.path.abspath(__file__), "--config", args.config, "--threads",
           str(threads), "--steps", str(args.steps), "--warmup", str(args.warmup), "--seed",
           str(args.seed), "--one"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"torch_peer: the measurement at {threads} threads failed "
                 f"(exit {proc.returncode})")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024.0  # KiB on Linux
    return result


def time_steps(name, threads, steps, warmup, seed):
    torch.set_num_threads(threads)
    model = build(name, seed)
    model.train()
    b = batch(name, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.0)
    ms, loss = [], float("nan")
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out, _, _ = model(b)
        out.backward()
        opt.step()
        t1 = time.perf_counter()
        loss = out.item()
        if i >= warmup:
            ms.append((t1 - t0) * 1000.0)
    return statistics.median(ms), loss, sum(p.numel() for p in model.parameters())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, choices=sorted(CONFIGS))
    ap.add_argument("--threads", default="best", help="a number, or best (the faster of 1 and 2)")
    ap.add_argument("--steps", type=int, default=0, help="timed steps (default: per config)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child's measurement
    args = ap.parse_args()
    if args.threads != "best" and not args.threads.isdigit():
        ap.error("--threads must be a positive integer or best")
    steps = args.steps if args.steps > 0 else CONFIGS[args.config][8]
    if args.one:
        ms, loss, params = time_steps(args.config, int(args.threads), steps,
                                      max(args.warmup, 0), args.seed)
        print(json.dumps({"ms_per_step": ms, "loss": loss, "params": params}))
        return 0
    tries = [1, 2] if args.threads == "best" else [int(args.threads)]
    results = {n: measure_in_child(args, n) for n in tries}
    threads = min(tries, key=lambda n: results[n]["ms_per_step"])
    best = results[threads]
    ms = best["ms_per_step"]
    _, _, T, _, _, _, _, B, _ = CONFIGS[args.config]
    flops = flops_per_step(args.config)
    out = {"config": args.config, "ms_per_step": ms, "threads": threads,
           "tokens_per_s": B * T / (ms / 1000.0), "loss": best["loss"],
           "params": best["params"], "steps": steps, "warmup": args.warmup,
           "flops_per_step": flops, "gflops": flops / (ms / 1000.0) / 1e9,
           "peak_rss_mb": best["peak_rss_mb"],
           "ms_per_step_by_threads": {str(n): r["ms_per_step"] for n, r in results.items()},
           "torch": torch.__version__}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.config}: {ms:.2f} ms/step ({threads} threads), {out['tokens_per_s']:.0f} "
              f"tokens/s, {out['gflops']:.1f} GFLOP/s, peak RSS {out['peak_rss_mb']:.0f} MB, "
              f"{best['params']} parameters, loss {best['loss']:.4f}, torch {torch.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
