"""The decoder recipes/train_lora.py trains LoRA on when transformers is not installed, and its files.

A LLaMA-family forward pass in plain PyTorch (LLaMA, Qwen2, Mistral without sliding window): RMSNorm,
RoPE in Hugging Face's rotate-half form with rope_theta and linear rope_scaling, grouped-query
attention, Qwen2's q/k/v biases, tied embeddings, SiLU MLP; LoRA pairs on chosen projections with
delta W = (alpha / r) * B @ A, as PEFT computes it. Safetensors are read and written here too, so
plain PyTorch is all the recipe needs. Kiln's tests check this forward pass against Kiln's own
(tests/integration/recipe-train-lora.test.ts).
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SUPPORTED_TYPES = ("llama", "qwen2", "mistral")
PEFT_PREFIX = "base_model.model."
ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}
ST_NAMES = {v: k for k, v in ST_DTYPES.items()}


def fail(message):
    raise SystemExit(f"train_lora.py: {message}")


# ---------------------------------------------------------------- safetensors (no package needed)

def read_safetensors(path):
    """name -> tensor. The format: u64 little-endian header length, a JSON header, then raw data."""
    if sys.byteorder != "little":
        fail("safetensors holds little-endian data; this reader runs on little-endian machines only")
    tensors = {}
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        (n,) = struct.unpack("<Q", f.read(8))
        if n > min(size - 8, 100 * 2**20):
            fail(f"{path}: header length {n} does not fit the file")
        header = json.loads(f.read(n))
        base = 8 + n
        for name, info in header.items():
            if name == "__metadata__":
                continue
            dtype = ST_DTYPES.get(info["dtype"])
            if dtype is None:
                fail(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
            start, end = info["data_offsets"]
            if not 0 <= start <= end <= size - base:
                fail(f"{path}: tensor {name} lies outside the file")
            shape = info["shape"]
            if end == start:
                tensors[name] = torch.empty(shape, dtype=dtype)
                continue
            f.seek(base + start)
            buf = bytearray(end - start)
            f.readinto(buf)
            tensors[name] = torch.frombuffer(buf, dtype=dtype).reshape(shape)
    return tensors


def tensor_bytes(t):
    """The tensor's raw little-endian bytes (numpy is the fast way; Debian's python3-torch pulls it in)."""
    if t.numel() == 0:
        return b""
    raw = t.view(torch.uint8) if t.dtype != torch.bool else t.to(torch.uint8)
    try:
        return raw.numpy().tobytes()
    except (ImportError, RuntimeError):
        return bytes(raw.flatten().tolist())


def write_safetensors(path, tensors):
    """Writes name -> tensor (sorted by name, data 8-byte aligned after the header), as safetensors does."""
    header = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        data = tensor_bytes(t)
        header[name] = {"dtype": ST_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())


def load_checkpoint_tensors(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        for s in shards:  # as Kiln's loader: a shard is a file of this folder, never a path out of it
            if not isinstance(s, str) or "/" in s or "\\" in s or s in ("", ".", ".."):
                fail(f"{index} names an invalid shard file {s!r}: shards are file names inside {model_dir}")
        files = [os.path.join(model_dir, s) for s in shards]
    else:
        files = [os.path.join(model_dir, "model.safetensors")]
    tensors = {}
    for file in files:
        if not os.path.exists(file):
            fail(f"{file} not found: --model needs a Hugging Face folder with safetensors weights")
        tensors.update(read_safetensors(file))
    return tensors


# ---------------------------------------------------------------- the model (its own forward pass)

class Config:
    """The config.json fields the forward pass reads, with Hugging Face's defaults."""

    def __init__(self, j):
        self.model_type = j.get("model_type")
        if self.model_type not in SUPPORTED_TYPES:
            fail(f"model_type {self.model_type!r} is not supported (supported: {', '.join(SUPPORTED_TYPES)})")
        if j.get("hidden_act", "silu") != "silu":
            fail(f"hidden_act {j.get('hidden_act')!r} is not supported (silu only)")
        self.hidden = j["hidden_size"]
        self.layers = j["num_hidden_layers"]
        self.heads = j["num_attention_heads"]
        self.kv_heads = j.get("num_key_value_heads") or self.heads
        self.head_dim = j.get("head_dim") or self.hidden // self.heads
        self.vocab = j["vocab_size"]
        self.eps = j.get("rms_norm_eps", 1e-6)
        self.theta = j.get("rope_theta", 10000.0)
        scaling = j.get("rope_scaling")
        if scaling and scaling.get("type", scaling.get("rope_type")) != "linear":
            fail(f"rope_scaling {scaling!r} is not supported (linear or none)")
        self.rope_factor = scaling["factor"] if scaling else 1.0
        self.tied = j.get("tie_word_embeddings", False) is True
        # qwen2 always has q/k/v biases; llama and mistral only when attention_bias says so
        self.qkv_bias = self.model_type == "qwen2" or j.get("attention_bias", False) is True
        # the forward pass attends to every earlier position: a sliding window (Mistral's, or Qwen2's when
        # use_sliding_window is set) is only the same when no sequence is longer than it (check_window)
        windowed = self.model_type == "mistral" or (self.model_type == "qwen2" and j.get("use_sliding_window") is True)
        self.sliding_window = j.get("sliding_window") if windowed else None

    def check_window(self, seq_len):
        if self.sliding_window is not None and seq_len > self.sliding_window:
            fail(f"sequences of {seq_len} tokens are longer than the model's sliding_window {self.sliding_window}, "
                 "which this forward pass does not apply (it attends to every earlier position); pass --seq-len "
                 f"{self.sliding_window} or less, or install transformers and peft")


