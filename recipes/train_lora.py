#!/usr/bin/env python3
"""Train a LoRA adapter on a Kiln dataset export, on any number of GPUs or CPU processes.

    kiln finetune <repo> --export-dataset DATA            # the examples Kiln would train on
    torchrun --nproc_per_node 8 recipes/train_lora.py --data DATA --model MODEL --out ADAPTER
    torchrun --nnodes 4 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST:29500 \\
        recipes/train_lora.py --data DATA --model MODEL --out ADAPTER

MODEL is a Hugging Face LLaMA / Qwen2 / Mistral checkpoint folder (config.json + safetensors). The
adapter is written in PEFT's layout (adapter_config.json + adapter_model.safetensors, tensors named
base_model.model.<module>.lora_A.weight), which Kiln loads as an adapter (kiln.adapterPath,
`kiln eval --adapter`), and which llama.cpp (convert_lora_to_gguf.py, then llama-server --lora) and
vLLM's LoRA serving load too.

With `transformers` and `peft` installed (and no --own-forward) the model is transformers' and the
adapter is saved by peft. Without them the script uses its own forward pass (lora_decoder.py beside
it: RMSNorm, RoPE with theta and linear scaling, grouped-query attention, Qwen2's q/k/v biases, tied
embeddings, SiLU MLP) and reads and writes safetensors itself, so plain PyTorch is enough; copy both
files to the cluster. Kiln's tests run this second path under `torchrun --nproc_per_node 2` on the
CPU (gloo); the transformers/peft path is not exercised by them.

Debian 12's python3-torch 1.13 on Python 3.11 crashes in torchrun's default output settings (its Std
flag enum has no iterable NONE there): add `--redirects 2 --tee 1 --log_dir LOGS` to torchrun.

Each process trains on its own shard of the packed sequences; DistributedDataParallel averages the
LoRA gradients. Every process prints `rank R step S/T loss L` lines; rank 0 saves the adapter.
"""
import argparse
import hashlib
import json
import math
import os
import shutil
import struct
import sys
import tempfile
import time

try:
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
except ImportError as err:  # a clear message, not a traceback: the usual cause is a python without torch first on PATH
    raise SystemExit(f"train_lora.py needs PyTorch, which {sys.executable} cannot import ({err}); "
                     "install it (pip install torch, or Debian's python3-torch) or run the python that has it") from None
try:
    from lora_decoder import LORA_TARGETS, adapter_config, fail, have_transformers, load_own_model, load_transformers_model, write_safetensors
except ModuleNotFoundError as err:
    if err.name != "lora_decoder":
        raise
    raise SystemExit("train_lora.py needs lora_decoder.py in the same folder: copy both files from Kiln's recipes/") from None

DATASET_FORMAT = "kiln-dataset"
DATASET_FORMAT_VERSION = 1


# ---------------------------------------------------------------- the dataset export

