"""`soak demo-model`: write the recommender-like demo SavedModel."""

from __future__ import annotations

import argparse
from pathlib import Path

from soak.core.errors import EXIT_OK


def add_parser(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser(
        "demo-model",
        help="write a recommender-like demo SavedModel",
        description="Write a recommender-like SavedModel base path with numeric versions "
        "(what the default soak run cycles through).",
    )
    demo.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    demo.add_argument(
        "--versions", type=int, default=3, metavar="N", help="versions to write (default: 3)"
    )
    demo.add_argument(
        "--size-mb",
        type=float,
        default=128.0,
        metavar="MB",
        help="size of each version in MiB (default: 128)",
    )
    demo.add_argument(
        "--no-warmup", action="store_true", help="no warmup requests file (default: off)"
    )
    demo.add_argument(
        "--seed", type=int, default=0, metavar="N", help="random seed of the weights (default: 0)"
    )
    demo.set_defaults(func=cmd_demo_model)


def cmd_demo_model(args: argparse.Namespace) -> int:
    from soak.core.extras import require_tensorflow

    require_tensorflow("demo-model")
    from soak.driver.demo_model import write_demo_model

    path = write_demo_model(
        args.out_dir,
        versions=args.versions,
        size_mb=args.size_mb,
        warmup=not args.no_warmup,
        seed=args.seed,
    )
    print(path)
    return EXIT_OK
