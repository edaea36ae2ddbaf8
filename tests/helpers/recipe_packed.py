#!/usr/bin/env python3
"""The sequences recipes/train_lora.py packs from a dataset export, as JSON, for comparing with the
ones Kiln's fine-tune trains on (tests/integration/recipe-train-lora.test.ts).

    /usr/bin/python3 tests/helpers/recipe_packed.py --data DIR --vocab V

Prints {"train": {"input_ids": [[...]], "labels": [[...]]}, "validation": {...}}.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "recipes"))
import train_lora  # noqa: E402


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--vocab", type=int, required=True)
    args = p.parse_args(argv)
    manifest, splits = train_lora.load_export(args.data, args.vocab)
    out = {}
    for key in ("train", "validation"):
        ids, labels = train_lora.pack(splits[key], manifest["sequence_length"], manifest["pad_id"], manifest["ignore_index"], manifest["seed"], key)
        out[key] = {"input_ids": ids.tolist(), "labels": labels.tolist()}
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