def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(8 * 2**20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_export(data_dir, vocab):
    """The manifest and each split's examples, checked against the manifest's hashes and counts."""
    path = os.path.join(data_dir, "manifest.json")
    if not os.path.exists(path):
        fail(f"{path} not found: --data takes the folder `kiln finetune <repo> --export-dataset` wrote")
    with open(path) as f:
        manifest = json.load(f)
    if manifest.get("format") != DATASET_FORMAT or manifest.get("format_version") != DATASET_FORMAT_VERSION:
        fail(f"{path} is not a {DATASET_FORMAT} v{DATASET_FORMAT_VERSION} manifest")
    splits = {}
    for which in ("train", "validation"):
        file = os.path.join(data_dir, f"{which}.jsonl")
        figures = manifest["split"][which]
        if sha256_file(file) != figures["sha256"]:
            fail(f"{file} does not match manifest.json's sha256: it changed after the export")
        with open(file, encoding="utf-8") as f:
            examples = [json.loads(line) for line in f if line.strip()]
        if len(examples) != figures["examples"]:
            fail(f"{file} holds {len(examples)} examples, manifest.json says {figures['examples']}")
        for n, e in enumerate(examples, 1):
            ids, mask = e["input_ids"], e["loss_mask"]
            if len(ids) != len(mask) or any((not isinstance(t, int)) or t < 0 or t >= vocab for t in ids):
                fail(f"{file} line {n}: input_ids must be token ids below vocab_size {vocab}, one loss_mask entry each")
        splits[which] = examples
    return manifest, splits


def check_base_model(manifest, model_dir, allow_other_tokenizer, log):
    """The ids were made with the export's tokenizer: a different one is refused; other weights are only warned about."""
    for name, digest in manifest["tokenizer"]["files"].items():
        file = os.path.join(model_dir, name)
        if not os.path.exists(file):
            log(f"note: {file} is missing; cannot check the tokenizer is the one the export was made with")
        elif sha256_file(file) != digest:
            message = f"{file} differs from the tokenizer the dataset was exported with (manifest.json)"
            if not allow_other_tokenizer:
                fail(f"{message}; pass --allow-other-tokenizer if its ids are the same")
            log(f"warning: {message}")
    exported = {(w["file"], w["bytes"]) for w in manifest["base_model"]["weights"]}
    present = {(f, os.path.getsize(os.path.join(model_dir, f))) for f in os.listdir(model_dir) if f.endswith(".safetensors")}
    if exported != present:
        log("warning: the weights files differ from the base model the export names; the adapter is trained for these weights")


def segments(example, seq_len):
    """An example longer than seq_len cut into windows that overlap by one token, as Kiln packs: every target once."""
    ids, mask = example["input_ids"], example["loss_mask"]
    if len(ids) <= seq_len:
        return [(ids, mask)]
    return [(ids[s:s + seq_len], mask[s:s + seq_len]) for s in range(0, len(ids) - 1, seq_len - 1)]


def keyed_random(seed, key):
    """Kiln's keyed stream (server/src/dataset/random.ts): sfc32 seeded from sha256("<seed>\\0<key>"), floats in [0, 1)."""
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    a, b, c, d = struct.unpack_from("<4I", digest)
    M = 0xFFFFFFFF

    def draw():
        nonlocal a, b, c, d
        t = (a + b + d) & M
        d = (d + 1) & M
        a = b ^ (b >> 9)
        b = (c + (c << 3)) & M
        c = ((c << 21) | (c >> 11)) & M
        c = (c + t) & M
        return t / 4294967296

    for _ in range(12):  # as Kiln: mix the state before the first draw
        draw()
    return draw


def kiln_shuffle(items, draw):
    """Kiln's Fisher-Yates (shuffleInPlace), so the same stream gives the same order."""
    for i in range(len(items) - 1, 0, -1):
        j = math.floor(draw() * (i + 1))
        items[i], items[j] = items[j], items[i]
    return items


def pack(examples, seq_len, pad_id, ignore_index, seed, key, open_bins=32):
    """Kiln's packing (server/src/dataset/pack.ts): examples shuffled by the keyed stream (seed, key),
    long ones cut into overlapping segments, placed first-fit into sequences of seq_len, the 32 newest
    bins open. With the manifest's seed, sequence length and key "train" / "validation" these are the
    very sequences Kiln's fine-tune trains on. Labels are already shifted (position i predicts i + 1).

    Returns ids [N, seq_len] and labels [N, seq_len]; padding and non-target positions are ignore_index.
    """
    order = kiln_shuffle(list(examples), keyed_random(seed, key))
    bins, open_list = [], []
    for e in order:
        for ids, mask in segments(e, seq_len):
            if not ids:
                continue
            target = next((b for b in open_list if b[1] + len(ids) <= seq_len), None)
            if target is None:
                target = [[], 0]
                bins.append(target)
                open_list.append(target)
                if len(open_list) > open_bins:
                    open_list.pop(0)
            target[0].append((ids, mask))
            target[1] += len(ids)
            if target[1] == seq_len:
                open_list.remove(target)
    input_ids = torch.full((len(bins), seq_len), pad_id, dtype=torch.long)
    labels = torch.full((len(bins), seq_len), ignore_index, dtype=torch.long)
    for row, (parts, _) in enumerate(bins):
        at = 0
        for ids, mask in parts:
            input_ids[row, at:at + len(ids)] = torch.tensor(ids)
            for j in range(len(ids) - 1):
                if mask[j + 1] == 1:
                    labels[row, at + j] = ids[j + 1]
            at += len(ids)
    return input_ids, labels


# ---------------------------------------------------------------- training

def learning_rate(peak, step, warmup, total, min_ratio=0.1):
    """Linear warmup, then cosine to min_ratio · peak (Kiln's schedule); step is 1-based."""
    if warmup > 0 and step <= warmup:
        return peak * step / warmup
    progress = min(1.0, max(0.0, (step - warmup) / max(1, total - warmup)))
    floor = peak * min_ratio
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def shard_batches(n, world, rank, batch, epoch, seed):
    """This rank's batches of row indices for one epoch: one permutation for all ranks, padded so every rank steps equally."""
    g = torch.Generator().manual_seed(seed * 1000003 + epoch)
    perm = torch.randperm(n, generator=g).tolist()
    per_step = world * batch
    while len(perm) % per_step:
        perm += perm[: per_step - len(perm) % per_step]
    mine = perm[rank::world]
    return [mine[i:i + batch] for i in range(0, len(mine), batch)]


def logits_of(model, ids):
    out = model(ids)
    return out if torch.is_tensor(out) else out.logits


def batch_loss(model, ids, labels, ignore_index, world):
    """The loss to backpropagate, and this process's mean loss per target token (for the log).

    DDP averages the processes' gradients, so each process returns (its summed loss) · world / (the
    step's targets on all processes): the averaged gradient is then that of the mean over every target
    of the step, as one process with the whole batch computes it, however the targets fall on ranks.
    """
    logits = logits_of(model, ids)  # [B, T, V]
    summed = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=ignore_index, reduction="sum")
    mine = (labels != ignore_index).sum()
    targets = mine.clone().float()
    if world > 1:
        dist.all_reduce(targets)
    return summed * world / targets.clamp(min=1), (summed.detach() / mine.clamp(min=1)).item()


