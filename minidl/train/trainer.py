"""The training loop: epochs of forward, loss, backward, optimizer step, with the
bookkeeping a real run needs.

``Trainer.fit`` runs epochs with ``tqdm`` progress bars (loss, accuracy, learning
rate, images/s), evaluates on validation data after each epoch, steps the learning
rate scheduler (per batch for OneCycleLR/CyclicLR, per epoch for the rest,
``ReduceLROnPlateau`` on the validation loss), keeps a ``History`` (JSON, CSV and a
PNG of the curves), and writes checkpoints atomically (``last.npz`` every epoch,
``best.npz`` when validation top-1 improves).

What makes a run trustworthy:

- **Divergence.** Every step checks that the loss and the gradients' global norm are
  finite; every epoch, before anything is written, that every parameter, buffer and
  optimizer state is. Otherwise training stops with ``TrainingDiverged`` and the files
  on disk are those of the last epoch that passed, so a checkpoint is always finite.
- **Resume** (``fit(..., resume=True)``) checks the whole checkpoint against this
  trainer first (``resume.py``), then loads all of it or nothing. An extended run
  (more epochs than the checkpoint's run planned) continues on the new schedule.
- **Ctrl-C** lets the files being written finish, then raises ``TrainingInterrupted``,
  whose message names the last checkpoint and how to resume.
- A fresh run refuses to overwrite an earlier run's ``last.npz`` unless told to.

Reproducibility: with the same seeds, code and machine, two runs on the CPU give the
same numbers bit for bit (docs/training.md says what that rests on), and a run resumed
from a checkpoint gives the weights the uninterrupted run gives.
"""
import json
import math
import os
import signal
import threading
import time
from contextlib import contextmanager

from tqdm.auto import tqdm

from .. import random as minidl_random
from ..autograd import no_grad
from ..backend import device as Device, get_array_module
from ..nn import functional as F
from ..nn.utils import clip_grad_norm_
from . import resume as resume_checks
from .checkpoint import load_checkpoint, remove_stale_temporaries, save_checkpoint
from .processes import is_main_process, sum_over_processes, unwrap, wrap_for_processes
from .history import History
from .metrics import EpochTotals

PER_BATCH_SCHEDULERS = ("OneCycleLR", "CyclicLR")
DEFAULT_TOPK = (1, 5)


class TrainingDiverged(RuntimeError):
    """The loss, the gradients or the weights became NaN or Inf; the last finite checkpoint was kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training after the files being written were complete; the message says how to resume."""


