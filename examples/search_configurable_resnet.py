"""E11's hyper-parameter search: ASHA-style early stopping over learning rate, batch size and optimizer.

The report tuned each of its 8 architectures with ASHA (Li et al. 2020) over: learning rate log-uniform in
[1e-5, 1e-1], batch size in {16, 64, 128, 256}, optimizer in {Adam, SGD, Adagrad}, 25 epochs per
configuration (its Table 4), then trained the best with ``train_configurable_resnet_cifar10.py``.
The winner for combination 6 was SGD, lr 0.01809, batch 128.

This script uses optuna (``pip install optuna``): a ``RandomSampler`` (ASHA samples at random; ``--sampler
tpe`` for optuna's TPE) and a ``SuccessiveHalvingPruner``, optuna's asynchronous successive halving, with
Ray Tune's ASHA defaults: grace period 1 epoch (``min_resource=1``) and reduction factor 4. Each trial
trains ``--epochs-per-trial`` epochs and reports validation top-1 after each; the pruner stops trials that
fall behind at each rung. Not given by the report, chosen here: 10% of the training set as the validation
split the search scores on; SGD with momentum 0.9 (as the final recipe in this repository); crop + flip, no
normalisation; ``--trials`` 20. The trials' results go to OUT/search.json.

    python examples/search_configurable_resnet.py --combination 6 --trials 20
    python examples/search_configurable_resnet.py --fake-data --trials 2 --epochs-per-trial 1
"""
import argparse
import json
import os
import sys

import minidl
from minidl import optim
from minidl.train import Trainer
from minidl.train.experiment import experiment_parser, load_data, positive_int
from train_configurable_resnet_cifar10 import E11_CONFIGS, build_model, crop_and_flip

BATCH_SIZES = (16, 64, 128, 256)
OPTIMIZERS = ("Adam", "SGD", "Adagrad")
LR_RANGE = (1e-5, 1e-1)


def make_optimizer(name, params, lr):
    if name == "SGD":
        return optim.SGD(params, lr=lr, momentum=0.9)
    return getattr(optim, name)(params, lr=lr)


def run_trial(trial, args, optuna):
    """Trains one sampled configuration; reports validation top-1 each epoch so the pruner can stop it."""
    lr = trial.suggest_float("lr", *LR_RANGE, log=True)
    batch_size = trial.suggest_categorical("batch_size", list(BATCH_SIZES))
    optimizer_name = trial.suggest_categorical("optimizer", list(OPTIMIZERS))
    trial_args = argparse.Namespace(**{**vars(args), "batch_size": batch_size})
    minidl.manual_seed(args.seed + trial.number)
    data = load_data(trial_args, "cifar10", train_transform=crop_and_flip(), val_fraction=args.val_fraction)
    model = build_model(args.combination, data.num_classes).to(args.device)
    trainer = Trainer(model, make_optimizer(optimizer_name, model.parameters(), lr), device=args.device,
                      progress=not args.no_progress)
    print(f"trial {trial.number}: {optimizer_name}, lr {lr:.3g}, batch {batch_size}")
    val_top1 = 0.0
    for epoch in range(1, args.epochs_per_trial + 1):
        trainer.fit(data.train, epoch, val_loader=data.val)  # one more epoch
        val_top1 = trainer.history.rows[-1]["val_top1"]
        trial.report(val_top1, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return val_top1


def main():
    parser = experiment_parser(__doc__.splitlines()[0], epochs=25, batch_size=128, lr=0.0, val_fraction=0.1)
    parser.add_argument("--combination", type=int, choices=sorted(E11_CONFIGS), default=6,
                        help="which of the report's 8 architectures to tune")
    parser.add_argument("--trials", type=positive_int, default=20, help="configurations to try")
    parser.add_argument("--epochs-per-trial", type=positive_int, default=None,
                        help="maximum epochs of one configuration (default: --epochs)")
    parser.add_argument("--sampler", choices=["random", "tpe"], default="random", help="optuna sampler")
    args = parser.parse_args()
    args.epochs_per_trial = args.epochs_per_trial or args.epochs
    try:
        import optuna
    except ImportError:
        sys.exit("search_configurable_resnet.py needs optuna for the ASHA search: pip install optuna")
    sampler = (optuna.samplers.RandomSampler(seed=args.seed) if args.sampler == "random"
               else optuna.samplers.TPESampler(seed=args.seed))
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=4)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    study.optimize(lambda trial: run_trial(trial, args, optuna), n_trials=args.trials)
    write_results(study, args)


def write_results(study, args):
    trials = [{"number": t.number, "state": t.state.name, "params": t.params, "val_top1": t.value,
               "epochs": len(t.intermediate_values)} for t in study.trials]
    complete = [t for t in study.trials if t.value is not None]
    best = max(complete, key=lambda t: t.value) if complete else None
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "search.json"), "w") as file:
        json.dump({"combination": args.combination, "trials": trials,
                   "best": None if best is None else {"params": best.params, "val_top1": best.value}}, file,
                  indent=2)
    if best is not None:
        print(f"best: {best.params} with validation top-1 {100 * best.value:.2f}% "
              f"(results in {os.path.join(args.out, 'search.json')})")


if __name__ == "__main__":
    main()
