"""The benchmark suite's own machinery: diagnostics, data generation, process limits."""

import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

from _harness import run_worker  # noqa: E402
from _sizes import Size, batched_cpc_chol, simulate_arrays  # noqa: E402


def test_gpu_script_reports_a_fit_and_skips_a_late_second_one(tmp_path):
    """benchmarks/gpu.py end to end on the CPU at a tiny size: every step timed, the
    diagnostics of the first fit kept, the second fit skipped past the deadline."""
    import json

    import gpu

    out = tmp_path / "report.json"
    argv = ["--groups", "4", "--rows", "40", "--draws", "40", "--tune", "40", "--no-install"]
    assert gpu.main([*argv, "--deadline-s", "0", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert "error" not in report
    assert set(report["seconds"]) >= {"simulate", "reduce", "build", "first_fit"}
    diag = report["diagnostics"]
    assert diag["fit"] == "first_fit" and diag["entries"] == 4 * (5 + 5 + 25)
    assert 0 < diag["min_ess_bulk"] <= 160 and diag["max_rhat"] > 0.9
    assert "second_fit" not in report["seconds"] and "--deadline-s" in report["second_fit_skipped"]


def test_cpc_cholesky_matches_the_datasets_reference():
    from groupcov.datasets import _cpc_to_chol

    cpc = np.random.default_rng(1).uniform(-0.9, 0.9, (6, 10))
    want = np.stack([_cpc_to_chol(c, 5) for c in cpc])
    np.testing.assert_allclose(batched_cpc_chol(cpc, 5), want, atol=1e-15)


def test_simulated_rows_follow_the_true_parameters():
    truth, idx, x = simulate_arrays(Size("t", 3, 20_000, 3), seed=2)
    assert x.shape == (60_000, 3) and np.bincount(idx).tolist() == [20_000] * 3
    for g in range(3):
        rows = x[idx == g]
        np.testing.assert_allclose(rows.mean(0), truth["mean"][g], atol=0.05)
        np.testing.assert_allclose(np.cov(rows.T), truth["cov"][g], atol=0.06)


def test_worker_limits_are_results(tmp_path):
    slow = [sys.executable, "-c", "import time; time.sleep(30)"]
    r = run_worker(
        slow,
        variant="slow",
        label="slow",
        group="g",
        timeout_s=1.0,
        result_path=tmp_path / "a.json",
        log_dir=tmp_path,
    )
    assert r.status == "timeout" and r.process_wall_s < 10
    big = [
        sys.executable,
        "-c",
        "import time; b = bytearray(400 * 2**20); b[::4096] = b'x' * len(b[::4096]); "
        "time.sleep(30)",
    ]
    r = run_worker(
        big,
        variant="big",
        label="big",
        group="g",
        timeout_s=25.0,
        result_path=tmp_path / "b.json",
        log_dir=tmp_path,
        rss_limit_mb=200,
    )
    assert r.status == "memory" and r.group_rss_peak_mb > 200


def test_import_hooks_wrap_a_module_once_in_nesting_order(tmp_path, monkeypatch):
    from _harness import after_import

    (tmp_path / "bench_hook_target.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []
    after_import(
        ["bench_hook_target"],
        lambda m: seen.append(("a after", m.VALUE)),
        before=lambda n: seen.append(("a before", n)),
    )
    after_import(
        ["bench_hook_target"],
        lambda m: seen.append(("b after", m.VALUE)),
        before=lambda n: seen.append(("b before", n)),
    )
    import bench_hook_target  # noqa: F401

    assert seen == [
        ("a before", "bench_hook_target"),
        ("b before", "bench_hook_target"),
        ("b after", 1),
        ("a after", 1),
    ]
    after_import(["bench_hook_target"], lambda m: seen.append(("late", m.VALUE)))
    assert seen[-1] == ("late", 1)
    sys.modules.pop("bench_hook_target")


def test_import_hooks_survive_an_availability_check(tmp_path, monkeypatch):
    import importlib.util

    from _harness import after_import

    (tmp_path / "bench_hook_probe.py").write_text("VALUE = 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []
    after_import(["bench_hook_probe"], lambda m: seen.append(m.VALUE))
    assert importlib.util.find_spec("bench_hook_probe") is not None
    assert seen == []
    import bench_hook_probe  # noqa: F401

    assert seen == [2]
    sys.modules.pop("bench_hook_probe")


def test_cpu_emitters_table_averages_rounds_per_size_and_generator():
    import cpu_emitters

    def row(label, compile_s, ms, sampler=None):
        out = {"size": "two-group", "label": label, "grad": {"compile_s": compile_s, "ms": ms}}
        if sampler is not None:
            out["sampler"] = {"compile_s": sampler, "sampling_s": 1.0}
        return out

    results = [row("fusion emitters", 1.0, 0.01, 5.0), row("elemental", 0.5, 0.02, 4.0),
               row("fusion emitters", 3.0, 0.03, 6.0), row("elemental", 0.7, 0.02)]
    lines = cpu_emitters._table(results).splitlines()
    assert lines[2] == ("| two-group | fusion emitters | 2.00 (1.00 to 3.00) | 0.020 (0.010 to "
                        "0.030) | 5.50 (5.00 to 6.00) | 1.00 (1.00 to 1.00) |")
    assert lines[3] == ("| two-group | elemental | 0.60 (0.50 to 0.70) | 0.020 (0.020 to 0.020)"
                        " | 4.00 | 1.00 |")
