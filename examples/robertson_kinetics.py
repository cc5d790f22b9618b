"""Mass-action kinetics on Robertson's stiff chemistry, end to end: data -> training -> evaluation report.

    python examples/robertson_kinetics.py [--out runs/robertson-kinetics] [--data FILE.h5] [--max-epochs E]
                                          [--force]

The same as `physdyn example robertson-kinetics`. It trains the `kinetics` model with the reactions
A -> B, 2 B -> B + C, B + C -> A + C on datasets/robertson.h5 (simulated on the spot where that file is
absent), learning the three rate constants through the stiff solver, and reports the rollout error over
t in [0, 1e11], the mass error, the count of negative concentrations and the learned rate constants
(true: 0.04, 3e7, 1e4). The settings are in physdyn/evaluation/_examples.py.
"""

import sys

from physdyn.cli import main

if __name__ == "__main__":
    # the same options, messages and exit status as the command (one argument parser for both)
    sys.exit(main(["example", "robertson-kinetics", *sys.argv[1:]]))
