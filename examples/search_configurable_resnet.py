"""E11's hyper-parameter search: ASHA on Ray Tune, trials in parallel, over learning rate, batch size and optimizer.

The report tuned each of its 8 architectures with ASHA (Li et al. 2020, "A system for massively parallel
hyper-parameter tuning") over: learning rate log-uniform in [1e-5, 1e-1], batch size in {16, 64, 128, 256},
optimizer in {Adam, SGD, Adagrad}, 25 epochs per configuration (its Table 4), then trained the best with
``train_configurable_resnet_cifar10.py``. The winner for combination 6 was SGD, lr 0.01809, batch 128.

ASHA's point is parallel workers: a trial that reaches a rung (1, 4, 16, ... epochs with the defaults) is
compared with the trials that reached it before, and stops unless it is in their top 1/``--reduction-factor``;
a freed worker starts the next configuration at once, without waiting for the others. This script runs it
on Ray Tune (``pip install "minidl[search]"``): ``tune.Tuner`` with ``ASHAScheduler`` (``time_attr`` = epochs,
``grace_period`` 1, ``reduction_factor`` 4, Ray's defaults, ``max_t`` = ``--epochs-per-trial``), random
sampling as in the paper, ``--concurrent`` trials at once, each with ``--threads-per-trial`` CPU threads
(minidl's and BLAS's threads are set to match, so two trials on two cores do not fight over them). Ray
starts on this machine by default; ``--address HOST:PORT`` (or ``auto``) joins a running Ray cluster
(``ray start --head`` on one machine, ``ray start --address HEAD:6379`` on the others), which is how a search
outgrows one machine. Each trial reports validation top-1 after every epoch.

Not given by the report, chosen here: 10% of the training set as the validation split the search scores on;
SGD with momentum 0.9 (as the final recipe in this repository); crop + flip, no normalisation; ``--trials``
20. At the end: a table of every trial (its configuration, the epochs it ran before ASHA stopped it, its
best validation top-1), OUT/search.json and OUT/search.csv, and the command that trains the winner.

Optuna, which an earlier version used, is not needed any more: its pruner ran trials one after another, so
successive halving saved no time in the runs tried, and Ray Tune gives the parallel ASHA the report used.

    python examples/search_configurable_resnet.py --combination 6 --trials 20
    python examples/search_configurable_resnet.py --address auto --concurrent 16      # on a Ray cluster
    python examples/search_configurable_resnet.py --fake-data --trials 4 --epochs-per-trial 2
"""
import argparse
import csv
import json
import os
import sys
import time

from minidl.experiments import E11_CONFIGS
from minidl.train.experiment import experiment_parser, positive_int