@torch.no_grad()
def validation_loss(model, ids, labels, ignore_index, world, rank, batch, device):
    """Mean loss per target token over every validation sequence, all ranks together."""
    total = torch.zeros(2, dtype=torch.float64, device=device)  # [sum of losses, targets]
    for start in range(rank * batch, ids.shape[0], world * batch):
        x, y = ids[start:start + batch].to(device), labels[start:start + batch].to(device)
        logits = logits_of(model, x)
        total[0] += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), ignore_index=ignore_index, reduction="sum").double()
        total[1] += (y != ignore_index).sum()
    if world > 1:
        dist.all_reduce(total)
    return (total[0] / total[1]).item() if total[1] > 0 else float("nan")


def save_adapter(model, out, base_model, rank, alpha, targets, report):
    """PEFT layout into a temp folder beside `out`, renamed into place whole."""
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f"{os.path.basename(out)}.tmp-", dir=os.path.dirname(out))
    if hasattr(model, "save_pretrained"):  # peft
        model.save_pretrained(tmp, safe_serialization=True)
    else:
        write_safetensors(os.path.join(tmp, "adapter_model.safetensors"), model.adapter_tensors())
        with open(os.path.join(tmp, "adapter_config.json"), "w") as f:
            json.dump(adapter_config(base_model, rank, alpha, targets), f, indent=2)
    with open(os.path.join(tmp, "training_report.json"), "w") as f:
        json.dump(report, f, indent=2)
    os.chmod(tmp, 0o755)  # mkdtemp makes it private
    if os.path.isdir(out):
        old = tempfile.mkdtemp(prefix=f"{os.path.basename(out)}.old-", dir=os.path.dirname(out))
        os.rename(out, os.path.join(old, "adapter"))
        os.rename(tmp, out)
        shutil.rmtree(old)
    else:
        os.rename(tmp, out)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Train a LoRA adapter on a Kiln dataset export (launch with torchrun).")
    p.add_argument("--data", required=True, help="the folder `kiln finetune <repo> --export-dataset` wrote")
    p.add_argument("--model", required=True, help="the base model: a Hugging Face folder (config.json + safetensors)")
    p.add_argument("--out", required=True, help="the adapter folder to write (PEFT layout)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--rank", type=int, help="LoRA rank (default: the manifest's, Kiln's default)")
    p.add_argument("--alpha", type=float, help="LoRA alpha (default: the manifest's)")
    p.add_argument("--targets", help="comma-separated projections (default: the manifest's)")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the manifest's)")
    p.add_argument("--epochs", type=float, help="passes over the training sequences (default: the manifest's, Kiln's 3)")
    p.add_argument("--steps", type=int, help="optimizer steps (overrides --epochs)")
    p.add_argument("--batch", type=int, help="sequences per process per step (default: the manifest's batch x accumulation, Kiln's 4)")
    p.add_argument("--warmup", type=int, help="warmup steps (default: the manifest's, Kiln's 10)")
    p.add_argument("--seq-len", type=int, help="packed sequence length (default: the manifest's)")
    p.add_argument("--seed", type=int, default=0, help="LoRA initialisation and batch order (packing follows the export's seed, as Kiln's)")
    p.add_argument("--log-every", type=int, default=1, help="print each process's loss every N steps (and at the last)")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="base weights' dtype (default: float32 on the CPU, bfloat16 on GPUs)")
    p.add_argument("--backend", choices=["auto", "gloo", "nccl"], default="auto", help="torch.distributed backend (auto: nccl with CUDA, else gloo)")
    p.add_argument("--own-forward", action="store_true", help="use this script's forward pass even when transformers and peft are installed")
    p.add_argument("--allow-other-tokenizer", action="store_true", help="train with a tokenizer whose files differ from the export's")
    args = p.parse_args(argv)
    for name in ("rank", "steps", "seq_len"):
        if getattr(args, name) is not None and getattr(args, name) < (2 if name == "seq_len" else 1):
            p.error(f"--{name.replace('_', '-')} must be at least {2 if name == 'seq_len' else 1}")
    if (args.batch is not None and args.batch < 1) or args.log_every < 1 or (args.warmup is not None and args.warmup < 0) or (args.epochs is not None and not args.epochs > 0):
        p.error("--batch and --log-every must be at least 1, --warmup at least 0, --epochs above 0")
    return args


