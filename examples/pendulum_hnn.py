"""Hamiltonian neural network on the ideal pendulum, end to end: data -> training -> evaluation report.

    python examples/pendulum_hnn.py [--out runs/pendulum-hnn] [--data FILE.h5] [--max-epochs E] [--force]

The same as `physdyn example pendulum-hnn`. It trains on datasets/pendulum.h5 (simulated on the spot where
that file is absent) and reports rollout error, valid prediction time and the drift of the TRUE energy
along the learned rollouts: an HNN conserves its learned energy exactly, so the true one should stay close.
The settings (model size, epochs, horizon) are in physdyn/evaluation/_examples.py.
"""

import sys

from physdyn.cli import main

if __name__ == "__main__":
    # the same options, messages and exit status as the command (one argument parser for both)
    sys.exit(main(["example", "pendulum-hnn", *sys.argv[1:]]))
