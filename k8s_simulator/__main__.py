"""`python -m k8s_simulator`: run the Kubernetes API simulator and write its kubeconfig."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from .images import ImageMap
from .nodes import DEFAULT_NETWORK, Network, load_node_specs
from .simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent


def _listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(
            f"--listen {value!r}: expected HOST:PORT (PORT 0 = any free)"
        )
    if not host.startswith("127."):
        raise argparse.ArgumentTypeError(
            "--listen: the simulator serves on loopback only (127.x.y.z)"
        )
    return host, int(port)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m k8s_simulator",
        description="Kubernetes API SIMULATOR (not a cluster): core/v1 over HTTP, a scheduler,"
        " and a kubelet that runs containers as local processes at pod IPs in 127.77.0.0/16"
        " (--network).",
    )
    parser.add_argument(
        "--listen",
        type=_listen,
        default=("127.0.0.1", 0),
        help="HOST:PORT (default 127.0.0.1:0, a free port)",
    )
    parser.add_argument(
        "--kubeconfig", type=Path, help="write the kubeconfig here (also printed to stdout)"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=ROOT / "data" / "k8s-simulator",
        help="volumes, pod dirs and logs",
    )
    parser.add_argument(
        "--nodes",
        default="3",
        help="node count, or a YAML/JSON file listing {name, capacity, labels, taints}",
    )
    parser.add_argument(
        "--image-env",
        action="append",
        default=[],
        metavar="IMAGE=DIR",
        help="image (glob, tag optional) -> environment whose bin/ leads PATH; repeatable",
    )
    parser.add_argument(
        "--default-env",
        type=lambda value: Path(value) if value else None,
        default=ROOT / ".venv-user",
        help="environment for images no --image-env matches (default .venv-user;"
        ' "" = none, so unmatched images fail to pull)',
    )
    parser.add_argument("--token", help="bearer token clients must send (default: random)")
    parser.add_argument(
        "--history",
        type=int,
        default=1000,
        help="watch history kept, in changes; older resourceVersions get 410 Gone",
    )
    parser.add_argument(
        "--bookmark-interval",
        type=float,
        default=60.0,
        help="seconds between BOOKMARK events on watches that allow them",
    )
    parser.add_argument(
        "--backoff-base",
        type=float,
        default=10.0,
        help="first restart/pull back-off in seconds (kubelet: 10)",
    )
    parser.add_argument(
        "--backoff-max", type=float, default=300.0, help="back-off cap in seconds (kubelet: 300)"
    )
    parser.add_argument(
        "--allow-anonymous",
        action="store_true",
        help="also serve requests without a token (kubectl does not send one over plain HTTP);"
        " a wrong token is still 401",
    )
    parser.add_argument(
        "--network",
        type=int,
        default=DEFAULT_NETWORK.pods,
        metavar="N",
        help="pods get addresses in 127.N.0.0/16, nodes in 127.(N-1).0.0/24 (default 77);"
        " two simulators on one machine need different N",
    )
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


def _build(args: argparse.Namespace, images: ImageMap, nodes: list) -> Simulator:
    return Simulator(
        host=args.listen[0],
        port=args.listen[1],
        state_dir=args.state_dir,
        images=images,
        node_specs=nodes,
        token=args.token,
        history=args.history,
        bookmark_interval=args.bookmark_interval,
        backoff_base=args.backoff_base,
        backoff_max=args.backoff_max,
        allow_anonymous=args.allow_anonymous,
        network=Network(args.network),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    try:
        images = ImageMap.parse(args.image_env, args.default_env)
        nodes = load_node_specs(args.nodes)
    except (ValueError, OSError) as error:
        print(f"k8s_simulator: {error}", file=sys.stderr)
        return 2
    try:
        simulator = _build(args, images, nodes)
    except (ValueError, OSError) as error:  # a damaged snapshot, a port in use
        print(f"k8s_simulator: {error}", file=sys.stderr)
        return 2
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    simulator.start(args.kubeconfig)
    where = f"written to {args.kubeconfig}" if args.kubeconfig else "below"
    print(f"Kubernetes API simulator at {simulator.url} (kubeconfig {where})", flush=True)
    if args.kubeconfig is None:
        import yaml

        print(yaml.safe_dump(simulator.kubeconfig(), sort_keys=False), flush=True)
    done.wait()
    simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
