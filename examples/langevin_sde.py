"""Neural SDE on the Langevin pendulum, end to end: data -> training -> evaluation report with samples.

    python examples/langevin_sde.py [--out runs/langevin-sde] [--data FILE.h5] [--max-epochs E] [--force]

The same as `physdyn example langevin-sde`. It simulates the pendulum in a heat bath (friction 0.5, kT 1,
noise on the momentum only), fits drift and diffusion networks by the Euler–Maruyama transition likelihood,
and reports 100 sample paths per test trajectory: CRPS, energy score, coverage of the central 50 % and 90 %
intervals against the horizon, and the rank histogram. The settings are in physdyn/evaluation/_examples.py.
"""

import sys

from physdyn.cli import main

if __name__ == "__main__":
    # the same options, messages and exit status as the command (one argument parser for both)
    sys.exit(main(["example", "langevin-sde", *sys.argv[1:]]))