def rms_norm(x, weight, eps):
    # [B, T, H] in float32, as HF computes it
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * weight


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class LoraDecoder(torch.nn.Module):
    """A LLaMA-family decoder over frozen base tensors, with trainable LoRA pairs on chosen projections.

    The base tensors are plain attributes, not parameters or buffers, so DDP neither broadcasts nor
    all-reduces them: only the LoRA parameters travel between processes.
    """

    def __init__(self, config, tensors, targets, rank, alpha, dtype=torch.float32, device="cpu"):
        super().__init__()
        self.c = config
        self.w = {k: v.to(device=device, dtype=dtype) for k, v in tensors.items()}
        if config.tied or "lm_head.weight" not in self.w:
            self.w["lm_head.weight"] = self.w["model.embed_tokens.weight"]
        self.scale = alpha / rank
        self.targets = list(targets)
        self.lora_a = torch.nn.ParameterDict()
        self.lora_b = torch.nn.ParameterDict()
        for module in self.adapted_modules():
            out_f, in_f = self.w[f"{module}.weight"].shape
            a = torch.empty(rank, in_f, device=device)
            torch.nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # PEFT's initialisation; B starts at zero
            key = module.replace(".", "__")  # ParameterDict keys cannot hold dots
            self.lora_a[key] = torch.nn.Parameter(a)
            self.lora_b[key] = torch.nn.Parameter(torch.zeros(out_f, rank, device=device))

    def adapted_modules(self):
        return [m for m in self.module_names() if m.rsplit(".", 1)[1] in self.targets]

    def module_names(self):
        names = []
        for i in range(self.c.layers):
            names += [f"model.layers.{i}.self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj", "o_proj")]
            names += [f"model.layers.{i}.mlp.{p}" for p in ("gate_proj", "up_proj", "down_proj")]
        return names

    def linear(self, x, module):
        # x [B, T, in] -> [B, T, out]; + scale · (x Aᵀ) Bᵀ where adapted
        y = F.linear(x, self.w[f"{module}.weight"], self.w.get(f"{module}.bias"))
        key = module.replace(".", "__")
        if key in self.lora_a:
            y = y + self.scale * F.linear(F.linear(x, self.lora_a[key].to(x.dtype)), self.lora_b[key].to(x.dtype))
        return y

    def rope(self, T, device):
        c = self.c
        inv_freq = 1.0 / (c.theta ** (torch.arange(0, c.head_dim, 2, dtype=torch.float32, device=device) / c.head_dim))
        t = torch.arange(T, dtype=torch.float32, device=device) / c.rope_factor
        freqs = torch.outer(t, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)  # [T, D]
        return emb.cos(), emb.sin()

    def forward(self, ids):
        c, w = self.c, self.w
        B, T = ids.shape
        x = w["model.embed_tokens.weight"][ids]  # [B, T, H]
        cos, sin = self.rope(T, ids.device)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        causal = torch.full((T, T), float("-inf"), device=ids.device).triu(1)  # [T, T]
        for i in range(c.layers):
            p = f"model.layers.{i}"
            h = rms_norm(x, w[f"{p}.input_layernorm.weight"], c.eps)
            q = self.linear(h, f"{p}.self_attn.q_proj").view(B, T, c.heads, c.head_dim).transpose(1, 2)  # [B, Hq, T, D]
            k = self.linear(h, f"{p}.self_attn.k_proj").view(B, T, c.kv_heads, c.head_dim).transpose(1, 2)  # [B, Hkv, T, D]
            v = self.linear(h, f"{p}.self_attn.v_proj").view(B, T, c.kv_heads, c.head_dim).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            group = c.heads // c.kv_heads
            k = k.repeat_interleave(group, dim=1)  # [B, Hq, T, D]
            v = v.repeat_interleave(group, dim=1)
            if hasattr(F, "scaled_dot_product_attention") and x.is_cuda:
                att = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # torch >= 2 on GPUs: no [T, T] scores kept for backward
            else:
                scores = (q @ k.transpose(-1, -2)).float() / math.sqrt(c.head_dim) + causal  # [B, Hq, T, T]
                att = scores.softmax(-1).to(x.dtype) @ v  # [B, Hq, T, D]
            x = x + self.linear(att.transpose(1, 2).reshape(B, T, c.heads * c.head_dim), f"{p}.self_attn.o_proj")
            h = rms_norm(x, w[f"{p}.post_attention_layernorm.weight"], c.eps)
            gate = self.linear(h, f"{p}.mlp.gate_proj")
            x = x + self.linear(F.silu(gate) * self.linear(h, f"{p}.mlp.up_proj"), f"{p}.mlp.down_proj")
        x = rms_norm(x, w["model.norm.weight"], c.eps)
        return F.linear(x, w["lm_head.weight"]).float()  # [B, T, V]

    def adapter_tensors(self):
        """Kiln/PEFT names -> A [r, in], B [out, r], in float32."""
        out = {}
        for key in self.lora_a:
            module = key.replace("__", ".")
            out[f"{PEFT_PREFIX}{module}.lora_A.weight"] = self.lora_a[key].detach().float().cpu()
            out[f"{PEFT_PREFIX}{module}.lora_B.weight"] = self.lora_b[key].detach().float().cpu()
        return out

    def load_adapter_tensors(self, tensors):
        for name, value in tensors.items():
            module, which = name[len(PEFT_PREFIX):].rsplit(".lora_", 1)
            key = module.replace(".", "__")
            table = self.lora_a if which == "A.weight" else self.lora_b
            if key not in table or table[key].shape != value.shape:
                fail(f"adapter tensor {name} {tuple(value.shape)} does not fit this model and rank")
            with torch.no_grad():
                table[key].copy_(value.float())


