"""`soak image`: build (or reuse) soak's Docker images."""

from __future__ import annotations

import argparse
import sys

from soak.core.errors import EXIT_OK


def add_parser(sub: argparse._SubParsersAction) -> None:
    image = sub.add_parser("image", help="build (or reuse) soak's Docker images")
    image_sub = image.add_subparsers(dest="image_command", required=True, parser_class=type(image))
    standin = image_sub.add_parser("standin", help="the stand-in TF Serving image")
    standin.set_defaults(func=cmd_image_standin)
    alloc = image_sub.add_parser("allocators", help="add allocators to a TF Serving image")
    alloc.add_argument("--base", required=True, metavar="IMAGE", help="a local TF Serving image")
    alloc.set_defaults(func=cmd_image_allocators)
    job = image_sub.add_parser(
        "job",
        help="the Job image: soak beside a TF Serving image's server (soak k8s runs it)",
        description="Add soak, the allocators and the probe to a TF Serving image, so that "
        "soak runs beside its server in one container (process backend, the image's "
        "tensorflow_model_server): a Kubernetes Job's image (soak k8s). Its entrypoint is "
        "the nightly sequence, scripts/soak-nightly CONFIG N: soak run --quiet --config "
        "CONFIG, soak check, soak check --against-history N; the container exits with its "
        "code. Tagged soak-job:HASH (printed) and soak-job:latest.",
    )
    job.add_argument(
        "--base",
        required=True,
        metavar="IMAGE",
        help="a local TF Serving image (Debian or Ubuntu based, with Python 3.11 or its "
        "package), or 'standin'",
    )
    job.set_defaults(func=cmd_image_job)


def cmd_image_standin(args: argparse.Namespace) -> int:
    from soak.targets.docker_engine import connect
    from soak.targets.images import ensure_standin_image

    print(ensure_standin_image(connect(), progress=lambda m: print(m, file=sys.stderr)))
    return EXIT_OK


def cmd_image_allocators(args: argparse.Namespace) -> int:
    from soak.targets.docker_engine import connect
    from soak.targets.images import ensure_allocator_image

    print(ensure_allocator_image(connect(), args.base))
    return EXIT_OK


def cmd_image_job(args: argparse.Namespace) -> int:
    from soak.targets.docker_engine import connect
    from soak.targets.images import ensure_job_image

    print(ensure_job_image(connect(), args.base, progress=lambda m: print(m, file=sys.stderr)))
    return EXIT_OK
