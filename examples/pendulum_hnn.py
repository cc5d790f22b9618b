"""Hamiltonian neural network on the ideal pendulum, end to end: data -> training -> evaluation report.

    python examples/pendulum_hnn.py [--out runs/pendulum-hnn] [--data FILE.h5] [--max-epochs E] [--force]

The same as `physdyn example pendulum-hnn`. It trains on datasets/pendulum.h5 (simulated on the spot where
that file is absent) and reports rollout error, valid prediction time and the drift of the TRUE energy
along the learned rollouts: an HNN conserves its learned energy exactly, so the true one should stay close.
The settings (model size, epochs, horizon) are in physdyn/evaluation/_examples.py.
"""

from __future__ import annotations

import argparse

from physdyn.data import DataFormatError
from physdyn.evaluation import run_example, summary

NAME = "pendulum-hnn"


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
