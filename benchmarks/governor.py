"""What the thread governor costs a fit that gains from threads: W2 four ways.

Fits W2 of ``workloads.py`` (60,000 x 784 float32, (256, 128), Adam, batch
128, 3 epochs) in turn:

* ``serial``: ``n_jobs=1``;
* ``on``: the default governor, on all cores;
* ``no-snapshot``: the governor without the load monitor's snapshot of the
  runnable tasks (``LoadMonitor._snapshot_ok`` off), so each fit runs its first
  0.1 s serially while the monitor waits for its first window (skbp before the
  eleventh session);
* ``off``: the governor switched off (``skbp._runtime.ADAPTIVE``), every step
  on all cores.

A second's pause before each fit lets the load monitor's last reading go stale,
as between the fits of a benchmark or a user's session.  Prints each setting's
times, the median, and the speed-up over ``serial``; the governor's cost is
``off`` against ``on``.  The four settings alternate fit by fit, so a change of
the shared machine's speed hits them alike, and the ratios between settings are
also given round by round (the median of each round's ratio): on the 2-core
VM two-thread fits move by 40% when the host puts its two vCPUs on one core
(``benchmarks/cores.py``, whose check is printed before and after).

    python benchmarks/governor.py               # 8 rounds
    python benchmarks/governor.py --rounds 4
"""

import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cores  # noqa: E402
import workloads  # noqa: E402

import skbp._runtime as th  # noqa: E402
from skbp import BPClassifier  # noqa: E402

SETTINGS = ("serial", "on", "no-snapshot", "off")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=8, help="fits of each setting (8)")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    w = workloads.scaled("W2", False)
    X, y = workloads.make_data(w, np.float32)[:2]
    print(cores.header())
    print(f"W2 float32: {X.shape[0]:,} x {X.shape[1]}, {w['hidden']}, batch {w['batch']}, "
          f"{w['epochs']} epochs; {os.cpu_count()} cores")  # fmt: skip

    def fit(n_jobs):
        est = BPClassifier(
            hidden_layer_sizes=w["hidden"], batch_size=w["batch"], max_iter=w["epochs"],
            learning_rate_init=w["lr"], tol=0.0, n_iter_no_change=10**6, random_state=0,
            n_jobs=n_jobs,
        )  # fmt: skip
        t0 = time.perf_counter()
        est.fit(X, y)
        return time.perf_counter() - t0

    fit(None), fit(1)  # kernels loaded outside the timings
    times = {s: [] for s in SETTINGS}
    snapshot, adaptive = th.MONITOR._snapshot_ok, th.ADAPTIVE
    try:
        for _ in range(args.rounds):
            for s in SETTINGS:
                th.MONITOR._snapshot_ok = snapshot and s != "no-snapshot"
                th.ADAPTIVE = s != "off"
                time.sleep(1.2)  # the monitor's last reading goes stale (1 s)
                times[s].append(fit(1 if s == "serial" else None))
    finally:
        th.MONITOR._snapshot_ok, th.ADAPTIVE = snapshot, adaptive
    serial = statistics.median(times["serial"])
    print("\n| setting | times s | median s | speed-up over serial |")
    print("|---|---|---:|---:|")
    for s in SETTINGS:
        m = statistics.median(times[s])
        print(f"| {s} | {' '.join(f'{t:.3f}' for t in times[s])} | {m:.3f} | {serial / m:.2f}x |")
    print()

    def paired(a, b):
        return statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))

    print(
        f"round by round (median ratio): serial / on {paired('serial', 'on'):.2f}x, "
        f"serial / off {paired('serial', 'off'):.2f}x, no-snapshot / on "
        f"{paired('no-snapshot', 'on'):.3f}, on / off {paired('on', 'off'):.3f}"
    )
    print(cores.header())


if __name__ == "__main__":
    main()
