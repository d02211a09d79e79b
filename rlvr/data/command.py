"""`rlvr data ls | show | fetch | prepare`: the registry, a look at records, downloads, and the curation pipeline."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rlvr.data import registry

HELP = "datasets: list, show, fetch, and prepare a curated training set"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    ls = sub.add_parser("ls", help="registered sets: split, records, source, whether present locally")
    ls.add_argument("--datasets", help="a YAML of your own registered sets to include")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    show = sub.add_parser("show", help="print a few records of a set")
    show.add_argument("name")
    show.add_argument("--n", type=int, default=3, help="how many records (default 3)")
    show.add_argument(
        "--template", help="also show the prompt of this template (a name or an inline mapping), as messages"
    )
    show.add_argument("--datasets", help="a YAML of your own registered sets")
    fetch = sub.add_parser("fetch", help="download a registered set into the cache and verify it")
    fetch.add_argument("name")
    fetch.add_argument("--force", action="store_true", help="download again even if a verified copy is there")
    prepare = sub.add_parser("prepare", help="run a curation pipeline config (see recipes/data/)")
    prepare.add_argument("config", help="YAML: sources, steps, output")
    prepare.add_argument("overrides", nargs="*", help="key=value overrides of top-level config fields")
    prepare.add_argument("--json", action="store_true", help="print the report as one JSON object")


def run(args: argparse.Namespace) -> int:
    return {"ls": _ls, "show": _show, "fetch": _fetch, "prepare": _prepare}[args.data_command](args)


def _user_specs(args: argparse.Namespace) -> dict[str, registry.DatasetSpec]:
    return registry.load_user_datasets(args.datasets) if getattr(args, "datasets", None) else {}


def _ls(args: argparse.Namespace) -> int:
    specs = {**registry.REGISTRY, **registry.GENERATED, **_user_specs(args)}
    rows = [registry.status(spec) for spec in specs.values()]
    if args.json:
        print(json.dumps({"data_dir": str(registry.data_dir()), "datasets": [r.to_dict() for r in rows]}))
        return 0
    print(f"{'name':22} {'split':5} {'records':>7}  {'state':44} source")
    for r in rows:
        print(f"{r.name:22} {r.split:5} {r.records:7d}  {r.state:44} {r.source}")
    if registry.data_dir() is None:
        print(
            "\nRLVR_DATA_DIR is not set: point it at a directory laid out like eval/ and train/ (or `rlvr data fetch`)."
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    from rlvr.data.templates import messages, parse, resolve

    template = parse(args.template) if args.template else None
    for p in registry.load_dataset(args.name, _user_specs(args))[: args.n]:
        print(json.dumps(p.to_dict(), ensure_ascii=False, indent=2))
        if template is not None:
            chat = messages(template, p.problem)
            if resolve(template).prefix:  # where the model's answer starts
                chat.append({"role": "assistant", "content": resolve(template).prefix})
            print(json.dumps(chat, ensure_ascii=False, indent=2))
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from rlvr.data.fetch import FetchError, fetch

    spec = registry.resolve(args.name)
    if spec.generator is not None:
        print(f"{spec.name} is generated ({spec.source.path}: {spec.note}); there is nothing to fetch")
        return 0
    try:
        result = fetch(spec, registry.cache_dir(), force=args.force)
    except FetchError as e:
        print(f"rlvr data fetch: {e}", file=sys.stderr)
        return 1
    print(result)
    return 0 if result.ok else 1


def _prepare(args: argparse.Namespace) -> int:
    from rlvr.data.pipeline import load_config, prepare

    config = load_config(args.config, args.overrides)
    report = prepare(config, Path("."))
    if args.json:
        print(json.dumps(report))
        return 0
    for step in report["steps"]:
        print(
            f"{step['name']:14} {step['in']:7d} -> {step['out']:7d}  ({step['removed']} removed, {step['seconds']} s) {step['note']}"
        )
    print(
        f"wrote {report['records']} records to {report['output']}; report: {Path(report['output']).parent / 'report.md'}"
    )
    return 0
