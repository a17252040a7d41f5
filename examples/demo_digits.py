"""Digits in a Pipeline with GridSearchCV: skbp's BPClassifier next to scikit-learn's MLP.

Runs on data bundled with scikit-learn (no download).  Prints the best
parameters, the held-out accuracy and the wall time of the same grid search
with BPClassifier and with MLPClassifier, after compiling skbp's kernels
(timed separately).  The same demo as ``python -m skbp``; its code is
``skbp/_demo.py``.

    python examples/demo_digits.py
"""

from skbp._demo import main

if __name__ == "__main__":
    main()
