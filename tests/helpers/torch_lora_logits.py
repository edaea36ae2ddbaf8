#!/usr/bin/env python3
"""Logits of a base model plus a PEFT LoRA adapter, computed by the training recipe's own PyTorch
forward pass (recipes/lora_decoder.py), for comparing with Kiln's on the same tokens (tests/integration/recipe-train-lora.test.ts).

    /usr/bin/python3 tests/helpers/torch_lora_logits.py --model DIR --adapter DIR --tokens 1,2,3

Prints one JSON object: {"vocab": V, "logits": [[...V floats] per token]}.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "recipes"))
import lora_decoder as recipe  # noqa: E402


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--adapter", required=True)
    p.add_argument("--tokens", required=True)
    args = p.parse_args(argv)
    with open(os.path.join(args.adapter, "adapter_config.json")) as f:
        config = json.load(f)
    model = recipe.load_own_model(args.model, config["target_modules"], config["r"], config["lora_alpha"], torch.float32, "cpu")
    model.load_adapter_tensors(recipe.read_safetensors(os.path.join(args.adapter, "adapter_model.safetensors")))
    ids = torch.tensor([[int(t) for t in args.tokens.split(",")]])
    with torch.no_grad():
        logits = model(ids)[0]  # [T, V]
    print(json.dumps({"vocab": logits.shape[-1], "logits": logits.tolist()}))


if __name__ == "__main__":
    main(sys.argv[1:])
