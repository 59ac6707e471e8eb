"""E11's ASHA search on Ray Tune, end to end on fake data: trials run two at a time, report each epoch, ASHA's
rungs decide how long each runs, and the script prints a results table and the command that trains the winner."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytest.importorskip("ray.tune", reason="the search runs on Ray Tune (pip install 'minidl[search]')")


@pytest.mark.slow
def test_asha_search_runs_trials_in_parallel_and_names_the_winner(tmp_path):
    out = tmp_path / "search"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), RAY_DEDUP_LOGS="0",
               RAY_USAGE_STATS_ENABLED="0")
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "search_configurable_resnet.py"), "--fake-data",
         "--fake-size", "64", "--val-fraction", "0.5", "--trials", "4", "--epochs-per-trial", "2", "--reduction-factor", "2",
         "--concurrent", "2", "--combination", "1", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with open(out / "search.json") as file:
        search = json.load(file)
    trials = search["trials"]
    assert len(trials) == 4 and all(t["error"] is None for t in trials), trials
    for trial in trials:
        assert 1e-5 <= trial["lr"] <= 1e-1 and trial["batch_size"] in (16, 64, 128, 256)
        assert trial["optimizer"] in ("Adam", "SGD", "Adagrad")
        assert 1 <= trial["epochs"] <= 2  # ASHA's rung at epoch 1, max_t 2
    # two trials ran at the same time: some pair's [started, finished] intervals overlap
    spans = sorted((t["started"], t["finished"]) for t in trials)
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:])), spans
    best = max(trials, key=lambda t: t["val_top1"])
    assert search["best"]["val_top1"] == best["val_top1"]
    command = (f"python examples/train_configurable_resnet_cifar10.py --combination 1 --optimizer {best['optimizer']} "
               f"--lr {best['lr']:.4g} --batch-size {best['batch_size']}")
    assert search["command"] == command and f"train it: {command}" in result.stdout
    assert "val top-1" in result.stdout and "2 at once" in result.stdout
