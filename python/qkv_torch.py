"""qkv's models in PyTorch, and a reader for qkv checkpoints.

Two parts, usable on their own:

  load_checkpoint(path) -> (configs, params, vocab)
      needs only h5py and numpy. configs = {"model": {...}, "train": {...}, "task": {...}},
      params = {canonical name: float32 ndarray} in the file's order, vocab = list of str or None.

  QkvModel(model_config)                                    (needs torch)
      an nn.Module with exactly qkv's parameter names and shapes (docs/model.md) for the three
      architectures (encoder, decoder, seq2seq), every norm placement (pre, post, none), every
      activation (gelu, relu, gelu_tanh), learned or sinusoidal positions, tied or untied head.
      QkvModel.from_checkpoint(path) builds one and loads the checkpoint with
      load_state_dict(strict=True): every parameter by name, exactly once.

The forward pass follows qkv's to floating-point rounding: tests/parity/parity.py compares loss,
logits, attention maps and every gradient with `qkv grads` in float64 and float32.
"""

import json
import math

import h5py
import numpy as np

__all__ = ["load_checkpoint", "resolve_config", "QkvModel", "load_batch"]

FORMAT = "qkv-checkpoint"
FORMAT_VERSION = 1

# Model config keys and their defaults (docs/model.md); 0 means "derived" for the marked keys.
DEFAULTS = {
    "arch": "decoder",
    "vocab_size": 64,
    "max_len": 64,
    "d_model": 64,
    "n_heads": 4,
    "n_layers": 2,
    "d_ff": 0,  # 0 = 4·d_model
    "activation": "gelu",
    "norm": "pre",
    "pos": "learned",
    "tie_embeddings": False,
    "n_out": 0,  # 0 = vocab_size
    "dropout": 0.0,
    "ln_eps": 1e-5,
    "src_vocab_size": 0,  # 0 = vocab_size
    "src_max_len": 0,  # 0 = max_len
}


def resolve_config(config):
    """A copy of a model config with every key present and the derived keys filled in."""
    unknown = set(config) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"model config: unknown keys {sorted(unknown)} (known: {list(DEFAULTS)})")
    c = dict(DEFAULTS, **config)
    c["d_ff"] = c["d_ff"] or 4 * c["d_model"]
    c["n_out"] = c["n_out"] or c["vocab_size"]
    c["src_vocab_size"] = c["src_vocab_size"] or c["vocab_size"]
    c["src_max_len"] = c["src_max_len"] or c["max_len"]
    return c


def _strings(dataset):
    return [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in dataset[()]]


def load_checkpoint(path):
    """(configs, params, vocab) of a qkv checkpoint, with h5py and numpy only.

    configs: {"model", "train", "task"} -> dict (a missing one is {}); params: {name: ndarray
    float32} in the file's order; vocab: list of str, or None when the file has no /vocab.
    Raises ValueError when the file is not a qkv checkpoint this reader understands."""
    with h5py.File(path, "r") as f:
        fmt = f.attrs.get("format")
        fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
        if fmt != FORMAT:
            raise ValueError(f"{path}: not a qkv checkpoint (attribute 'format' is {fmt!r})")
        version = int(f.attrs.get("format_version", -1))
        if version > FORMAT_VERSION or version < 1:
            raise ValueError(f"{path}: format_version {version}; this reader knows version 1")
        attrs = f["config"].attrs if "config" in f else {}
        configs = {k: json.loads(attrs[k]) if k in attrs else {} for k in ("model", "train", "task")}
        params = {name: ds[()] for name, ds in f["model"].items()}
        vocab = _strings(f["vocab"]) if "vocab" in f else None
    return configs, params, vocab


def load_batch(path):
    """A qkv batch file (docs/checkpoint-format.md, "Batch files") as {name: ndarray}."""
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f.keys()}


# ---- the PyTorch model (imported lazily: the loader above needs no torch) ------------------------

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - depends on the machine
    torch = None


def _require_torch():
    if torch is None:
        raise ImportError("qkv_torch.QkvModel needs PyTorch (Debian: python3-torch)")


def sinusoidal_table(max_len, d_model):
    """PE[p, 2i] = sin(p / 10000^(2i/d_model)), PE[p, 2i+1] = cos(same), in float64."""
    pe = np.zeros((max_len, d_model))
    for p in range(max_len):
        for i in range(0, d_model, 2):
            angle = p / 10000.0 ** (i / d_model)
            pe[p, i] = math.sin(angle)
            if i + 1 < d_model:
                pe[p, i + 1] = math.cos(angle)
    return torch.from_numpy(pe)