BATCH_SIZES = (16, 64, 128, 256)
OPTIMIZERS = ("Adam", "SGD", "Adagrad")
LR_RANGE = (1e-5, 1e-1)
THREAD_VARIABLES = ("MINIDL_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


def parse_args():
    parser = experiment_parser(__doc__.splitlines()[0], epochs=25, batch_size=128, lr=0.0,
                               val_fraction=(0.1, "share of the training images the search scores on"))
    parser.add_argument("--combination", type=int, choices=sorted(E11_CONFIGS), default=6,
                        help="which of the report's 8 architectures to tune")
    parser.add_argument("--trials", type=positive_int, default=20, help="configurations to sample")
    parser.add_argument("--epochs-per-trial", type=positive_int, default=None,
                        help="most epochs one configuration may train (ASHA's max_t; default: --epochs)")
    parser.add_argument("--grace-period", type=positive_int, default=1, help="ASHA: epochs before the first rung")
    parser.add_argument("--reduction-factor", type=float, default=4,
                        help="ASHA: 1/this of the trials at a rung go on to the next")
    parser.add_argument("--concurrent", type=positive_int, default=None,
                        help="trials at once (default: the CPUs Ray has / --threads-per-trial)")
    parser.add_argument("--threads-per-trial", type=positive_int, default=1,
                        help="CPU threads (and Ray CPUs) each trial uses")
    parser.add_argument("--address", default=None,
                        help="join the Ray cluster at this address ('auto': the one this machine belongs to); "
                             "default: start Ray on this machine")
    args = parser.parse_args()
    args.epochs_per_trial = args.epochs_per_trial or args.epochs
    return args


def make_optimizer(name, params, lr):
    from minidl import optim
    if name == "SGD":
        return optim.SGD(params, lr=lr, momentum=0.9)
    return getattr(optim, name)(params, lr=lr)


def train_trial(config, args):
    """One configuration: trains up to ``args.epochs_per_trial`` epochs, reporting validation top-1 after each
    (ASHA stops the trial between two reports when it falls behind at a rung)."""
    from ray import tune

    import minidl
    from minidl.experiments import e11_resnet
    from minidl.experiments.recipes import crop_and_flip
    from minidl.train import Trainer, TrainingDiverged
    from minidl.train.experiment import load_data

    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(args.threads_per_trial)
    trial_args = argparse.Namespace(**{**vars(args), "batch_size": config["batch_size"]})
    minidl.manual_seed(args.seed)
    data = load_data(trial_args, "cifar10", train_transform=crop_and_flip(), val_fraction=args.val_fraction)
    model = e11_resnet(combination=args.combination, num_classes=data.num_classes).to(args.device)
    trainer = Trainer(model, make_optimizer(config["optimizer"], model.parameters(), config["lr"]),
                      device=args.device, progress=False)
    started = time.time()
    for epoch in range(1, args.epochs_per_trial + 1):
        try:
            trainer.fit(data.train, epoch, val_loader=data.val)  # one more epoch
        except TrainingDiverged:
            tune.report({"epoch": epoch, "val_top1": 0.0, "val_loss": float("inf"), "diverged": True,
                         "started": started, "finished": time.time()})
            return
        row = trainer.history.rows[-1]
        tune.report({"epoch": epoch, "val_top1": row["val_top1"], "val_loss": row["val_loss"], "diverged": False,
                     "started": started, "finished": time.time()})


def search(args):
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    threads = {variable: str(args.threads_per_trial) for variable in THREAD_VARIABLES}
    runtime_env = {"env_vars": {**threads, "PYTHONPATH": os.pathsep.join(filter(None, [
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.environ.get("PYTHONPATH")]))}}
    if args.address:
        ray.init(address=args.address, runtime_env=runtime_env, log_to_driver=False)
    else:
        ray.init(runtime_env=runtime_env, include_dashboard=False, log_to_driver=False,
                 num_cpus=os.cpu_count())
    cpus = int(ray.cluster_resources().get("CPU", 1))
    concurrent = args.concurrent or max(1, cpus // args.threads_per_trial)
    print(f"Ray: {cpus} CPUs{' at ' + args.address if args.address else ' on this machine'}; "
          f"{args.trials} trials, {concurrent} at once, {args.threads_per_trial} thread(s) each; ASHA over "
          f"{args.epochs_per_trial} epochs (grace {args.grace_period}, reduction factor {args.reduction_factor})")
    scheduler = ASHAScheduler(time_attr="epoch", max_t=args.epochs_per_trial, grace_period=args.grace_period,
                              reduction_factor=args.reduction_factor)
    space = {"lr": tune.loguniform(*LR_RANGE), "batch_size": tune.choice(list(BATCH_SIZES)),
             "optimizer": tune.choice(list(OPTIMIZERS))}
    trainable = tune.with_resources(tune.with_parameters(train_trial, args=args), {"cpu": args.threads_per_trial})
    tuner = tune.Tuner(
        trainable, param_space=space,
        tune_config=tune.TuneConfig(metric="val_top1", mode="max", scheduler=scheduler, num_samples=args.trials,
                                    max_concurrent_trials=concurrent, reuse_actors=True,
                                    search_alg=tune.search.BasicVariantGenerator(random_state=args.seed)),
        run_config=tune.RunConfig(name="search", storage_path=os.path.abspath(os.path.join(args.out, "ray")),
                                  verbose=0))
    try:
        results = tuner.fit()
    finally:
        ray.shutdown()
    return [trial_summary(result) for result in results]


def trial_summary(result):
    """One row of the results table from a Ray ``Result``."""
    history = result.metrics_dataframe
    reports = [] if history is None else history.to_dict("records")
    best = max((r["val_top1"] for r in reports), default=None)
    return {"trial": (result.metrics or {}).get("trial_id", os.path.basename(result.path.rstrip("/"))[:16]),
            **{key: result.config[key] for key in ("optimizer", "lr", "batch_size")},
            "epochs": len(reports), "val_top1": best, "diverged": any(r.get("diverged") for r in reports),
            "started": min((r["started"] for r in reports), default=None),
            "finished": max((r["finished"] for r in reports), default=None),
            "error": None if result.error is None else str(result.error).splitlines()[0]}


def winner_command(best, args):
    """The command that trains the best configuration for the report's 200 epochs."""
    return (f"python examples/train_configurable_resnet_cifar10.py --combination {args.combination} "
            f"--optimizer {best['optimizer']} --lr {best['lr']:.4g} --batch-size {best['batch_size']}")


def report(rows, args):
    """Prints the results table (best first) and the winner's command; writes OUT/search.json and .csv."""
    rows = sorted(rows, key=lambda r: -1 if r["val_top1"] is None else r["val_top1"], reverse=True)
    print(f"\n{'trial':<12} {'optimizer':<9} {'lr':>10} {'batch':>6} {'epochs':>7} {'val top-1':>10}")
    for row in rows:
        top1 = "failed" if row["val_top1"] is None else f"{100 * row['val_top1']:.2f}%"
        stopped = "" if row["epochs"] >= args.epochs_per_trial or row["val_top1"] is None else "  (stopped by ASHA)"
        print(f"{row['trial']:<12} {row['optimizer']:<9} {row['lr']:>10.3g} {row['batch_size']:>6} "
              f"{row['epochs']:>7} {top1:>10}{' diverged' if row['diverged'] else stopped}")
    finished = [row for row in rows if row["val_top1"] is not None]
    best = finished[0] if finished else None
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "search.json"), "w") as file:
        json.dump({"combination": args.combination, "epochs_per_trial": args.epochs_per_trial, "trials": rows,
                   "best": best, "command": winner_command(best, args) if best else None}, file, indent=1)
    with open(os.path.join(args.out, "search.csv"), "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else ["trial"])
        writer.writeheader()
        writer.writerows(rows)
    if best is None:
        sys.exit("no trial finished an epoch; see the trials' errors in " + os.path.join(args.out, "search.json"))
    print(f"\nbest: {best['optimizer']}, lr {best['lr']:.4g}, batch {best['batch_size']}: validation top-1 "
          f"{100 * best['val_top1']:.2f}% after {best['epochs']} epochs (all trials in "
          f"{os.path.join(args.out, 'search.json')})\ntrain it: {winner_command(best, args)}")


def main():
    args = parse_args()
    try:
        import ray  # noqa: F401
        from ray import tune  # noqa: F401
    except ImportError:
        sys.exit('search_configurable_resnet.py runs its search on Ray Tune: pip install "minidl[search]" '
                 '(or pip install "ray[tune]")')
    report(search(args), args)


if __name__ == "__main__":
    main()