def setup_distributed(backend_choice):
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and backend_choice != "gloo"
    backend = "nccl" if (backend_choice == "nccl" or (backend_choice == "auto" and cuda)) else "gloo"
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group(backend=backend)
    return world, rank, device, backend


def main(argv):
    args = parse_args(argv)
    world, rank, device, backend = setup_distributed(args.backend)
    log = (lambda m: print(m, flush=True)) if rank == 0 else (lambda m: None)
    out = os.path.abspath(args.out)
    real_out = os.path.realpath(out)  # a linked parent of --out must not hide that it is --data or --model
    for what, path in (("--data", args.data), ("--model", args.model)):
        path = os.path.realpath(path)
        if os.path.commonpath([real_out, path]) in (real_out, path):
            fail(f"--out {out} overlaps {what} {path}: the adapter folder is replaced whole, so give it a folder of its own")
    if rank == 0 and os.path.isdir(out) and os.listdir(out) and not args.overwrite:
        fail(f"{out} is not empty; choose another folder or pass --overwrite")
    config_file = os.path.join(args.model, "config.json")
    if not os.path.isfile(config_file):
        fail(f"{config_file} not found: --model takes a Hugging Face checkpoint folder")
    with open(config_file) as f:
        vocab = json.load(f)["vocab_size"]
    manifest, splits = load_export(args.data, vocab)
    if rank == 0:
        check_base_model(manifest, args.model, args.allow_other_tokenizer, log)
    lora = manifest["lora"]
    r = args.rank or lora["rank"]
    alpha = args.alpha if args.alpha is not None else lora["alpha"]
    targets = args.targets.split(",") if args.targets else lora["target_modules"]
    unknown = [t for t in targets if t not in LORA_TARGETS]
    if unknown:
        fail(f"unknown --targets {', '.join(unknown)} (choose from {', '.join(LORA_TARGETS)})")
    peak = args.lr or lora["learning_rate"]
    # Kiln's schedule from the export (older exports: Kiln's defaults); a flag overrides it
    schedule = manifest.get("training") or {"batch_size": 4, "accumulation": 1, "warmup_steps": 10, "epochs": 3}
    args.batch = args.batch or schedule["batch_size"] * schedule["accumulation"]
    args.warmup = args.warmup if args.warmup is not None else schedule["warmup_steps"]
    args.epochs = args.epochs or schedule["epochs"]
    seq_len = args.seq_len or manifest["sequence_length"]
    ignore = manifest["ignore_index"]
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)

    torch.manual_seed(args.seed)  # the same LoRA initialisation on every rank (DDP also broadcasts rank 0's)
    use_hf = have_transformers() and not args.own_forward
    load = load_transformers_model if use_hf else load_own_model
    model = load(args.model, targets, r, alpha, dtype, device)
    if not use_hf:
        model.c.check_window(seq_len)
    log(f"model {args.model} ({'transformers + peft' if use_hf else 'own forward pass'}, {dtype}), LoRA r={r} alpha={alpha} on {','.join(targets)}; "
        f"{world} processes, backend {backend}, device {device.type}")
    train_ids, train_labels = pack(splits["train"], seq_len, manifest["pad_id"], ignore, manifest["seed"], "train")
    val_ids, val_labels = pack(splits["validation"], seq_len, manifest["pad_id"], ignore, manifest["seed"], "validation")
    if train_ids.shape[0] == 0:
        fail("the export holds no training examples")
    per_epoch = math.ceil(train_ids.shape[0] / (world * args.batch))
    total = args.steps or max(1, math.ceil(args.epochs * per_epoch))
    log(f"{train_ids.shape[0]} train and {val_ids.shape[0]} validation sequences of {seq_len} tokens; {total} steps of {args.batch} x {world}")

    ddp_devices = {"device_ids": [device.index]} if device.type == "cuda" else {}
    trained = torch.nn.parallel.DistributedDataParallel(model, **ddp_devices) if world > 1 else model
    params = [p for p in trained.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=peak, betas=(0.9, 0.999), weight_decay=0.0)
    before = validation_loss(model, val_ids, val_labels, ignore, world, rank, args.batch, device)
    log(f"validation loss {before:.6f} before training")
    losses, step, epoch, started = [], 0, 0, time.time()
    while step < total:
        for rows in shard_batches(train_ids.shape[0], world, rank, args.batch, epoch, args.seed):
            if step >= total:
                break
            step += 1
            lr = learning_rate(peak, step, args.warmup, total)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss, mean_loss = batch_loss(trained, train_ids[rows].to(device), train_labels[rows].to(device), ignore, world)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            losses.append(mean_loss)
            if step % max(1, args.log_every) == 0 or step == total:
                print(f"rank {rank} step {step}/{total} loss {losses[-1]:.6f} lr {lr:.3e}", flush=True)
        epoch += 1
    after = validation_loss(model, val_ids, val_labels, ignore, world, rank, args.batch, device)
    log(f"validation loss {after:.6f} after {total} steps ({time.time() - started:.1f} s)")
    if rank == 0:
        finite = lambda x: x if math.isfinite(x) else None  # no validation files: JSON has no NaN
        report = {"steps": total, "processes": world, "validation_loss_before": finite(before), "validation_loss_after": finite(after),
                  "train_losses_rank0": losses, "dataset_manifest_sha256": sha256_file(os.path.join(args.data, "manifest.json")),
                  "kiln_version": manifest["kiln_version"],
                  # every choice the adapter depends on, resolved (defaults included), to train it again
                  "training": {"rank": r, "alpha": alpha, "target_modules": [t for t in LORA_TARGETS if t in targets], "learning_rate": peak,
                               "warmup": args.warmup, "steps": total, "batch_per_process": args.batch, "sequence_length": seq_len,
                               "seed": args.seed, "packing_seed": manifest["seed"], "dtype": str(dtype).replace("torch.", ""),
                               "forward": "transformers+peft" if use_hf else "own", "backend": backend, "device": device.type,
                               "torch_version": torch.__version__, "python_version": sys.version.split()[0]}}
        save_adapter(model, out, os.path.abspath(args.model), r, alpha, targets, report)
        log(f"saved the adapter to {out}")
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