class Trainer:
    """Trains a classifier; see the module docstring for what it does each epoch.

    Arguments:
        model, optimizer: a ``minidl.nn.Module`` and a ``minidl.optim`` optimizer.
        loss_fn: ``loss_fn(logits, targets) -> scalar Tensor`` (cross-entropy by default).
        scheduler: any ``minidl.optim.lr_scheduler`` scheduler, or None.
        scheduler_interval: "step" or "epoch"; by default "step" for OneCycleLR and
            CyclicLR, "epoch" for the others.
        device: where the model and batches live ("cpu" or "cuda").
        out_dir: folder for checkpoints, history and plots (None: keep nothing on disk).
        topk: which top-k accuracies to report. Default: top-1 and top-5, or only the
            ks a problem with fewer classes has; an explicit k above the number of
            classes is an error.
        grad_clip_norm: clip the gradients' global norm to this value each step.
        early_stopping_patience: stop after this many epochs without a better
            validation loss (None: never).
        progress: show tqdm progress bars.
        check_every: read the divergence checks and the progress bar's loss and accuracy every
            this many steps (1 on the CPU, where reading is free; 20 on a GPU, where each read
            waits for the device).

    Several processes (``minidl.distributed``, docs/distributed.md): the model is trained inside
    DistributedDataParallel (given so, or wrapped here), each process on its loader's share; the
    epoch's metrics are sums over all processes; only rank 0 writes files, prints and shows bars;
    checkpoints hold the bare model, so a run resumes with any number of processes.
    """

    def __init__(self, model, optimizer, loss_fn=None, scheduler=None, scheduler_interval=None, device="cpu",
                 out_dir=None, topk=None, grad_clip_norm=None, early_stopping_patience=None, progress=True,
                 check_every=None):
        self.network = wrap_for_processes(model)  # what trains: the model, or DDP around it
        self.model, self.optimizer, self.scheduler = unwrap(model), optimizer, scheduler
        self.loss_fn = loss_fn or F.cross_entropy
        self.scheduler_interval = scheduler_interval or self._default_interval(scheduler)
        if self.scheduler_interval not in ("step", "epoch"):
            raise ValueError(f"unknown scheduler_interval {scheduler_interval!r}; valid values are 'step' and 'epoch'")
        self.device = Device(device)
        self.out_dir = None if out_dir is None else os.fspath(out_dir)
        self.explicit_topk = topk is not None
        self.topk = tuple(topk) if topk is not None else DEFAULT_TOPK
        self.grad_clip_norm = grad_clip_norm
        self.early_stopping_patience = early_stopping_patience
        self.progress = progress and is_main_process()
        self.check_every = check_every or (1 if self.device.type == "cpu" else 20)
        self.history = History()
        self.epoch = 0  # epochs completed
        self.best_val_top1 = None
        self.best_val_loss = None
        self.epochs_without_improvement = 0

    @staticmethod
    def _default_interval(scheduler):
        return "step" if type(scheduler).__name__ in PER_BATCH_SCHEDULERS else "epoch"

    # ------------------------------------------------------------------ paths and state
    def path(self, name):
        return None if self.out_dir is None else os.path.join(self.out_dir, name)

    def state_dict(self, train_loader=None):
        """Everything a resumed run needs to continue bit for bit (and what built the model)."""
        from ..models.registry import architecture_of
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "optimizer_class": type(self.optimizer).__name__,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scheduler_class": type(self.scheduler).__name__ if self.scheduler is not None else None,
            "architecture": architecture_of(self.model),
            "epoch": self.epoch,
            "rng": minidl_random.get_rng_state(),
            "history": self.history.rows,
            "best_val_top1": self.best_val_top1,
            "best_val_loss": self.best_val_loss,
            "epochs_without_improvement": self.epochs_without_improvement,
        }
        if train_loader is not None and hasattr(train_loader, "state_dict"):
            state["train_loader"] = train_loader.state_dict()
        return state

    def load_state_dict(self, state, train_loader=None, schedule_changes=()):
        """Loads a checkpoint's state; call ``resume`` for the checked, all-or-nothing version."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            if schedule_changes:
                resume_checks.load_extended_schedule(self.scheduler, state["scheduler"], schedule_changes)
            else:
                self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = state["epoch"]
        minidl_random.set_rng_state(state["rng"])
        self.history = History(state["history"])
        self.best_val_top1 = state["best_val_top1"]
        self.best_val_loss = state["best_val_loss"]
        self.epochs_without_improvement = state["epochs_without_improvement"]
        if train_loader is not None and state.get("train_loader") is not None:
            train_loader.load_state_dict(state["train_loader"])

    def save(self, name="last.npz", train_loader=None, names=None):
        """Writes the state to ``out_dir/name`` (or to each of ``names``) if every number in it is
        finite; otherwise raises TrainingDiverged and writes nothing. Only rank 0 writes."""
        if self.out_dir is None or not is_main_process():
            return
        state = self.state_dict(train_loader)
        bad = resume_checks.nonfinite_entries(state)
        if bad:
            raise TrainingDiverged(self._divergence_message(
                f"{', '.join(bad[:4])}{' and more' if len(bad) > 4 else ''} became NaN/Inf"))
        for each in names or [name]:
            save_checkpoint(state, self.path(each))

    def max_checkpoint_bytes(self):
        """What a checkpoint of this model may expand to: its state, 4 optimizer slots, 64 MiB of the rest."""
        model_bytes = sum(getattr(value, "nbytes", 8) for value in self.model.state_dict().values())
        return 5 * model_bytes + (64 << 20)

    def resume(self, path=None, train_loader=None, epochs=None):
        """Restores model, optimizer, scheduler, epoch, history and random state from a checkpoint.

        The checkpoint is checked whole against this trainer first; on any problem nothing is
        loaded and ``CheckpointError`` lists the problems. ``epochs`` (the run's new length)
        is only used in the message when the schedule is extended.
        """
        path = os.fspath(path) if path is not None else self.path("last.npz")
        if path is None or not os.path.exists(path):
            raise FileNotFoundError(f"no checkpoint to resume from at {path!r}"
                                    + ("" if path is None else "; start the run without resuming"))
        state = load_checkpoint(path, max_bytes=self.max_checkpoint_bytes())
        changes = resume_checks.check_checkpoint(self, state, path, train_loader, epochs)
        before = resume_checks.snapshot(self, train_loader)
        try:
            self.load_state_dict(state, train_loader, changes)
        except BaseException:
            resume_checks.restore(self, before, train_loader)
            raise
        self._keep_recorded_tests()
        if changes:
            lr = self.optimizer.param_groups[0]["lr"]
            tqdm.write(f"resuming {path} after epoch {self.epoch} on a longer or changed schedule: "
                       f"{type(self.scheduler).__name__} {resume_checks.describe_changes(changes)}; "
                       f"the next epoch starts at lr {lr:.4g} of the new schedule")
        return self

    def _keep_recorded_tests(self):
        """Takes the test results ``record_test`` wrote into history.json after the checkpoint into the history."""
        path = self.path("history.json")
        if path is None or not os.path.exists(path):
            return
        try:
            with open(path) as file:
                written = {row.get("epoch"): row for row in json.load(file) if isinstance(row, dict)}
        except (OSError, ValueError):
            return
        for row in self.history.rows:
            tests = {k: v for k, v in written.get(row["epoch"], {}).items() if k.startswith("test_")}
            row.update(tests)

    # ------------------------------------------------------------------ the loop
    def fit(self, train_loader, epochs, val_loader=None, resume=False, overwrite=False):
        """Trains until ``epochs`` epochs are complete (counting those before a resume).

        ``resume`` continues from ``out_dir/last.npz``; without it a fresh trainer refuses to
        overwrite an earlier run's ``last.npz`` in ``out_dir`` unless ``overwrite``.
        """
        self._check_learning_rates()
        if self.out_dir is not None and is_main_process():
            remove_stale_temporaries(self.out_dir)
        if resume:
            self.resume(train_loader=train_loader, epochs=epochs)
        elif self.epoch == 0 and not overwrite and self.out_dir is not None and is_main_process() \
                and os.path.exists(self.path("last.npz")):
            raise FileExistsError(f"{self.out_dir} already holds a run ({self.path('last.npz')}); "
                                  "fit(resume=True) continues it, fit(overwrite=True) starts it again")
        if self.out_dir is not None and (self.epoch == 0 or not os.path.exists(self.path("last.npz"))):
            self.save("last.npz", train_loader)  # a good checkpoint exists before the first step
        try:
            self._fit_epochs(train_loader, epochs, val_loader)
        except KeyboardInterrupt as interrupt:
            if isinstance(interrupt, TrainingInterrupted):
                raise
            raise TrainingInterrupted(self._interrupt_message()) from None
        return self.history

    def _fit_epochs(self, train_loader, epochs, val_loader):
        while self.epoch < epochs:
            if hasattr(train_loader, "set_epoch"):
                train_loader.set_epoch(self.epoch)
            started = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]  # the rate the epoch starts with
            train_stats = self.train_epoch(train_loader, epochs)
            val_stats = self.evaluate(val_loader, "val") if val_loader is not None else {}
            self._step_epoch_scheduler(val_stats.get("val_loss", train_stats["train_loss"]))
            row = {"epoch": self.epoch + 1, "lr": lr, **train_stats, **val_stats,
                   "seconds": round(time.perf_counter() - started, 3)}
            with _finish_before_interrupt():
                self.epoch += 1
                self.history.append(row)
                improved = self._track_best(val_stats)
                self._write_outputs(train_loader, improved)
            self._print_epoch(row, epochs)
            if self._should_stop_early():  # every process decides alike: the validation metrics are global
                if is_main_process():
                    print(f"early stopping: validation loss did not improve for {self.epochs_without_improvement} "
                          "epochs")
                break

    def train_epoch(self, loader, epochs):
        """One epoch of training.  The loss and top-k hits are summed on the batches' device
        (``EpochTotals``) and read with the divergence checks, every ``check_every`` steps: on the
        CPU every step (reading is free), on a GPU every 20, since each read waits for the device."""
        self.model.train()
        totals, started = None, time.perf_counter()
        checks = _FiniteChecks()
        bar = tqdm(loader, desc=f"epoch {self.epoch + 1}/{epochs}", disable=not self.progress, leave=False,
                   dynamic_ncols=True)
        for batch_index, (images, targets) in enumerate(bar):
            images, targets = images.to(self.device), targets.to(self.device)
            logits = self.network(images)
            self._settle_topk(logits)
            totals = totals or EpochTotals(self.topk)
            loss = self.loss_fn(logits, targets)
            self.optimizer.zero_grad()
            loss.backward()
            grad_norm = self._grad_norm()
            checks.add(loss, grad_norm, batch_index)
            totals.add(loss.detach(), logits.detach(), targets, batch_index)
            if (batch_index + 1) % self.check_every == 0:
                self._raise_if_diverged(checks)
                self._show_progress(bar, totals.read(), started)
            self.optimizer.step()
            if self.scheduler is not None and self.scheduler_interval == "step":
                self.scheduler.step()
        self._raise_if_diverged(checks)
        loss, correct, seen = _over_processes((totals or EpochTotals(self.topk)).read(), self.topk)
        stats = {"train_loss": loss}
        stats.update({f"train_top{k}": correct[k] / max(seen, 1) for k in self.topk})
        stats["train_images_per_s"] = round(seen / (time.perf_counter() - started), 1)
        return stats

    def _show_progress(self, bar, values, started):
        bar.set_postfix(loss=f"{values['loss']:.4f}", top1=f"{values[f'top{self.topk[0]}']:.3f}",
                        lr=f"{self.optimizer.param_groups[0]['lr']:.4g}",
                        img_s=f"{values['seen'] / (time.perf_counter() - started):.0f}")

    def evaluate(self, loader, prefix="test"):
        """Mean loss and top-k accuracies over ``loader``, in eval mode and without a graph.

        The sums stay on the device until the end (one read). A non-finite loss is never averaged in
        silently: if that batch's images held NaN/Inf the data is at fault (ValueError naming the
        batch), otherwise the model (TrainingDiverged).
        """
        self.model.eval()
        totals = None
        with no_grad():
            for batch_index, (images, targets) in enumerate(tqdm(loader, desc=prefix, disable=not self.progress,
                                                                 leave=False, dynamic_ncols=True)):
                images, targets = images.to(self.device), targets.to(self.device)
                logits = self.network(images)  # under DDP: rank 0's BatchNorm statistics everywhere
                self._settle_topk(logits)
                totals = totals or EpochTotals(self.topk, watch_inputs=True)
                totals.add(self.loss_fn(logits, targets), logits, targets, batch_index, images)
        values = (totals or EpochTotals(self.topk)).read()
        if values["first_bad_batch"] >= 0:
            self._explain_nonfinite_evaluation(values["bad_inputs"], values["first_bad_loss"], prefix,
                                               values["first_bad_batch"])
        loss, correct, seen = _over_processes(values, self.topk)
        stats = {f"{prefix}_loss": loss}
        stats.update({f"{prefix}_top{k}": correct[k] / max(seen, 1) for k in self.topk})
        return stats

    def record_test(self, stats):
        """Adds a test evaluation (``evaluate(loader, "test")``) to the last epoch's row and rewrites
        history.json/.csv and curves.png, so the run's files keep its test top-1/top-5."""
        if not self.history.rows:
            return
        with _finish_before_interrupt():
            self.history.record(stats)
            self._write_history()

    # ------------------------------------------------------------------ checks
    def _check_learning_rates(self):
        for number, group in enumerate(self.optimizer.param_groups):
            lr = group["lr"]
            if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr < 0:
                raise ValueError(f"Trainer: parameter group {number} of {type(self.optimizer).__name__} has "
                                 f"learning rate {lr!r}; it must be a finite number >= 0")

    def _settle_topk(self, logits):
        """Drops default ks a problem with fewer classes cannot have (top-5 of 3 classes)."""
        classes = logits.shape[1] if logits.ndim == 2 else None
        if classes is None or all(k <= classes for k in self.topk):
            return
        if self.explicit_topk:
            raise ValueError(f"Trainer: topk={self.topk} asks for more than the model's {classes} classes")
        self.topk = tuple(k for k in self.topk if k <= classes)

    def _grad_norm(self):
        """The gradients' global L2 norm as a device scalar (clipping them first if asked)."""
        params = [p for p in self.model.parameters() if p.grad is not None]
        if not params:
            return None
        if self.grad_clip_norm is not None:
            return clip_grad_norm_(params, self.grad_clip_norm).array
        xp = get_array_module(params[0].grad.array)
        return xp.sqrt(sum((p.grad.array.astype(xp.float32, copy=False) ** 2).sum() for p in params))

    def _raise_if_diverged(self, checks):
        failure = checks.first_failure()
        if failure is not None:
            batch_index, loss, norm = failure
            what = (f"the loss became {loss}" if not math.isfinite(loss) else
                    f"the gradients' norm became {norm} (loss {loss:.4g})")
            raise TrainingDiverged(self._divergence_message(what, batch_index))

    def _explain_nonfinite_evaluation(self, bad_inputs, loss, prefix, batch_index):
        if bad_inputs:
            raise ValueError(f"{prefix} batch {batch_index + 1}: {bad_inputs} input values are NaN/Inf, so the "
                             f"{prefix} loss is {loss}; check the {prefix} data and its transform")
        raise TrainingDiverged(self._divergence_message(f"the {prefix} loss became {loss} on finite inputs "
                                                        f"(batch {batch_index + 1})"))

    # ------------------------------------------------------------------ helpers
    def _step_epoch_scheduler(self, monitored_loss):
        if self.scheduler is None or self.scheduler_interval != "epoch":
            return
        if type(self.scheduler).__name__ == "ReduceLROnPlateau":
            self.scheduler.step(monitored_loss)
        else:
            self.scheduler.step()

    def _track_best(self, val_stats):
        """Updates the best validation scores; True when top-1 improved."""
        if not val_stats:
            return False
        loss, top1 = val_stats["val_loss"], val_stats.get("val_top1")
        if self.best_val_loss is None or loss < self.best_val_loss:
            self.best_val_loss, self.epochs_without_improvement = loss, 0
        else:
            self.epochs_without_improvement += 1
        if top1 is not None and (self.best_val_top1 is None or top1 > self.best_val_top1):
            self.best_val_top1 = top1
            return True
        return False

    def _should_stop_early(self):
        return self.early_stopping_patience is not None and \
            self.epochs_without_improvement >= self.early_stopping_patience

    def _write_outputs(self, train_loader, improved):
        if self.out_dir is None or not is_main_process():
            return
        self.save(train_loader=train_loader, names=["last.npz", "best.npz"] if improved else ["last.npz"])
        self._write_history()

    def _write_history(self):
        if self.out_dir is None or not is_main_process():
            return
        self.history.save(self.out_dir)
        self.history.plot(self.path("curves.png"), title=type(self.model).__name__)

    def _kept(self):
        if self.out_dir is None:
            return "no checkpoint was written (out_dir is None)"
        return f"the last good checkpoint (after epoch {self._epoch_on_disk()}) is kept at {self.path('last.npz')}"

    def _epoch_on_disk(self):
        rows = self.history.rows
        return rows[-1]["epoch"] if rows else 0

    def _divergence_message(self, what, batch_index=None):
        where = f"epoch {self.epoch + 1}" + (f", batch {batch_index + 1}" if batch_index is not None else "")
        return (f"training diverged: {what} at {where}; {self._kept()}. "
                "Try a lower learning rate, gradient clipping (grad_clip_norm) or a warm-up.")

    def _interrupt_message(self):
        if self.out_dir is None:
            return f"interrupted during epoch {self.epoch + 1}; nothing was saved (out_dir is None)"
        return (f"interrupted during epoch {self.epoch + 1}: the last checkpoint is {self.path('last.npz')} "
                f"(after epoch {self.epoch}); resume the run to continue from there")

    def _print_epoch(self, row, epochs):
        if not is_main_process():
            return
        parts = [f"epoch {row['epoch']}/{epochs}", f"lr {row['lr']:.4g}", f"train loss {row['train_loss']:.4f}"]
        for key in ("train_top1", "val_loss", "val_top1", "val_top5"):
            if key in row:
                value = row[key]
                parts.append(f"{key.replace('_', ' ')} {value:.4f}" if "loss" in key else
                             f"{key.replace('_', ' ')} {100 * value:.2f}%")
        parts.append(f"{row['seconds']:.1f}s")
        tqdm.write(" | ".join(parts))


