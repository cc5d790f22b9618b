"""Neural ODE on Lorenz-63, end to end: data -> training -> evaluation report.

    python examples/lorenz_node.py [--out runs/lorenz-node] [--data FILE.h5] [--max-epochs E] [--force]

The same as `physdyn example lorenz-node`. It trains on datasets/lorenz.h5 (simulated on the spot where
that file is absent) and reports rollout error and the valid prediction time in Lyapunov times, then
judges the learned model as a dynamical system: its largest Lyapunov exponent (published: 0.9056) and the
statistics of its attractor against the true one's.
The settings (model size, epochs, horizon) are in physdyn/evaluation/_examples.py.
"""

import sys

from physdyn.cli import main

if __name__ == "__main__":
    # the same options, messages and exit status as the command (one argument parser for both)
    sys.exit(main(["example", "lorenz-node", *sys.argv[1:]]))