if torch is not None:

    class Attention(nn.Module):
        """W_Q, W_K, W_V, W_O; P = softmax(Q·Kᵀ/√d_k + mask) per head; out = merge(P·V)·W_Oᵀ."""

        def __init__(self, c):
            super().__init__()
            d = c["d_model"]
            self.n_heads = c["n_heads"]
            self.W_Q, self.W_K, self.W_V, self.W_O = (nn.Linear(d, d) for _ in range(4))

        def forward(self, x, memory, visible, maps, path):
            """visible: None (every key visible), or a _Visibility: a bool mask broadcastable to
            [B, H, T, S] (True = the query may see the key) and whether every row sees a key."""
            B, T, C = x.shape
            S, H = memory.shape[1], self.n_heads
            d = C // H
            q = self.W_Q(x).view(B, T, H, d).transpose(1, 2)
            k = self.W_K(memory).view(B, S, H, d).transpose(1, 2)
            v = self.W_V(memory).view(B, S, H, d).transpose(1, 2)
            scores = q @ k.transpose(-1, -2) / math.sqrt(d)
            if visible is None:
                p = torch.softmax(scores, dim=-1)
            elif visible.rows_nonempty:  # a causal mask without padding: no empty row
                p = torch.softmax(scores.masked_fill(~visible.mask, float("-inf")), dim=-1)
            else:
                # masked keys get -inf; a query row with no visible key outputs zeros (and a
                # zero gradient), as qkv's attention does
                mask = visible.mask.expand(B, H, T, S)
                any_visible = mask.any(-1, keepdim=True)
                scores = scores.masked_fill(~mask, float("-inf"))
                scores = torch.where(any_visible, scores, torch.zeros_like(scores))
                p = torch.softmax(scores, dim=-1)
                p = torch.where(any_visible, p, torch.zeros_like(p))
            maps[path] = p
            o = (p @ v).transpose(1, 2).reshape(B, T, C)
            return self.W_O(o)

    class FeedForward(nn.Module):
        """fc2(act(fc1(x)))."""

        def __init__(self, c):
            super().__init__()
            self.fc1 = nn.Linear(c["d_model"], c["d_ff"])
            self.fc2 = nn.Linear(c["d_ff"], c["d_model"])
            self.activation = c["activation"]

        def forward(self, x):
            h = self.fc1(x)
            if self.activation == "gelu":
                h = F.gelu(h)
            elif self.activation == "gelu_tanh":
                h = F.gelu(h, approximate="tanh")
            else:
                h = F.relu(h)
            return self.fc2(h)

    class Block(nn.Module):
        """ln1, attn, [ln_x, xattn], ln2, ff in the configured norm placement."""

        def __init__(self, c, cross):
            super().__init__()
            self.norm = c["norm"]
            eps, d = c["ln_eps"], c["d_model"]
            ln = self.norm != "none"
            if ln:
                self.ln1 = nn.LayerNorm(d, eps=eps)
            self.attn = Attention(c)
            self.cross = cross
            if cross:
                if ln:
                    self.ln_x = nn.LayerNorm(d, eps=eps)
                self.xattn = Attention(c)
            if ln:
                self.ln2 = nn.LayerNorm(d, eps=eps)
            self.ff = FeedForward(c)
            self.drop = nn.Dropout(c["dropout"])

        def residual(self, x, ln_name, sublayer):
            if self.norm == "pre":
                return x + self.drop(sublayer(getattr(self, ln_name)(x)))
            if self.norm == "post":
                return getattr(self, ln_name)(x + self.drop(sublayer(x)))
            return x + self.drop(sublayer(x))

        def forward(self, x, self_visible, memory, cross_visible, maps, path):
            x = self.residual(x, "ln1", lambda a: self.attn(a, a, self_visible, maps, path + ".attn"))
            if self.cross:
                x = self.residual(
                    x, "ln_x", lambda a: self.xattn(a, memory, cross_visible, maps, path + ".xattn")
                )
            return self.residual(x, "ln2", self.ff)

    class Stack(nn.Module):
        """Embeddings, blocks, ln_f (pre-LN only) and head (when untied and wanted)."""

        def __init__(self, c, vocab, max_len, cross, head):
            super().__init__()
            d = c["d_model"]
            self.tok_emb = nn.Embedding(vocab, d)
            if c["pos"] == "learned":
                self.pos_emb = nn.Embedding(max_len, d)
            else:  # not a parameter: a buffer that state_dict does not hold
                self.register_buffer("pe", sinusoidal_table(max_len, d), persistent=False)
            self.drop = nn.Dropout(c["dropout"])
            self.blocks = nn.ModuleList(Block(c, cross) for _ in range(c["n_layers"]))
            if c["norm"] == "pre":
                self.ln_f = nn.LayerNorm(d, eps=c["ln_eps"])
            if head:
                self.head = nn.Linear(d, c["n_out"])
            self.learned = c["pos"] == "learned"
            self.max_len = max_len

        def embed(self, ids):
            T = ids.shape[1]
            if T > self.max_len:
                raise ValueError(f"sequence of {T} tokens; the model's max_len is {self.max_len}")
            x = self.tok_emb(ids)
            return self.drop(x + (self.pos_emb.weight[:T] if self.learned else self.pe[:T].to(x.dtype)))

        def run(self, x, self_visible, memory, cross_visible, maps, prefix):
            for i, block in enumerate(self.blocks):
                x = block(x, self_visible, memory, cross_visible, maps, f"{prefix}blocks.{i}")
            return x

        def final_norm(self, x):
            return self.ln_f(x) if hasattr(self, "ln_f") else x

        def project(self, x):
            return self.head(x) if hasattr(self, "head") else F.linear(x, self.tok_emb.weight)

    class _Visibility:
        """Which keys each query sees: mask (bool, broadcastable to [B, H, T, S]); rows_nonempty
        when every query sees at least one key (then no row needs the all-masked rule)."""

        def __init__(self, mask, rows_nonempty=False):
            self.mask, self.rows_nonempty = mask, rows_nonempty

        def __and__(self, other):
            if other is None:
                return self
            return _Visibility(self.mask & other.mask, False)

    def _padding_visible(mask):
        """[B, S] (1 = real) → visibility [B, 1, 1, S]; None without a mask (all visible)."""
        return None if mask is None else _Visibility(_as_tensor(mask, torch.uint8).bool()[:, None, None, :])

    def _causal_visible(T, device):
        return _Visibility(torch.ones(T, T, dtype=torch.bool, device=device).tril()[None, None], True)

    def _as_tensor(v, dtype=torch.long):
        return v.to(dtype) if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v), dtype=dtype)

    class QkvModel(nn.Module):
        """One of qkv's three architectures; state_dict() keys are qkv's canonical names.

        forward(batch) takes a dict in the layout of a qkv batch file (numpy arrays or tensors):
        tokens [B, T]; optional mask [B, T] (1 = real); encoder: positions [B]; seq2seq: src
        [B, S], optional src_mask; optional targets ([B] encoder, [B, T] otherwise, -1 =
        ignored). It returns (loss or None, logits, {attention path: P [B, H, T, S]})."""

        def __init__(self, config):
            super().__init__()
            c = resolve_config(config)
            self.config = c
            self.arch = c["arch"]
            head = not c["tie_embeddings"]
            if self.arch == "seq2seq":
                self.enc = Stack(c, c["src_vocab_size"], c["src_max_len"], cross=False, head=False)
                self.dec = Stack(c, c["vocab_size"], c["max_len"], cross=True, head=head)
            elif self.arch in ("encoder", "decoder"):
                # One stack whose parameters sit at the root: tok_emb.weight, blocks.0..., head.*
                stack = Stack(c, c["vocab_size"], c["max_len"], cross=False, head=head)
                for name, child in stack.named_children():
                    self.add_module(name, child)
                if not c["pos"] == "learned":
                    self.register_buffer("pe", stack.pe, persistent=False)
                self._stack = [stack]  # a plain list: not registered twice
            else:
                raise ValueError(f"model config: arch {self.arch!r} is not encoder, decoder or seq2seq")

        @classmethod
        def from_checkpoint(cls, path, dtype=None):
            """A model built from the checkpoint's /config model and loaded strictly by name."""
            _require_torch()
            configs, params, _ = load_checkpoint(path)
            model = cls(configs["model"])
            if dtype is not None:
                model = model.to(dtype)
            ref = next(model.parameters())
            state = {n: torch.from_numpy(v).to(ref.dtype) for n, v in params.items()}
            model.load_state_dict(state, strict=True)
            return model.eval()

        def _single(self):
            s = self._stack[0]
            # the stack's modules are this model's own; its buffer follows this model's dtype
            if hasattr(self, "pe"):
                s.pe = self.pe
            return s

        def forward(self, batch):
            maps = {}
            b = {k: _as_tensor(v, torch.uint8 if k.endswith("mask") else torch.long)
                 for k, v in batch.items()}
            tokens = b["tokens"]
            B, T = tokens.shape
            mask = b.get("mask")  # None: every token is real
            targets = b.get("targets")
            if self.arch == "encoder":
                s = self._single()
                x = s.run(s.embed(tokens), _padding_visible(mask), None, None, maps, "")
                logits = s.project(s.final_norm(x[torch.arange(B), b["positions"]]))
                loss = F.cross_entropy(logits, targets) if targets is not None else None
                return loss, logits, maps
            self_visible = _causal_visible(T, tokens.device) & _padding_visible(mask)
            memory, cross_visible = None, None
            if self.arch == "seq2seq":
                src = b["src"]
                src_mask = b.get("src_mask")
                e = self.enc
                memory = e.final_norm(
                    e.run(e.embed(src), _padding_visible(src_mask), None, None, maps, "enc.")
                )
                cross_visible = _padding_visible(src_mask)
                s, prefix = self.dec, "dec."
            else:
                s, prefix = self._single(), ""
            x = s.final_norm(s.run(s.embed(tokens), self_visible, memory, cross_visible, maps, prefix))
            logits = s.project(x)
            loss = None
            if targets is not None:
                loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1), ignore_index=-1)
            return loss, logits, maps

else:

    class QkvModel:  # pragma: no cover - depends on the machine
        def __init__(self, *args, **kwargs):
            _require_torch()

        @classmethod
        def from_checkpoint(cls, *args, **kwargs):
            _require_torch()
