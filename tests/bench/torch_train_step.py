#!/usr/bin/python3
"""PyTorch peer of Kiln's training step, for tests/bench/training.bench.ts and the real-size bench's
torch row (tests/bench/training-real-size.bench.ts).

The same architecture as Kiln's training graph (LLaMA style: RMSNorm, rotate_half RoPE, plain causal
attention, SwiGLU MLP, tied or untied head), the same weights read from the same model.safetensors,
the same batches, AdamW (torch.optim.AdamW, PyTorch semantics, decay on matrices only) after
clip_grad_norm_. LoRA is written by hand: A [r,in] and B [out,r] on the chosen projections, base
weights frozen, delta = x·Aᵀ·Bᵀ·(alpha/r), A/B initial values read from a file Kiln wrote.
Weights are read one tensor at a time (a single file or shards listed in model.safetensors.index.json)
and held in float32 (F16/BF16 checkpoints are widened): the peak is the fp32 weights, never the file
twice. The LM head runs over every position (--head-rows all) or, as PyTorch code usually does when
only some positions carry loss, over the rows whose label is not -100 (--head-rows loss): full
[rows, V] logits then F.cross_entropy, no chunking.

It is a worker driven over stdin/stdout with one JSON object per line (replies are prefixed with
PROTOCOL_PREFIX so stray prints never confuse the driver):
  {"cmd": "steps", "n": N}                      N optimizer steps; ms, loss and grad norm of each, peak RSS
  {"cmd": "matmul", "n": 1024, "chain": 8, "runs": 3}   fp32 MatMul peak, best of runs, GFLOP/s
  {"cmd": "profile"}                            3 steps under torch.autograd.profiler, top ops (best of 3)
  {"cmd": "exit"}                               peak RSS (getrusage), then exit

Run it with Debian's interpreter (/usr/bin/python3; `apt-get install python3-torch
libopenblas0-pthread`): without an optimized BLAS, PyTorch's matmuls fall back to the reference
BLAS, about 15x slower. OpenBLAS picks its kernels by CPU model and falls back to Prescott's (SSE3,
~4-5x slower than its AVX-512 ones) on a model it does not know, as on a VM that hides it: the benches
set OPENBLAS_CORETYPE from the CPU's flags (tests/bench/openblas-core.ts); the ready reply names the core.
"""
import argparse
import json
import math
import os
import resource
import struct
import sys
import time

PROTOCOL_PREFIX = "@@bench "


def reply(obj):
    sys.stdout.write(PROTOCOL_PREFIX + json.dumps(obj) + "\n")
    sys.stdout.flush()


def log(msg):
    sys.stderr.write(f"[torch] {msg}\n")
    sys.stderr.flush()


try:
    import torch
    import torch.nn.functional as F
except Exception as err:  # noqa: BLE001 - any import failure means "no usable torch"
    reply({"error": f"PyTorch is not importable by {sys.executable}: {err}. "
                    "Install Debian's build: apt-get install -y python3-torch libopenblas0-pthread"})
    sys.exit(3)


# ---------- safetensors (the format is small enough to read by hand: u64 header length, JSON, raw data) ----------

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32}


def read_safetensors(path):
    """Every tensor of one file as float32, read one at a time into its own buffer (F32 is not copied again)."""
    out = {}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        for name, info in header.items():
            if name == "__metadata__":
                continue
            begin, end = info["data_offsets"]
            dtype = DTYPES[info["dtype"]]
            buf = bytearray(end - begin)
            f.seek(8 + n + begin)
            if f.readinto(buf) != len(buf):
                raise ValueError(f"{path}: tensor {name} is truncated")
            t = torch.frombuffer(buf, dtype=dtype) if buf else torch.empty(0, dtype=dtype)
            out[name] = t.reshape(info["shape"]).to(torch.float32)
    return out


