"""Neural ODE on Lorenz-63, end to end: data -> training -> evaluation report.

    python examples/lorenz_node.py [--out runs/lorenz-node] [--data FILE.h5] [--max-epochs E] [--force]

The same as `physdyn example lorenz-node`. It trains on datasets/lorenz.h5 (simulated on the spot where
that file is absent) and reports rollout error and the valid prediction time in Lyapunov times, then
judges the learned model as a dynamical system: its largest Lyapunov exponent (published: 0.9056) and the
statistics of its attractor against the true one's.
The settings (model size, epochs, horizon) are in physdyn/evaluation/_examples.py.
"""

from __future__ import annotations

import argparse

from physdyn.data import DataFormatError
from physdyn.evaluation import run_example, summary

NAME = "lorenz-node"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=f"runs/{NAME}", help="output folder (default %(default)s)")
    parser.add_argument("--data", help="trajectory file to train and test on (default: the bundled one)")
    parser.add_argument("--max-epochs", type=int, help="training epochs (default: the example's)")
    parser.add_argument("--force", action="store_true", help="replace the outputs of an earlier run")
    args = parser.parse_args()
    try:
        report = run_example(NAME, args.out, data=args.data, force=args.force, max_epochs=args.max_epochs)
    except (FileExistsError, DataFormatError) as err:
        parser.error(str(err))
    print(summary(report.metrics))
    print(f"report: {report.path}")


if __name__ == "__main__":
    main()
