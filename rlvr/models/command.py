"""`rlvr models ls | fetch`: the registered models, whether each is here, and getting one."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rlvr.models import registry

HELP = "pretrained models by name: list them, fetch one as a checkpoint"

EPILOG = """\
Anywhere a model is named (model= in a config, rlvr eval MODEL, rlvr sample MODEL) rlvr takes, in this order:
  a checkpoint directory, a .gguf file (dequantized once, cached under $RLVR_MODELS_DIR/gguf/),
  a registered name (after `rlvr models fetch NAME`), or a Hugging Face hub id org/name (needs the hub or its cache).
$RLVR_MODELS_DIR defaults to ~/.cache/rlvr/models."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    sub = parser.add_subparsers(dest="models_command", required=True, metavar="SUBCOMMAND")
    ls = sub.add_parser("ls", help="registered models: family, parameters, licence, source, whether fetched")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    fetch = sub.add_parser("fetch", help="get a registered model's GGUF, verify it, save it as a checkpoint")
    fetch.add_argument("name", help=f"one of: {', '.join(sorted(registry.REGISTRY))}")
    fetch.add_argument("--force", action="store_true", help="fetch again even if a complete copy is there")


def run(args: argparse.Namespace) -> int:
    return {"ls": _ls, "fetch": _fetch}[args.models_command](args)


def _row(spec: registry.ModelSpec) -> dict[str, Any]:
    path = registry.local_checkpoint(spec)
    return {
        "name": spec.name, "family": spec.family, "parameters": spec.parameters, "license": spec.license,
        "upstream": spec.upstream, "source": spec.source, "sha256": spec.sha256,
        "quantization": spec.quantization, "present": path is not None,
        "path": str(path if path is not None else registry.checkpoint_path(spec)), "note": spec.note,
    }  # fmt: skip


def _ls(args: argparse.Namespace) -> int:
    rows = [_row(spec) for spec in registry.REGISTRY.values()]
    if args.json:
        print(json.dumps({"models_dir": str(registry.models_dir()), "models": rows}))
        return 0
    print(f"{'name':22} {'family':22} {'params':>6}  {'license':19} {'state':8} source")
    for r in rows:
        state = "present" if r["present"] else "missing"
        print(
            f"{r['name']:22} {r['family']:22} {r['parameters']:>6}  {r['license']:19} {state:8} {r['source']}"
        )
    for r in rows:
        if r["present"]:
            print(f"  {r['name']}: {r['path']}")
    print(
        f"\nmodels dir: {registry.models_dir()} ($RLVR_MODELS_DIR); `rlvr models fetch NAME` gets a missing one"
    )
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from rlvr.models.fetch import fetch

    spec = registry.lookup(args.name)
    if registry.local_checkpoint(spec) is None or args.force:
        print(f"{spec.name}: getting {spec.source} and dequantizing it (about a minute) ...", file=sys.stderr)
    print(fetch(spec, force=args.force))  # a FetchError is a ValueError: `rlvr models: error: ...`, exit 2
    return 0
