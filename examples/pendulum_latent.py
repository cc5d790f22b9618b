"""Latent ODE on the pendulum observed through θ alone at 30 % of its samples, end to end.

    python examples/pendulum_latent.py [--out runs/pendulum-latent] [--data FILE.h5] [--max-epochs E]

The same as `physdyn example pendulum-latent`. It simulates 128 pendulum trajectories (t in [0, 5], dt 0.1),
keeps θ at 30 % of the samples of each (at random, noise 0.01 of its spread), trains a latent ODE on the
whole masked sequences and evaluates it on the held-out ones: the first half of each is the context, the
report shows the reconstruction inside it, the extrapolation after it and the spread of 32 samples. The
settings are in physdyn/evaluation/_examples.py.
"""

import sys

from physdyn.cli import main

if __name__ == "__main__":
    # the same options, messages and exit status as the command (one argument parser for both)
    sys.exit(main(["example", "pendulum-latent", *sys.argv[1:]]))