def _over_processes(values, topk):
    """(mean loss, {k: correct}, images) over every process's share of ``EpochTotals.read()`` (this
    process's alone without a group)."""
    loss_total, seen, *counts = sum_over_processes([values["loss_sum"], values["seen"],
                                                    *(values["hits"][k] for k in topk)])
    return (loss_total / seen if seen else float("nan")), dict(zip(topk, counts)), seen


class _FiniteChecks:
    """Per-step losses and gradient norms, kept on the device until read (one read per ``check_every`` steps)."""

    def __init__(self):
        self.pending = []

    def add(self, loss, grad_norm, batch_index):
        self.pending.append((batch_index, loss.array, grad_norm))

    def first_failure(self):
        """(batch index, loss, norm) of the first step with a non-finite loss or norm, or None; clears.
        The pending values come to the host in one transfer (one wait for a GPU)."""
        pending, self.pending = self.pending, []
        if not pending:
            return None
        xp = get_array_module(pending[0][1])
        zero = xp.zeros((), dtype=xp.float64)
        values = xp.stack([xp.asarray(v, dtype=xp.float64) for _, loss, norm in pending
                           for v in (loss, zero if norm is None else norm)]).tolist()
        for (batch_index, _, _), loss_value, norm_value in zip(pending, values[0::2], values[1::2]):
            if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
                return batch_index, loss_value, norm_value
        return None


@contextmanager
def _finish_before_interrupt():
    """Holds back Ctrl-C (SIGINT) until the block is done, so the files being written are completed.

    Only in the main thread (where Python delivers signals); elsewhere it does nothing.
    """
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: received.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