def read_checkpoint(folder):
    """model.safetensors, or every shard model.safetensors.index.json lists."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if not os.path.exists(index):
        return read_safetensors(os.path.join(folder, "model.safetensors"))
    with open(index) as f:
        shards = sorted(set(json.load(f)["weight_map"].values()))
    out = {}
    for shard in shards:
        out.update(read_safetensors(os.path.join(folder, shard)))
    return out


# ---------- the model ----------

class Model:
    def __init__(self, config, weights, mode, lora_init, rank, alpha, targets, head_rows="all"):
        c = config
        self.head_rows = head_rows
        self.d = c["hidden_size"]
        self.L = c["num_hidden_layers"]
        self.H = c["num_attention_heads"]
        self.Hkv = c.get("num_key_value_heads") or self.H
        self.D = c.get("head_dim") or self.d // self.H
        self.V = c["vocab_size"]
        self.eps = c["rms_norm_eps"]
        self.tied = bool(c.get("tie_word_embeddings"))
        theta = c.get("rope_theta", 10000.0)
        scaling = c.get("rope_scaling") or {}
        self.rope_factor = float(scaling.get("factor", 1.0)) if scaling else 1.0
        # inverse frequencies in float64 then rounded to float32, as Kiln's graph constants are
        self.inv_freq = torch.tensor([1.0 / math.pow(theta, (2 * i) / self.D) for i in range(self.D // 2)], dtype=torch.float64).to(torch.float32)
        self.mode = mode
        self.scale = alpha / rank if mode == "lora" else 0.0
        self.w = weights
        self.lora = {}
        full = mode == "full"
        for t in self.w.values():
            t.requires_grad_(full)
        if mode == "lora":
            for l in range(self.L):
                for module in targets:
                    group = "mlp" if module in ("gate_proj", "up_proj", "down_proj") else "self_attn"
                    base = f"model.layers.{l}.{group}.{module}"
                    a = lora_init[f"{base}.lora_A.weight"].clone().requires_grad_(True)
                    b = lora_init[f"{base}.lora_B.weight"].clone().requires_grad_(True)
                    self.lora[base] = (a, b)
        self.rope_cache = {}

    def trainable(self):
        """(decayed, not decayed) parameter lists: decay applies to matrices only, as in Kiln."""
        if self.mode == "lora":
            return [t for ab in self.lora.values() for t in ab], []
        tensors = list(self.w.values())
        return [t for t in tensors if t.dim() == 2], [t for t in tensors if t.dim() != 2]

    def count(self):
        decay, rest = self.trainable()
        return sum(t.numel() for t in decay + rest)

    def linear(self, x, base):
        y = F.linear(x, self.w[f"{base}.weight"], self.w.get(f"{base}.bias"))
        ab = self.lora.get(base)
        if ab is not None:
            y = y + F.linear(F.linear(x, ab[0]), ab[1]) * self.scale
        return y

    def rms(self, x, name):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.w[name]

    def rope_tables(self, S):
        if S not in self.rope_cache:
            pos = torch.arange(S, dtype=torch.float32) / self.rope_factor
            freqs = pos[:, None] * self.inv_freq[None, :]
            angles = torch.cat([freqs, freqs], dim=-1)  # [S,D]
            mask = torch.full((S, S), float("-inf")).triu(1)
            self.rope_cache[S] = (angles.cos(), angles.sin(), mask)
        return self.rope_cache[S]

    @staticmethod
    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat([-x[..., h:], x[..., :h]], dim=-1)

    def loss(self, ids, labels):
        B, S = ids.shape
        H, Hkv, D = self.H, self.Hkv, self.D
        cos, sin, mask = self.rope_tables(S)
        embed = self.w["model.embed_tokens.weight"]
        x = F.embedding(ids, embed)
        for l in range(self.L):
            p = f"model.layers.{l}"
            h = self.rms(x, f"{p}.input_layernorm.weight")
            q = self.linear(h, f"{p}.self_attn.q_proj").view(B, S, H, D).transpose(1, 2)
            k = self.linear(h, f"{p}.self_attn.k_proj").view(B, S, Hkv, D).transpose(1, 2)
            v = self.linear(h, f"{p}.self_attn.v_proj").view(B, S, Hkv, D).transpose(1, 2)
            q = (q * cos + self.rotate_half(q) * sin) * (1.0 / math.sqrt(D))  # pre-scaled, as Kiln
            k = k * cos + self.rotate_half(k) * sin
            if Hkv != H:
                k = k.repeat_interleave(H // Hkv, dim=1)
                v = v.repeat_interleave(H // Hkv, dim=1)
            probs = torch.softmax(q @ k.transpose(-1, -2) + mask, dim=-1)  # [B,H,S,S]
            attn = (probs @ v).transpose(1, 2).reshape(B, S, H * D)
            x = x + self.linear(attn, f"{p}.self_attn.o_proj")
            h2 = self.rms(x, f"{p}.post_attention_layernorm.weight")
            act = F.silu(self.linear(h2, f"{p}.mlp.gate_proj")) * self.linear(h2, f"{p}.mlp.up_proj")
            x = x + self.linear(act, f"{p}.mlp.down_proj")
        x = self.rms(x, "model.norm.weight")
        head = embed if self.tied else self.w["lm_head.weight"]
        rows, targets = x.reshape(-1, self.d), labels.reshape(-1)  # [B·S,d], [B·S]
        if self.head_rows == "loss":
            keep = (targets != -100).nonzero().squeeze(1)  # [M]
            rows, targets = rows.index_select(0, keep), targets.index_select(0, keep)
        logits = rows @ head.t()  # [B·S or M, V]
        return F.cross_entropy(logits, targets, ignore_index=-100, reduction="mean")


# ---------- the worker ----------

def loaded_blas():
    """Shared libraries mapped into this process whose names mention BLAS (which one really runs)."""
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.strip().split()[-1] if line.strip() else ""
                if "blas" in path.lower() or "lapack" in path.lower() or "mkl" in os.path.basename(path).lower():
                    libs.add(os.path.realpath(path))
    except OSError:
        pass
    return sorted(libs)


def openblas_core():
    """The kernel set OpenBLAS runs (on a CPU model it does not know it falls back to Prescott: SSE3 only)."""
    import ctypes
    for path in loaded_blas():
        if "openblas" in os.path.basename(path):
            try:
                lib = ctypes.CDLL(path)
                lib.openblas_get_corename.restype = ctypes.c_char_p
                return lib.openblas_get_corename().decode()
            except (OSError, AttributeError):
                continue
    return None


def blas_info():
    import re
    m = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    return f"BLAS_INFO={m.group(1)}" if m else "BLAS_INFO unknown"


def matmul_peak(n, chain, runs):
    g = torch.Generator().manual_seed(7)
    a = torch.randn(n, n, generator=g)
    w = torch.randn(n, n, generator=g) / math.sqrt(n)
    with torch.no_grad():
        def once():
            x = a
            for _ in range(chain):
                x = x @ w
            return x.sum().item()
        once()
        best = float("inf")
        for _ in range(runs):
            t0 = time.perf_counter()
            once()
            best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 * chain / best / 1e9, best * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["lora", "full"], required=True)
    ap.add_argument("--model", required=True, help="folder with config.json and model.safetensors")
    ap.add_argument("--batches", required=True, help="int32 file [count, 2 (ids, labels), B, S]")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, required=True)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.999)
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--max-grad-norm", type=float, default=1.0)
    ap.add_argument("--lora-init", help="safetensors with the LoRA A/B initial values (lora mode)")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--targets", default="q_proj,k_proj,v_proj,o_proj")
    ap.add_argument("--head-rows", choices=["all", "loss"], default="all", help="LM head over every position, or the loss positions only")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    t0 = time.perf_counter()
    with open(os.path.join(a.model, "config.json")) as f:
        config = json.load(f)
    weights = read_checkpoint(a.model)
    lora_init = read_safetensors(a.lora_init) if a.mode == "lora" else {}
    model = Model(config, weights, a.mode, lora_init, a.rank, a.alpha, a.targets.split(","), a.head_rows)
    decay, rest = model.trainable()
    groups = [{"params": decay, "weight_decay": a.weight_decay}]
    if rest:
        groups.append({"params": rest, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps)
    params = decay + rest

    with open(a.batches, "rb") as f:
        raw = torch.frombuffer(bytearray(f.read()), dtype=torch.int32, count=a.count * 2 * a.batch * a.seq)
    raw = raw.view(a.count, 2, a.batch, a.seq).to(torch.int64)
    batches = [(raw[i, 0].contiguous(), raw[i, 1].contiguous()) for i in range(a.count)]
    create_ms = (time.perf_counter() - t0) * 1000
    state = {"step": 0}

    def one_step():
        ids, labels = batches[state["step"] % len(batches)]
        opt.zero_grad(set_to_none=True)
        loss = model.loss(ids, labels)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, a.max_grad_norm)
        opt.step()
        state["step"] += 1
        return float(loss.item()), float(norm)

    matmul_peak(256, 1, 1)  # touch the BLAS once so its library is mapped before it is reported
    reply({
        "ready": True,
        "createMs": create_ms,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "blasInfo": blas_info(),
        "blasLibraries": loaded_blas(),
        "openblasCore": openblas_core(),
        "openblasCoreTypeEnv": os.environ.get("OPENBLAS_CORETYPE"),
        "threads": torch.get_num_threads(),
        "openblasThreadsEnv": os.environ.get("OPENBLAS_NUM_THREADS"),
        "trainableParams": model.count(),
        "rssMB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    })
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        msg = json.loads(line)
        cmd = msg.get("cmd")
        if cmd == "steps":
            ms, losses, norms = [], [], []
            for _ in range(int(msg["n"])):
                t = time.perf_counter()
                loss, norm = one_step()
                ms.append((time.perf_counter() - t) * 1000)
                losses.append(loss)
                norms.append(norm)
            reply({"ms": ms, "loss": losses, "gradNorm": norms, "step": state["step"], "maxRssMB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
        elif cmd == "matmul":
            gflops, ms = matmul_peak(int(msg.get("n", 1024)), int(msg.get("chain", 8)), int(msg.get("runs", 3)))
            reply({"gflops": gflops, "bestMs": ms})
        elif cmd == "profile":
            # three profiled steps; per op its smallest self time (filters preemption on a shared machine)
            one_step()  # warm
            best, walls = {}, []
            for _ in range(3):
                with torch.autograd.profiler.profile() as prof:
                    t = time.perf_counter()
                    one_step()
                    walls.append((time.perf_counter() - t) * 1000)
                for e in prof.key_averages():
                    ms = e.self_cpu_time_total / 1000
                    if e.key not in best or ms < best[e.key][0]:
                        best[e.key] = (ms, e.count)
            rows = sorted(best.items(), key=lambda kv: kv[1][0], reverse=True)
            total = sum(ms for ms, _ in best.values())
            reply({
                "stepMs": sorted(walls),
                "selfTotalMsSumOfBest": total,
                "top": [{"op": k, "ms": round(ms, 1), "share": round(ms / total, 3), "calls": n} for k, (ms, n) in rows[:15]],
            })
        elif cmd == "exit":
            reply({"maxRssMB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "steps": state["step"]})
            return
        else:
            reply({"error": f"unknown command {cmd}"})


if __name__ == "__main__":
    main()
