#!/bin/bash
# Issue 8's many-core measurements as one prepared run for a lent device machine
# (16 cores; a session gets 15 minutes of device time, the machine's start included).
# From a session that has one, in the repository root:
#
#     run(command="bash benchmarks/device_16core.sh", timeout_s=590)
#
# Each step has its own time limit, so a slow one cannot take the rest with it;
# the outputs land in $OUT (the device tool brings them back) or ./device_out.
# Record them in benchmarks/RESULTS.md as *_16core_device.txt.
#
#   cores.txt        two threads against one, and data crossing between cores
#   compile.txt      skbp's kernels compiled once, on every core, before any timing
#   scaling.txt      W2 on 1, 2, 4, 8 and 16 threads: fit, products, rest (target 6x at 16)
#   split.txt        where splitting a product over 16 threads pays (the 2^22 threshold
#                    was chosen on the 2-core machine: does it give up gains here?)
#   governor.txt     what the thread governor costs W2 here
#   determinism.txt  the same weights for n_jobs = 1, 2, 3, 4, 8, 16
set -u
OUT=${OUT:-device_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
step() {  # step SECONDS NAME COMMAND...
    local limit=$1 name=$2
    shift 2
    echo "\$ $*    # $(date -u +%F), $(nproc) cores" > "$OUT/$name.txt"
    timeout "$limit" "$@" >> "$OUT/$name.txt" 2>&1
    echo "[$name: exit $? after ${SECONDS}s in all]" | tee -a "$OUT/$name.txt"
}
python3 -c "import sys, numpy, scipy, sklearn, numba, skbp; print(sys.version.split()[0], \
numpy.__version__, scipy.__version__, sklearn.__version__, numba.__version__, skbp.__file__)" \
    > "$OUT/versions.txt" 2>&1
cat "$OUT/versions.txt"
step 20 cores python3 benchmarks/cores.py
step 150 compile python3 -m skbp compile
step 150 scaling python3 benchmarks/scaling.py --threads 1,2,4,8,16 --widths 32
step 120 split python3 benchmarks/split.py --threads 16 --dtypes float32 --repeats 2
step 90 governor python3 benchmarks/governor.py --rounds 4
step 60 determinism python3 benchmarks/determinism.py
