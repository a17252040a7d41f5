"""The parallel core: same bits for every thread count, thread control, thread safety."""

import itertools
import threading
import time
import warnings
from contextlib import contextmanager

import joblib
import numba
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError
from threadpoolctl import threadpool_info, threadpool_limits

import skbp._matmul as mm
import skbp._predict as _predict
import skbp._runtime as thr
import skbp._steps as steps
import skbp._update as upd
from skbp import BPClassifier, BPRegressor
from skbp._optim import SOLVER_ADAM, SOLVER_SGD, adam_step, sgd_step
from skbp._records import Optimizer, Penalty
from skbp._runtime import (
    ThreadGovernor,
    effective_n_threads,
    max_threads,
    parallel_available,
    thread_context,
)
from skbp._update import finish_blocks, param_blocks, step_blocks, update_blocks


@contextmanager
def _on_threads(n_jobs):
    """Kernels called inside run on exactly ``n_jobs`` threads (no governor)."""
    with thread_context(n_jobs) as gov:
        numba.set_num_threads(gov.n_max)
        yield


@contextmanager
def _no_check():
    """Convergence warnings are beside the point here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


needs_threads = pytest.mark.skipif(
    not parallel_available(), reason="Numba has no thread-safe threading layer here"
)


def _tune(min_work, block_cols=4, max_blocks=5, small=0, tiles=0, wide=2, deep=0, par=1):
    t = np.array([min_work, block_cols, max_blocks, small, tiles, wide, deep, par], dtype=np.int64)
    t.flags.writeable = False
    return t


SPLIT, BLAS, LOOPS = _tune(1), _tune(2**62), _tune(2**62, small=2**62)
SERIAL_SPLIT = _tune(1, par=0)  # split, the blocks one after the other (no parallel region)
TILES = _tune(2**62, tiles=2**62)  # tile rows of two wide vectors (AVX-512's choice)
TILES1 = _tune(2**62, tiles=2**62, wide=1)  # ... of one (AVX2's)


def _operands(mode, M, K, N, dtype, rng):
    X = rng.standard_normal((K, M) if mode == "TN" else (M, K)).astype(dtype)
    Y = rng.standard_normal((N, K) if mode == "NT" else (K, N)).astype(dtype)
    Xm = X.T if mode == "TN" else X
    Ym = Y.T if mode == "NT" else Y
    return X, Y, Xm.astype(np.float64) @ Ym.astype(np.float64)


# ------------------------------------------------------------------- kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["NN", "TN", "NT"])
@pytest.mark.parametrize(
    "tune",
    [SPLIT, SERIAL_SPLIT, BLAS, LOOPS, TILES, TILES1],
    ids=["split", "serial-split", "blas", "loops", "tiles", "tiles1"],
)
@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("shape", [(7, 13, 23), (29, 13, 6)], ids=["wide", "tall"])
def test_matmul_matches_numpy(dtype, mode, tune, accumulate, shape):
    rng = np.random.default_rng(0)
    M, K, N = shape
    X, Y, ref = _operands(mode, M, K, N, dtype, rng)
    C0 = rng.standard_normal((M, N)).astype(dtype)
    C = C0.copy()
    mm.matmul(X, mode == "TN", Y, mode == "NT", C, accumulate, tune)
    expected = ref + C0 if accumulate else ref
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(C, expected, rtol=rtol, atol=rtol * 10)
    assert C.dtype == dtype


# every tile kind (rows in 4, 2, 1; columns in two wide vectors, one wide,
# one narrow, a padded panel) in float32 (8 lanes a narrow vector) and float64
# (4); one deep enough that its padded panel does not fit the stack buffer
# (BLAS then), one whose padded float32 panel fills it exactly; with Y
# transposed (every panel packed), two deep enough for narrower panels only
# and, beyond the tile threshold (on the tiles where tune[6] says so, split
# into blocks), products whose rows fill 12-row tiles
TILE_SHAPES = [(7, 13, 23), (32, 30, 64), (3, 40, 17), (1, 9, 3), (6, 64, 36), (5, 1100, 13),
               (9, 256, 7), (7, 5, 61), (3, 11, 47), (6, 100, 40), (5, 200, 37),
               (128, 300, 96), (50, 64, 200), (203, 129, 75)]  # fmt: skip
DEEP_SPLIT = _tune(1, 8, 7, deep=2**62)  # every product on the tiles, split into blocks


@pytest.mark.parametrize("tune", [TILES, TILES1, DEEP_SPLIT], ids=["wide2", "wide1", "deep"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["NN", "TN", "NT"])
@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("shape", TILE_SHAPES)
def test_register_tiles_match_numpy(tune, dtype, mode, accumulate, shape):
    rng = np.random.default_rng(2)
    M, K, N = shape
    X, Y, ref = _operands(mode, M, K, N, dtype, rng)
    C0 = rng.standard_normal((M, N)).astype(dtype)
    C = C0.copy()
    mm.matmul(X, mode == "TN", Y, mode == "NT", C, accumulate, tune)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(C, ref + C0 if accumulate else ref, rtol=rtol, atol=rtol * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_register_tiles_give_each_element_the_same_bits_wherever_it_falls(dtype):
    """An element is one in-order sum: the same bits in a 4-row tile or alone,
    in a wide or a narrow panel or in the zero-padded last one (the layout
    changes with the shape and the CPU's vectors, so this is what makes
    results depend on the shapes only)."""
    rng = np.random.default_rng(3)
    # float32: 32 + 8 + 5 columns with two wide vectors, 16 + 16 + 8 + 5 with
    # one; rows 12 + 8 + 2 + 1 in the panels of two wide vectors, 8 + 8 + 4 + 2 + 1
    # in those of one, 4 + ... in narrow ones
    M, K, N = 23, 37, 45
    X = rng.standard_normal((M, K)).astype(dtype)
    Y = rng.standard_normal((K, N)).astype(dtype)
    C = np.empty((M, N), dtype)
    C1 = np.empty((M, N), dtype)
    mm._tiled_matmul(X, False, Y, False, C, False, 2)  # the tiles whatever tiles_fit says
    mm._tiled_matmul(X, False, Y, False, C1, False, 1)
    np.testing.assert_array_equal(C1, C)
    # the same with Y transposed (every panel packed first)
    mm._tiled_matmul(X, False, np.ascontiguousarray(Y.T), True, C1, False, 2)
    np.testing.assert_array_equal(C1, C)
    for i in (0, 5, 11, 12, 19, 20, 22):
        for j in (0, 7, 8, 15, 16, 19, 20, 31, 32, 39, 40, 44):
            one = np.empty((1, 1), dtype)
            y = np.ascontiguousarray(Y[:, j : j + 1])
            mm._tiled_matmul(X[i : i + 1], False, y, False, one, False, 2)
            assert one[0, 0] == C[i, j]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["NN", "TN", "NT"])
@pytest.mark.parametrize("shape", [(1, 9, 3), (4, 20, 1), (6, 30, 10), (3, 7, 2)])
def test_register_tiles_of_narrow_products_match_numpy(dtype, mode, shape):
    """Mostly padding: ``matmul`` sends these to BLAS, but the tiles must be right."""
    rng = np.random.default_rng(4)
    M, K, N = shape
    X, Y, ref = _operands(mode, M, K, N, dtype, rng)
    C = np.empty((M, N), dtype)
    mm._tiled_matmul(X, mode == "TN", Y, mode == "NT", C, False, 2)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(C, ref, rtol=rtol, atol=rtol * 10)


@needs_threads
@pytest.mark.parametrize("mode", ["NN", "TN", "NT"])
@pytest.mark.parametrize("M, N", [(64, 150), (150, 64)])
def test_tiles_split_into_blocks_give_the_bits_of_one_call_on_any_threads(mode, M, N):
    """Each element is one in-order sum in any block: a split product on the
    tiles (column or row blocks) has the bits of the unsplit one."""
    rng = np.random.default_rng(6)
    K = 200  # a padded last panel (150 columns) K x 8 floats fits the stack buffer
    X, Y, _ = _operands(mode, M, K, N, np.float32, rng)
    assert mm.tiles_fit(K, N, 4, mode == "NT")
    whole = np.empty((M, N), np.float32)
    mm._tiled_matmul(X, mode == "TN", Y, mode == "NT", whole, False, 2)
    assert mm.n_blocks(M, K, N, DEEP_SPLIT) == 7
    for n in (1, 2, 3):
        C = np.empty((M, N), np.float32)
        with _on_threads(n):
            mm.matmul(X, mode == "TN", Y, mode == "NT", C, False, DEEP_SPLIT)
        np.testing.assert_array_equal(C, whole)
    C = np.empty((M, N), np.float32)
    mm.matmul(X, mode == "TN", Y, mode == "NT", C, False, _tune(1, 8, 7, deep=2**62, par=0))
    np.testing.assert_array_equal(C, whole)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_blocks_on_the_tiles_never_pad_a_panel_the_whole_product_does_not(dtype):
    """152 columns (whole vectors) 600 deep: no zero-padded panel of that depth
    fits the stack buffer, so blocks cut at 152 / 7 would write past it; they
    start on whole vectors instead."""
    rng = np.random.default_rng(7)
    M, K, N = 16, 600, 152
    X, Y, ref = _operands("NN", M, K, N, dtype, rng)
    assert mm.tiles_fit(K, N, X.itemsize, False) and not mm.tiles_fit(K, N - 3, X.itemsize, False)
    whole = np.empty((M, N), dtype)
    mm._tiled_matmul(X, False, Y, False, whole, False, 2)
    C = np.empty((M, N), dtype)
    mm._tile_blocks(X, False, Y, False, C, False, 2, 7, False)
    np.testing.assert_array_equal(C, whole)
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(C, ref, rtol=rtol, atol=rtol * 10)


_READ_OPENBLAS_CORES = mm._openblas_cores.__wrapped__  # not cached


def _blas_answers(monkeypatch, *answers):
    """threadpoolctl answering ``answers`` (``(internal_api, architecture)``), read afresh."""
    import threadpoolctl

    info = [{"internal_api": api, "architecture": arch, "num_threads": 2} for api, arch in answers]
    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: info)
    monkeypatch.setattr(mm, "_openblas_cores", _READ_OPENBLAS_CORES)


def test_large_products_go_to_the_tiles_only_on_avx512_with_avx2_blas(monkeypatch):
    """``tune[6]``, a property of the machine: Numba's AVX-512 code beside an
    OpenBLAS known to run kernels without AVX-512, which the tiles outrun at
    every size up to ``DEEP_TILE_K`` deep."""
    cases = [
        (2, [("openblas", "Haswell")], mm.DEEP_TILE_K),
        (2, [("openblas", "Zen")], mm.DEEP_TILE_K),
        (2, [("openblas", "SkylakeX")], 0),  # AVX-512 kernels of its own
        (2, [("openblas", "Haswell"), ("openblas", "SkylakeX")], 0),
        (2, [("mkl", None)], 0),  # another BLAS: not known to lack AVX-512
        (2, [], 0),  # no answer
        (1, [("openblas", "Haswell")], 0),  # AVX2 code: BLAS's kernels are as wide
    ]
    for wide, answers, deep in cases:
        monkeypatch.setattr(mm, "wide_vectors", lambda w=wide: w)
        _blas_answers(monkeypatch, *answers)
        assert mm.tune_array()[6] == deep, (wide, answers)
    assert mm.DEEP_TILE_K >= 784  # W2's first layer


def test_register_tiles_keep_non_finite_inputs_to_their_own_elements():
    X = np.ones((5, 6))
    X[2, 3] = np.inf
    Y = np.ones((6, 7))  # 7 columns: one 4-lane panel and a padded one
    C = np.empty((5, 7))
    mm.matmul(X, False, Y, False, C, False, TILES)
    expected = np.full((5, 7), 6.0)
    expected[2] = np.inf
    np.testing.assert_array_equal(C, expected)


def test_default_tune_sends_small_products_to_the_tiles():
    tune = mm.tune_array()
    # a batch-32 update of a (64,) network, in float64 (the threshold is in
    # multiply-adds times the item size); W2's first layer is beyond it (on the
    # tiles only where tune[6] says so)
    assert tune[3] < 32 * 30 * 64 and 32 * 30 * 64 * 8 <= tune[4] < 128 * 784 * 256 * 4
    # the zero-padded last panel (K x one vector) must fit the stack buffer
    assert mm.tiles_fit(512, 13, 8, False) and not mm.tiles_fit(513, 13, 8, False)
    assert mm.tiles_fit(256, 13, 4, False) and not mm.tiles_fit(257, 13, 4, False)
    assert mm.tiles_fit(1100, 16, 8, False) and mm.tiles_fit(1100, 16, 4, False)  # no padding
    # with Y transposed every panel is packed: at least a narrow one must fit
    assert mm.tiles_fit(256, 16, 4, True) and not mm.tiles_fit(257, 16, 4, True)
    # ... and waste at most a quarter of its lanes: 10 columns in float32 fill
    # 16 lanes (BLAS), in float64 12
    assert not mm.tiles_fit(64, 10, 4, False) and mm.tiles_fit(64, 10, 8, False)


def test_n_blocks_depends_on_the_shape_only():
    tune = mm.tune_array()
    assert mm.n_blocks(128, 784, 256, tune) > 1  # W2's first layer is split
    assert mm.n_blocks(32, 64, 64, tune) == 1  # W1's layers are not
    assert mm.n_blocks(16, 784, 10, tune) == 1  # too narrow to share
    assert mm.n_blocks(784, 128, 256, tune) > 1 and mm.split_rows(784, 256)  # W2's dW
    assert mm.n_blocks(10**4, 10**3, 10**3, tune) <= 16
    assert mm.n_blocks(128, 784, 256, mm.tune_array(split=False)) == 1


@needs_threads
@pytest.mark.parametrize("mode", ["NN", "TN", "NT"])
@pytest.mark.parametrize("M, N", [(64, 150), (150, 64)])
def test_split_product_is_bit_identical_for_any_thread_count(mode, M, N):
    rng = np.random.default_rng(1)
    X, Y, _ = _operands(mode, M, 300, N, np.float32, rng)
    results = []
    for n in (1, 2, 3):
        C = np.empty((M, N), dtype=np.float32)
        with _on_threads(n):
            mm.matmul(X, mode == "TN", Y, mode == "NT", C, False, _tune(1, 8, 7))
        results.append(C)
    # where no parallel region may run the same blocks run one after the other
    C = np.empty((M, N), dtype=np.float32)
    mm.matmul(X, mode == "TN", Y, mode == "NT", C, False, _tune(1, 8, 7, par=0))
    results.append(C)
    for C in results[1:]:
        np.testing.assert_array_equal(C, results[0])


def _net_vectors(n_params, dtype, rng):
    sizes = np.array([300, 256, 64, 3])
    coef_off = np.array([0, 300 * 256, 300 * 256 + 256 * 64])
    assert n_params >= 300 * 256 + 256 * 64 + 64 * 3
    w = rng.standard_normal(n_params).astype(dtype)
    g = rng.standard_normal(n_params).astype(dtype)
    return sizes, coef_off, w, g


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finish_blocks_matches_the_plain_reference(dtype, monkeypatch):
    rng = np.random.default_rng(2)
    n = 300 * 256 + 256 * 64 + 64 * 3 + 256 + 64 + 3
    sizes, coef_off, w, g = _net_vectors(n, dtype, rng)
    n_coef = int(coef_off[-1] + 64 * 3)
    blocks = param_blocks(sizes, coef_off, n)
    assert blocks[0, 0] == 0 and blocks[-1, 1] == n
    assert np.all(blocks[1:, 0] == blocks[:-1, 1])  # contiguous cover
    # the plain NumPy reference: per-layer norms of the data gradient, then the
    # penalty alpha * (l1_ratio |W| + (1 - l1_ratio) / 2 W^2) on the weights
    wd, gd = w.astype(np.float64), g.astype(np.float64)
    ref_norms = np.array(
        [np.linalg.norm(gd[o : o + sizes[l] * sizes[l + 1]]) / 50.0 for l, o in enumerate(coef_off)]
    )
    a1, a2 = 0.3 * 0.25, 0.3 * 0.75
    ref_g = gd / 50.0
    ref_g[:n_coef] += (a2 * wd[:n_coef] + a1 * np.sign(wd[:n_coef])) / 50.0
    ref_pen = (0.5 * a2 * np.sum(wd[:n_coef] ** 2) + a1 * np.sum(np.abs(wd[:n_coef]))) / 50.0
    got_g, norms = g.copy(), np.zeros(3)
    part = np.empty((blocks.shape[0], 4))
    pen, clip = finish_blocks(blocks, w, got_g, 0.3, 0.25, 50.0, part, norms, 0.0, True)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    # (absolute slack for entries where the penalty cancels the data gradient)
    np.testing.assert_allclose(got_g, ref_g, rtol=rtol, atol=rtol * np.abs(ref_g).max())
    np.testing.assert_allclose(norms, ref_norms, rtol=rtol)
    assert pen == pytest.approx(ref_pen, rel=rtol)
    assert clip == 1.0
    # clipping: the scale brings the finished gradient's norm to max_grad_norm
    _, clip = finish_blocks(blocks, w, g.copy(), 0.3, 0.25, 50.0, part, norms, 0.01, True)
    assert clip == pytest.approx(0.01 / np.linalg.norm(ref_g.astype(np.float64)), rel=rtol)
    # the serial and the parallel sweep give the same bits: chosen by size, or
    # serial where no parallel region may run (par=False)
    a, b, c = g.copy(), g.copy(), g.copy()
    pa, pb, pc = np.empty_like(part), np.empty_like(part), np.empty_like(part)
    na, nb, nc = np.zeros(3), np.zeros(3), np.zeros(3)
    monkeypatch.setattr(upd, "PAR_MIN_PARAMS", 2**62)  # serial
    ra = finish_blocks.py_func(blocks, w, a, 0.1, 0.2, 50.0, pa, na, 0.0, True)
    monkeypatch.setattr(upd, "PAR_MIN_PARAMS", 1)  # parallel
    with _on_threads(2):
        rb = finish_blocks.py_func(blocks, w, b, 0.1, 0.2, 50.0, pb, nb, 0.0, True)
    rc = finish_blocks(blocks, w, c, 0.1, 0.2, 50.0, pc, nc, 0.0, False)  # no parallel region
    assert ra == rb == rc
    for x, y, z in ((a, b, c), (pa, pb, pc), (na, nb, nc)):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, z)


def _opt(solver, m, v, t, weight_decay=0.0, decay_biases=False):
    """The optimizer record of these tests: lr 0.01, momentum 0.9 (Nesterov), Adam's
    defaults, step number ``t``, no weight decay unless asked."""
    return Optimizer(solver, 0.01, 0.9, True, 0.9, 0.999, 1e-8, m, v, np.array([t]),
                     weight_decay, decay_biases, 0, 0.0, 0.0, 1, 0, 1)  # fmt: skip


@pytest.mark.parametrize("solver", [SOLVER_SGD, SOLVER_ADAM])
@pytest.mark.parametrize("n", [1000, 70000])  # serial and parallel sweep
def test_step_blocks_matches_the_optimizer_rules(solver, n):
    rng = np.random.default_rng(3)
    sizes = np.array([10, n // 10])
    coef_off = np.array([0])
    w0 = rng.standard_normal(n)
    g = rng.standard_normal(n)
    m0, v0 = rng.standard_normal(n), rng.random(n)
    blocks = param_blocks(sizes, coef_off, n)
    w, m, v = w0.copy(), m0.copy(), v0.copy()
    step_blocks(blocks, w, g, 0.5, _opt(solver, m, v, 3), 0.01, np.empty((len(blocks), 4)), True)
    wr, mr, vr = w0.copy(), m0.copy(), v0.copy()
    if solver == SOLVER_SGD:
        sgd_step(wr, 0.5 * g, mr, 0.01, 0.9, True, 1.0)
    else:
        adam_step(wr, 0.5 * g, mr, vr, 3, 0.01, 0.9, 0.999, 1e-8, 1.0)
        np.testing.assert_allclose(v, vr, rtol=1e-13)
    np.testing.assert_allclose(w, wr, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(m, mr, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("solver", [SOLVER_SGD, SOLVER_ADAM])
@pytest.mark.parametrize("parallel", [False, True])
def test_one_sweep_update_equals_finish_then_step(dtype, solver, parallel, monkeypatch):
    """update_blocks without clipping (finish and step block by block, one sweep)
    gives the numbers of finish_blocks followed by step_blocks; with clipping it is them."""
    rng = np.random.default_rng(4)
    n = 300 * 256 + 256 * 64 + 64 * 3 + 256 + 64 + 3
    sizes, coef_off, w0, g = _net_vectors(n, dtype, rng)
    m0 = rng.standard_normal(n).astype(dtype)
    v0 = rng.random(n).astype(dtype)
    blocks = param_blocks(sizes, coef_off, n)
    monkeypatch.setattr(upd, "PAR_MIN_PARAMS", 1 if parallel else 2**62)
    for max_norm in (0.0, 0.01):
        w, m, v, gg = w0.copy(), m0.copy(), v0.copy(), g.copy()
        part, norms = np.empty((blocks.shape[0], 4)), np.zeros(3)
        with _on_threads(2):
            pen = update_blocks.py_func(
                blocks,
                w,
                gg,
                50.0,
                part,
                norms,
                Penalty(0.3, 0.25, max_norm),
                _opt(solver, m, v, 3),
                0.01,
                True,
            )
        wr, mr, vr, gr = w0.copy(), m0.copy(), v0.copy(), g.copy()
        pr, nr = np.empty_like(part), np.zeros(3)
        ref_pen, clip = finish_blocks.py_func(
            blocks, wr, gr, 0.3, 0.25, 50.0, pr, nr, max_norm, True
        )
        step_blocks.py_func(blocks, wr, gr, clip, _opt(solver, mr, vr, 3), 0.01, pr, True)
        assert (clip < 1.0) == (max_norm > 0)
        # the same arithmetic; two compiled loops may contract multiply-adds differently
        rtol = 1e-6 if dtype == np.float32 else 1e-12
        assert pen == pytest.approx(ref_pen, rel=1e-12)
        for got, ref in ((w, wr), (m, mr), (v, vr), (gg, gr), (norms, nr)):
            np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * 1e-3)
        assert not np.array_equal(w, w0)


# ----------------------------------------------------------------- estimators
def _classification(n=300, d=40, dtype=np.float64):
    X, y = make_classification(n, d, n_informative=min(10, d), n_redundant=0, n_classes=3,
                               random_state=0)  # fmt: skip
    return X.astype(dtype), y


_CONFIGS = {
    "adam-f32": (BPClassifier, dict(hidden_layer_sizes=(256, 64)), np.float32, False),
    "sgd-f64-reg": (
        BPRegressor,
        dict(hidden_layer_sizes=(32, 32), solver="sgd"),
        np.float64,
        False,
    ),
    "lbfgs": (BPClassifier, dict(hidden_layer_sizes=(24,), solver="lbfgs"), np.float64, False),
    "toolkit": (
        BPClassifier,
        dict(hidden_layer_sizes=(32, 32), batch_norm=True, dropout=0.2, residual=True),
        np.float32,
        False,
    ),
    "sparse": (BPClassifier, dict(hidden_layer_sizes=(32, 16)), np.float64, True),
    "periodic-embedding": (
        BPClassifier,
        dict(
            hidden_layer_sizes=(32,),
            numeric_embedding="periodic",
            n_frequencies=4,
            embedding_dim=4,
            embedding_features=list(range(0, 40, 3)),
        ),
        np.float64,
        False,
    ),  # fmt: skip
    "adamw-f32": (
        BPClassifier,
        dict(
            hidden_layer_sizes=(256, 64),
            weight_decay=0.05,
            decay_biases=True,
            learning_rate="cosine_restarts",
            n_cycles=2,
        ),  # fmt: skip
        np.float32,
        False,
    ),
    "sgd-one-cycle": (
        BPRegressor,
        dict(hidden_layer_sizes=(32, 32), solver="sgd", learning_rate="one_cycle"),
        np.float64,
        False,
    ),
}
#: the configurations whose first layer is wide enough for the parallel update sweep
_WIDE = {"adam-f32", "adamw-f32"}


@needs_threads
@pytest.mark.parametrize("name", sorted(_CONFIGS))
def test_same_weights_for_any_n_jobs(name, monkeypatch):
    monkeypatch.setattr(thr, "ADAPTIVE", False)  # every step on the n_jobs threads
    est_cls, params, dtype, sparse = _CONFIGS[name]
    if name not in _WIDE:  # small networks: split every product that has columns to share
        monkeypatch.setattr(mm, "PAR_MIN_WORK", 1)
        monkeypatch.setattr(mm, "PAR_BLOCK_COLS", 4)
    X, y = _classification(dtype=dtype, d=300 if name in _WIDE else 40)
    if est_cls is BPRegressor:
        y = X[:, :3] @ np.array([1.0, -2.0, 0.5])
    if sparse:
        X[np.abs(X) < 1] = 0
        X = sp.csr_matrix(X)
    tune = mm.tune_array()
    width = params["hidden_layer_sizes"][0]
    assert mm.n_blocks(100, X.shape[1], width, tune) > 1  # the test splits products
    if name in _WIDE:
        assert X.shape[1] * width >= 1 << 16  # ... and runs the parallel update sweep
    fits = []
    for n_jobs in (1, 2, 3, None):
        est = est_cls(max_iter=3, batch_size=100, random_state=0, n_jobs=n_jobs, **params)
        with _no_check():
            est.fit(X, y)
        fits.append(est)
    for est in fits[1:]:
        np.testing.assert_array_equal(est._w, fits[0]._w)
        assert est.loss_curve_ == fits[0].loss_curve_
        np.testing.assert_array_equal(est.predict(X), fits[0].predict(X))


@needs_threads
def test_prediction_is_the_same_for_any_n_jobs_and_any_input_path():
    X, y = _classification(n=1000, d=30)
    clf = BPClassifier((64,), max_iter=5, random_state=0).fit(X, y)
    outs = []
    for n_jobs in (1, 2, 3):  # 1000 rows: four chunks, spread over threads
        outs.append(clf.set_params(n_jobs=n_jobs).predict_proba(X))
    for P in outs[1:]:
        np.testing.assert_array_equal(P, outs[0])
    # the single-row fast path (no validate_data) agrees with the validated path
    for i in range(3):
        fast = clf.predict_proba(X[i : i + 1])
        slow = clf.predict_proba(X[i : i + 1].tolist())
        np.testing.assert_allclose(fast, slow, rtol=1e-12)
        np.testing.assert_allclose(fast, outs[0][i : i + 1], rtol=1e-12)
        assert clf.predict(X[i : i + 1])[0] == clf.predict(X[i : i + 1].tolist())[0]


@needs_threads
def test_prediction_spread_over_threads_gives_the_same_bits(monkeypatch):
    """Governed prediction steps split over Python threads (parts of whole chunks,
    own buffers, the one prediction kernel): every row as in a serial prediction,
    for dense and sparse input, with and without batch norm."""
    X, y = _classification(n=1100, d=30)  # chunks of 256 rows: 4 whole, 1 of 76
    spread = []
    real = _predict._predict_spread

    def spy(data, start, stop, n, *args):
        spread.append((start, stop, n))
        return real(data, start, stop, n, *args)

    def three_chunk_steps(self, gov, quantum):
        self.gov, self.quantum, self.rows = gov, int(quantum), 3 * int(quantum)

    monkeypatch.setattr(_predict, "_predict_spread", spy)
    monkeypatch.setattr(ThreadGovernor, "_choose", lambda self: self.n_max)
    monkeypatch.setattr(steps.GovernedSteps, "__init__", three_chunk_steps)
    for params, Xin in [({}, X), ({"batch_norm": True}, X), ({}, sp.csr_matrix(X))]:
        clf = BPClassifier((16, 8), max_iter=2, random_state=0, n_jobs=1, **params).fit(Xin, y)
        ref = clf.predict_proba(Xin)
        spread.clear()
        np.testing.assert_array_equal(clf.set_params(n_jobs=2).predict_proba(Xin), ref)
        # a step of three chunks on two threads: parts of two chunks and one
        assert (0, 768, 2) in spread, spread


def test_fast_prediction_path_still_rejects_bad_rows():
    X, y = _classification(n=100, d=5)
    clf = BPClassifier((8,), max_iter=5, random_state=0).fit(X, y)
    bad = X[:1].copy()
    bad[0, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(bad)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:1, :4])


# ------------------------------------------------------------- thread control
def _blas_threads():
    return sorted((i["filepath"], i["num_threads"]) for i in threadpool_info())


@pytest.mark.parametrize("n_jobs", [1, 2, -1, None])
def test_thread_settings_are_restored_after_fit_and_predict(n_jobs):
    X, y = _classification(n=200, d=20)
    import scipy.linalg.cython_blas  # noqa: F401  (so that threadpoolctl sees SciPy's BLAS)

    before = (numba.get_num_threads(), _blas_threads())
    clf = BPClassifier((16,), max_iter=3, random_state=0, n_jobs=n_jobs)
    with _no_check():
        clf.fit(X, y)
    clf.predict(X)
    assert numba.get_num_threads() == before[0]  # at once
    # BLAS's thread count comes back BLAS_RESTORE_DELAY after the last call
    deadline = time.monotonic() + 10 * thr.BLAS_RESTORE_DELAY + 5
    while _blas_threads() != before[1] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _blas_threads() == before[1]


def _blas_counts():
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_blas_limit_stays_between_calls_that_follow_each_other(monkeypatch):
    import scipy.linalg.cython_blas  # noqa: F401

    monkeypatch.setattr(thr, "BLAS_RESTORE_DELAY", 3600.0)
    thr.restore_blas_now()
    outside = _blas_threads()
    X, y = _classification(n=100, d=5)
    with _no_check():
        BPClassifier((8,), max_iter=2, random_state=0).fit(X, y)
    assert set(_blas_counts()) == {1}  # not lifted between calls ...
    thr.restore_blas_now()
    assert _blas_threads() == outside  # ... until asked (or the delay has passed)


def test_a_blas_setting_made_by_user_code_is_neither_overwritten_nor_trusted(monkeypatch):
    """A ``threadpool_limits`` context entered after a fit: skbp's calls inside
    it still run BLAS on one thread, and skbp's restore gives back the user's
    count, never its own earlier one (which once left numpy's BLAS on all
    cores inside a user's one-thread context)."""
    import scipy.linalg.cython_blas  # noqa: F401

    monkeypatch.setattr(thr, "BLAS_RESTORE_DELAY", 3600.0)  # the limit stays after the fit
    thr.restore_blas_now()
    X, y = _classification(n=100, d=5)
    with _no_check():
        BPClassifier((8,), max_iter=2, random_state=0).fit(X, y)
    mine = 3
    with threadpool_limits(limits=mine, user_api="blas"):
        assert set(_blas_counts()) == {mine}
        thr.restore_blas_now()  # a delayed restore due now leaves the user's count
        assert set(_blas_counts()) == {mine}
        with thread_context(None):
            assert set(_blas_counts()) == {1}  # limited again, though a limit was held
        thr.restore_blas_now()  # the delayed restore, if any, comes now
        assert set(_blas_counts()) == {mine}
    thr.restore_blas_now()


def test_blas_count_comes_back_after_the_delay(monkeypatch):
    """Restored from skbp's restorer thread: threadpoolctl >= 3.8 ignores a
    thread other than the one controlling OpenBLAS, which once left BLAS on
    one thread for good after the first fit."""
    import scipy.linalg.cython_blas  # noqa: F401

    monkeypatch.setattr(thr, "BLAS_RESTORE_DELAY", 0.05)
    thr.restore_blas_now()
    with threadpool_limits(limits=2, user_api="blas"):  # a known count, not 1
        X, y = _classification(n=100, d=5)
        with _no_check():
            BPClassifier((8,), max_iter=2, random_state=0).fit(X, y)
        deadline = time.monotonic() + 10
        while set(_blas_counts()) != {2} and time.monotonic() < deadline:
            time.sleep(0.02)
        assert set(_blas_counts()) == {2}


def test_blas_is_limited_in_a_call_from_another_python_thread():
    """The main thread controls OpenBLAS (its ``threadpool_limits`` context);
    a fit in a worker thread must still run BLAS on one thread."""
    import scipy.linalg.cython_blas  # noqa: F401

    thr.restore_blas_now()
    seen = []

    def call():
        with thread_context(None):
            seen.append(set(_blas_counts()))

    with threadpool_limits(limits=2, user_api="blas"):
        t = threading.Thread(target=call)
        t.start()
        t.join()
        thr.restore_blas_now()
    assert seen == [{1}]


def test_blas_runs_on_one_thread_inside_a_call():
    import scipy.linalg.cython_blas  # noqa: F401

    with thread_context(None):
        inside = _blas_counts()
    assert inside and set(inside) == {1}


def test_effective_n_threads():
    top = max_threads()
    assert effective_n_threads(None) == top
    assert effective_n_threads(-1) == top
    assert effective_n_threads(1) == 1
    assert effective_n_threads(10**6) == top
    assert effective_n_threads(-(10**6)) == 1
    with joblib.parallel_config(n_jobs=1):  # an outer joblib context limits None
        assert effective_n_threads(None) == 1
        assert effective_n_threads(2) == min(2, top)


@pytest.mark.parametrize("bad, err", [(0, ValueError), ("2", InvalidParameterError)])
def test_bad_n_jobs(bad, err):
    X, y = _classification(n=50, d=4)
    with pytest.raises(err, match="n_jobs"):
        BPClassifier(n_jobs=bad).fit(X, y)


def _threads_in_worker():
    return effective_n_threads(None)


def test_loky_workers_get_their_share_of_the_cores():
    # joblib starts loky workers with NUMBA_NUM_THREADS = cores // n_workers
    got = joblib.Parallel(n_jobs=2, backend="loky")(
        joblib.delayed(_threads_in_worker)() for _ in range(2)
    )
    assert got == [max(1, joblib.cpu_count() // 2)] * 2


# --------------------------------------------------------------- thread safety
@needs_threads
def test_concurrent_fits_in_threads_equal_sequential_fits(monkeypatch):
    monkeypatch.setattr(mm, "PAR_MIN_WORK", 1)  # parallel kernels inside each fit
    monkeypatch.setattr(mm, "PAR_BLOCK_COLS", 4)
    X, y = _classification(n=300, d=30, dtype=np.float32)
    configs = [
        dict(hidden_layer_sizes=(32,), random_state=0),
        dict(hidden_layer_sizes=(24, 16), random_state=1, solver="sgd"),
        dict(hidden_layer_sizes=(16,), random_state=2, solver="lbfgs"),
        dict(hidden_layer_sizes=(32, 32), random_state=3, batch_norm=True),
    ]

    def fit(params):
        with _no_check():
            return BPClassifier(max_iter=5, **params).fit(X, y)

    sequential = [fit(p) for p in configs]
    results = [None] * len(configs)
    barrier = threading.Barrier(len(configs))

    def work(i):
        barrier.wait()
        results[i] = fit(configs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(configs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seq, par in zip(sequential, results, strict=True):
        np.testing.assert_array_equal(par._w, seq._w)
    # concurrent predictions on one shared model
    P = sequential[0].predict_proba(X)
    outs = [None] * 4

    def predict(i):
        outs[i] = sequential[0].predict_proba(X)

    threads = [threading.Thread(target=predict, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for out in outs:
        np.testing.assert_array_equal(out, P)


def test_process_grid_search_after_a_fit_in_the_parent():
    X, y = _classification(n=200, d=10)
    with _no_check():
        BPClassifier((64,), max_iter=5, random_state=0).fit(X, y)  # threads used here
        grid = {"hidden_layer_sizes": [(8,), (16,)], "learning_rate_init": [1e-3, 1e-2]}
        est = BPClassifier(max_iter=20, random_state=0)
        par = GridSearchCV(est, grid, cv=2, n_jobs=2).fit(X, y)
        seq = GridSearchCV(est, grid, cv=2, n_jobs=1).fit(X, y)
    assert par.best_params_ == seq.best_params_
    np.testing.assert_array_equal(
        par.cv_results_["mean_test_score"], seq.cv_results_["mean_test_score"]
    )


# ------------------------------------------------------------ the governor
@needs_threads
@pytest.mark.parametrize(
    "name", ["adam-f32", "sgd-f64-reg", "lbfgs", "toolkit", "sparse", "adamw-f32", "sgd-one-cycle"]
)
def test_steps_on_changing_thread_counts_give_the_same_model(name, monkeypatch):
    """Each governed step (mini-batches, an L-BFGS evaluation, prediction rows) may
    run on another number of threads: the model and its predictions keep their bits."""
    est_cls, params, dtype, sparse = _CONFIGS[name]
    monkeypatch.setattr(mm, "PAR_MIN_WORK", 1)
    monkeypatch.setattr(mm, "PAR_BLOCK_COLS", 4)
    monkeypatch.setattr(upd, "PAR_MIN_PARAMS", 1)
    X, y = _classification(n=600, dtype=dtype, d=40)
    if est_cls is BPRegressor:
        y = X[:, :3] @ np.array([1.0, -2.0, 0.5])
    if sparse:
        X[np.abs(X) < 1] = 0
        X = sp.csr_matrix(X)

    def fit(n_jobs):
        est = est_cls(max_iter=3, batch_size=50, random_state=0, n_jobs=n_jobs, **params)
        with _no_check():
            return est.fit(X, y)

    ref = fit(1)
    P_ref = ref.predict(X)
    monkeypatch.setattr(steps, "STEP_SECONDS", 1e-9)  # one mini-batch / chunk per step
    cycle = itertools.cycle([1, 2, 1, 3, 2])
    used = []

    def choose(self):
        n = min(next(cycle), self.n_max)
        used.append(n)
        return n

    monkeypatch.setattr(ThreadGovernor, "_choose", choose)
    est = fit(None)
    np.testing.assert_array_equal(est._w, ref._w)
    assert est.loss_curve_ == ref.loss_curve_
    np.testing.assert_array_equal(est.predict(X), P_ref)
    assert len(used) > 5 and {1, 2} <= set(used)  # many steps, serial and parallel


def _governor(monkeypatch, free=2.0, n_max=2):
    monkeypatch.setattr(thr, "ADAPTIVE", True)
    monkeypatch.setattr(thr.MONITOR, "free_cores", lambda now=None: free)
    monkeypatch.setattr(thr.MONITOR, "_ok", True)
    return ThreadGovernor(n_max)


def _run(gov, seconds_per_unit, steps):
    """Feed the governor ``steps`` steps whose cost depends on the thread count."""
    chosen = []
    for _ in range(steps):
        n = gov._choose()
        chosen.append(n)
        gov.record(n, seconds_per_unit[n] * 100, 100)
    return chosen


def test_governor_keeps_parallel_steps_that_pay(monkeypatch):
    gov = _governor(monkeypatch)
    chosen = _run(gov, {1: 1.0, 2: 0.55}, 200)
    assert chosen[:2] == [1, 2]  # serial first, then a parallel step to compare
    assert chosen[2:].count(2) > 0.9 * 198
    assert 1 in chosen[10:]  # ... and still probes the serial path now and then


def test_governor_falls_back_to_serial_when_parallel_steps_are_slower(monkeypatch):
    gov = _governor(monkeypatch)
    chosen = _run(gov, {1: 1.0, 2: 8.0}, 300)  # a descheduled worker: 8x slower
    probes = chosen[2:].count(2)
    assert 1 <= probes <= 10  # probes thin out (intervals double up to PROBE_MAX)
    # the cost of the slow probes, against running everything serially
    cost = sum(8.0 if n == 2 else 1.0 for n in chosen) / len(chosen)
    assert cost < 1.3


def test_governor_comes_back_to_parallel_when_the_load_goes(monkeypatch):
    gov = _governor(monkeypatch)
    _run(gov, {1: 1.0, 2: 8.0}, 100)
    chosen = _run(gov, {1: 1.0, 2: 0.55}, 200)
    assert chosen[-50:].count(2) > 40


def test_governor_ignores_one_slow_step_but_not_two(monkeypatch):
    gov = _governor(monkeypatch)
    _run(gov, {1: 1.0, 2: 0.55}, 200)  # parallel pays; probes have thinned out to PROBE_MAX
    assert gov.interval == thr.PROBE_MAX
    gov.wait = 100  # no probe during this test
    # one parallel step 5x slower (the machine hiccuped): the choice stays parallel
    assert gov._choose() == 2
    gov.record(2, 2.75 * 100, 100)
    assert _run(gov, {1: 1.0, 2: 0.55}, 10) == [2] * 10
    # two slow steps in a row: serial from the next step on ...
    for _ in range(2):
        n = gov._choose()
        assert n == 2
        gov.record(n, 2.75 * 100, 100)
    chosen = _run(gov, {1: 1.0, 2: 0.55}, thr.PROBE_MIN + 2)
    assert chosen[0] == 1
    # ... and parallel is looked at again after PROBE_MIN steps, not PROBE_MAX
    assert chosen[thr.PROBE_MIN] == 2


def test_governor_is_serial_while_other_processes_use_the_cores(monkeypatch):
    gov = _governor(monkeypatch, free=1.0)
    assert set(_run(gov, {1: 1.0, 2: 0.5}, 50)) == {1}
    gov = _governor(monkeypatch, free=None)  # no reading yet: serial until there is one
    assert set(_run(gov, {1: 1.0, 2: 0.5}, 20)) == {1}
    gov = _governor(monkeypatch, free=3.9, n_max=8)  # a free core or two: that many
    assert max(_run(gov, {1: 1.0, 2: 0.5, 3: 0.4, 4: 0.3}, 20)) == 4


def test_concurrent_calls_share_the_cores(monkeypatch):
    gov = _governor(monkeypatch, free=16.0, n_max=16)
    monkeypatch.setattr(thr, "_active_calls", 1)
    assert gov.cap() == 16
    monkeypatch.setattr(thr, "_active_calls", 4)
    assert gov.cap() == 4
    monkeypatch.setattr(thr, "_active_calls", 32)
    assert gov.cap() == 1


def test_calls_are_counted_while_they_run():
    assert thr._active_calls == 0
    with thread_context(None):
        with thread_context(None):
            assert thr._active_calls == 2
        assert thr._active_calls == 1
    assert thr._active_calls == 0


def test_governor_respects_the_cap_and_the_switch(monkeypatch):
    gov = _governor(monkeypatch, n_max=1)
    assert set(_run(gov, {1: 1.0}, 10)) == {1}
    monkeypatch.setattr(thr, "ADAPTIVE", False)
    gov = ThreadGovernor(2)
    assert set(_run(gov, {1: 1.0, 2: 9.0}, 10)) == {2}


@pytest.mark.skipif(not thr.MONITOR.available, reason="needs /proc (Linux)")
def test_load_monitor_sees_another_process():
    import subprocess
    import sys

    monitor = thr.LoadMonitor()
    code = "import time\nend = time.monotonic() + 20\nwhile time.monotonic() < end: pass\n"
    busy = subprocess.Popen([sys.executable, "-c", code])
    try:
        seen = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            free = monitor.free_cores()
            if free is not None:
                seen.append(free)
                if free <= monitor.n_cpus - 0.6:
                    break
            time.sleep(0.03)
    finally:
        busy.kill()
        busy.wait()
    assert seen and min(seen) <= monitor.n_cpus - 0.6
    assert all(0.0 <= f <= monitor.n_cpus for f in seen)


@pytest.mark.skipif(not thr.LoadMonitor()._snapshot_ok, reason="needs /proc/loadavg, all CPUs")
def test_load_monitor_sees_a_busy_process_before_its_first_window():
    import subprocess
    import sys

    code = (
        "import sys, time\nend = time.monotonic() + 20\nprint('go', flush=True)\n"
        "while time.monotonic() < end: pass\n"
    )
    busy = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert busy.stdout.readline().strip() == b"go"
        monitor = thr.LoadMonitor()
        free = monitor.free_cores()  # the first call: no window yet, a snapshot
    finally:
        busy.kill()
        busy.wait()
    assert free is not None
    assert 0.0 <= free <= monitor.n_cpus - 1


def test_load_monitor_snapshot_leaves_out_this_processs_own_threads(monkeypatch):
    @numba.njit(nogil=True)
    def spin(n):  # a dependent chain: neither vectorised nor folded away
        x = 1.0
        for _ in range(n):
            x = x * 1.0000001 + 1e-9
        return x

    spin(10)
    started = threading.Event()

    def run():
        started.set()
        spin(300_000_000)  # about 0.5 s

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    started.wait()
    time.sleep(0.05)
    own = max(thr.LoadMonitor._runnable()[1] for _ in range(20))
    worker.join()
    assert own >= 2  # this thread and the spinning one (which holds no GIL)

    monitor = thr.LoadMonitor()
    monkeypatch.setattr(monitor, "n_cpus", 2)
    for (runnable, own), free in {(1, 1): 2, (2, 2): 2, (2, 1): 1, (3, 1): 0, (9, 2): 0,
                                  (1, 0): 2}.items():  # fmt: skip
        monkeypatch.setattr(monitor, "_runnable", lambda r=runnable, o=own: (r, o))
        assert monitor._snapshot() == free


def test_load_monitor_takes_no_snapshot_for_a_process_held_to_some_cpus(monkeypatch):
    monkeypatch.setattr(thr.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setattr(thr.os, "cpu_count", lambda: 4)
    monitor = thr.LoadMonitor()
    assert monitor.n_cpus == 1 and not monitor._snapshot_ok
    if monitor.available:
        assert monitor.free_cores() is None  # no window yet, and no snapshot


def test_wide_tile_rows_follow_the_cpu_features_numba_compiles_for(monkeypatch):
    import numba

    wide = mm.wide_vectors.__wrapped__
    monkeypatch.setattr(numba.config, "CPU_NAME", None)
    monkeypatch.setattr(numba.config, "CPU_FEATURES", "+avx2,+fma,-avx512f")
    assert wide() == 1
    monkeypatch.setattr(numba.config, "CPU_FEATURES", "+avx2,+fma,+avx512f")
    assert wide() == 2
    monkeypatch.setattr(numba.config, "CPU_FEATURES", None)
    monkeypatch.setattr(numba.config, "CPU_NAME", "haswell")  # portable code: no AVX-512
    assert wide() == 1
    assert mm.tune_array()[5] == mm.wide_vectors()


def test_probe_steps_are_short_and_do_not_set_the_step_length(monkeypatch):
    """A probe runs the option not in use (usually the slower one): a fraction of
    a step's rows, and its rate does not resize the steps that follow."""
    gov = _governor(monkeypatch)
    clock = [0.0]
    monkeypatch.setattr(steps.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(steps, "STEP_SECONDS", 2.0**-6)  # powers of two: exact rates
    cost = {1: 2.0**-10, 2: 2.0**-11}  # seconds per row: parallel pays
    sizes = []

    def step(n, start, stop):
        sizes.append((n, stop - start, gov.probing))
        clock[0] += cost[n] * (stop - start)
        return stop

    steps.GovernedSteps(gov, 4).run(40_000, step)
    full = [r for n, r, probe in sizes[3:] if not probe]
    probes = [(n, r) for n, r, probe in sizes if probe]
    assert probes and all(n == 1 for n, _ in probes)  # serial probes of a parallel fit
    step_rows = 32  # STEP_SECONDS / cost[2]
    assert set(full[:-1]) == {step_rows}  # (the last step may be short)
    assert all(r == int(step_rows * steps.PROBE_FRACTION) // 4 * 4 for _, r in probes)


def test_tile_threshold_is_lower_where_openblas_has_small_matrix_kernels(monkeypatch):
    for arch, small in [("Haswell", False), ("Zen", False), ("SkylakeX", True),
                        ("Cooperlake", True)]:  # fmt: skip
        _blas_answers(monkeypatch, ("openblas", arch))
        assert mm.blas_has_small_kernels() == small
        assert mm.tune_array()[4] == (mm.TILE_WORK // 4 if small else mm.TILE_WORK)


@pytest.mark.skipif(not thr.parallel_available(), reason="needs a thread-safe threading layer")
def test_small_networks_skip_the_governor_and_large_products_split(monkeypatch):
    """A digits-sized fit (200 x 64 x 100 products, 7,510 parameters) has no
    parallel region, so it runs an epoch per compiled call like ``n_jobs=1``; W2's
    products (down to 128 x 256 x 128) split into blocks."""
    from skbp._layout import Layout

    digits, w2 = Layout([64, 100, 10]), Layout([784, 256, 128, 10])
    assert not steps.has_parallel_work(digits, 200, False)
    assert steps.has_parallel_work(w2, 128, False)
    t = mm.tune_array()
    assert mm.n_blocks(128, 256, 128, t) >= 2 and mm.n_blocks(200, 64, 100, t) == 1
    X, y = make_classification(600, 64, n_informative=10, n_classes=10, random_state=0)
    seen = []
    monkeypatch.setattr(steps.GovernedSteps, "run", lambda self, *a: seen.append(a))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        BPClassifier(hidden_layer_sizes=(100,), batch_size=200, max_iter=2, n_jobs=2).fit(X, y)
    assert seen == []
