"""Parabolic CNN on 2-D FitzHugh-Nagumo reaction-diffusion, end to end: data -> training -> evaluation report.

    python examples/reaction_diffusion_cnn.py [--out runs/reaction-diffusion-cnn] [--data FILE.h5] [--force]

The same as `physdyn example reaction-diffusion-cnn`. It simulates 12 trajectories at 32 x 32 (PDEBench's
setting on a coarser grid), trains a Ruthotto-Haber parabolic CNN on 4-step unrolled losses, forecasts the
test trajectories from their first 10 frames to t = 5 and reports PDEBench's nRMSE, cRMSE, bRMSE and fRMSE
on the forecast frames, the mean-balance residual, and snapshots of truth, prediction and error.
The settings are in physdyn/evaluation/_examples.py.
"""

import sys

from physdyn.cli import main

if __name__ == "__main__":
    sys.exit(main(["example", "reaction-diffusion-cnn", *sys.argv[1:]]))
