"""Comparison semantics (Polygraphy's atol/rtol), metrics, and output pairing. Pure numpy."""

import numpy as np

from convlint.analyzers.differential.compare import Tolerance, align_outputs, compare_runs


def runs(*arrays):
    return [[np.asarray(a, dtype=np.float32)] for a in arrays]


def test_identical_outputs_pass_with_perfect_metrics():
    a = runs([[0.1, 0.9, 0.0]], [[2.0, -1.0, 0.5]])
    c = compare_runs(a, a, Tolerance())
    assert c.passed and c.max_abs == 0 and c.cosine_min == 1.0 and c.top1_agreement == 1.0


def test_element_fails_only_beyond_both_atol_and_rtol():
    ref = runs([[1000.0, 1.0]])
    # 0.01 off on 1000 is 1e-5 relative: within rtol 1e-4 although beyond atol
    assert compare_runs(ref, runs([[1000.01, 1.0]]), Tolerance(1e-4, 1e-4)).passed
    # 0.01 off on 1.0 is beyond both
    c = compare_runs(ref, runs([[1000.0, 1.01]]), Tolerance(1e-4, 1e-4))
    assert not c.passed and c.mismatched == 1 and c.total == 2


def test_nan_is_a_mismatch():
    c = compare_runs(runs([[1.0, 2.0]]), runs([[1.0, np.nan]]), Tolerance())
    assert not c.passed and c.max_abs == float("inf")


def test_top1_agreement_counts_label_changes():
    ref = runs([[0.0, 1.0]], [[1.0, 0.0]], [[0.2, 0.8]], [[0.9, 0.1]])
    oth = runs([[0.0, 1.0]], [[0.0, 1.0]], [[0.2, 0.8]], [[0.9, 0.1]])
    assert compare_runs(ref, oth, Tolerance()).top1_agreement == 0.75


def test_top1_is_null_for_feature_maps():
    a = [[np.ones((1, 4, 4, 3), np.float32)]]
    assert compare_runs(a, a, Tolerance()).top1_agreement is None


def test_outputs_in_other_layout_are_transposed_back():
    a = np.random.default_rng(0).normal(size=(1, 5, 6, 3)).astype(np.float32)
    pairs = align_outputs([a], [np.transpose(a, (0, 3, 1, 2))])
    assert np.array_equal(pairs[0][0], pairs[0][1])


def test_different_output_counts_cannot_be_compared():
    c = compare_runs([[np.ones(2), np.ones(2)]], [[np.ones(2)]], Tolerance())
    assert "2 outputs" in c.incomparable and not c.passed