def adapter_config(base_model, rank, alpha, targets):
    """adapter_config.json as PEFT's LoraConfig.save_pretrained writes it (the fields Kiln and PEFT read)."""
    return {
        "alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": base_model, "bias": "none",
        "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True, "layer_replication": None,
        "layers_pattern": None, "layers_to_transform": None, "loftq_config": {}, "lora_alpha": alpha,
        "lora_dropout": 0.0, "megatron_config": None, "megatron_core": "megatron.core", "modules_to_save": None,
        "peft_type": "LORA", "r": rank, "rank_pattern": {}, "revision": None,
        "target_modules": [t for t in LORA_TARGETS if t in targets], "task_type": "CAUSAL_LM",
        "use_dora": False, "use_rslora": False,
    }


def load_own_model(model_dir, targets, rank, alpha, dtype, device):
    with open(os.path.join(model_dir, "config.json")) as f:
        config = Config(json.load(f))
    return LoraDecoder(config, load_checkpoint_tensors(model_dir), targets, rank, alpha, dtype, device)


def load_transformers_model(model_dir, targets, rank, alpha, dtype, device):
    """transformers + peft: the model as Hugging Face defines it, LoRA as PEFT applies it (not run by Kiln's tests)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=dtype).to(device)
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
                        target_modules=[t for t in LORA_TARGETS if t in targets])
    return get_peft_model(base, config)


def have_transformers():
    try:
        import peft  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True
