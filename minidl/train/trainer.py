"""The training loop: epochs of forward, loss, backward, optimizer step, with the
bookkeeping a real run needs.

``Trainer.fit`` runs epochs with ``tqdm`` progress bars (loss, accuracy, learning
rate, images/s), evaluates on validation data after each epoch, steps the learning
rate scheduler (per batch for OneCycleLR/CyclicLR, per epoch for the rest,
``ReduceLROnPlateau`` on the validation loss), keeps a ``History`` (JSON, CSV and a
PNG of the curves), writes checkpoints atomically (``last.npz`` every epoch,
``best.npz`` when validation top-1 improves), resumes exactly where a run stopped,
stops with ``TrainingDiverged`` when the loss becomes NaN or Inf (the last good
checkpoint is kept), and stops early when validation stops improving.
"""
import math
import os
import time

from tqdm.auto import tqdm

from .. import random as minidl_random
from ..autograd import no_grad
from ..backend import device as Device
from ..nn import functional as F
from ..nn.utils import clip_grad_norm_
from .checkpoint import load_checkpoint, save_checkpoint
from .history import History
from .metrics import RunningAverage, topk_correct

PER_BATCH_SCHEDULERS = ("OneCycleLR", "CyclicLR")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf; training stopped and the last good checkpoint was kept."""


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
        topk: which top-k accuracies to report (top-1 and top-5 by default).
        grad_clip_norm: clip the gradients' global norm to this value each step.
        early_stopping_patience: stop after this many epochs without a better
            validation loss (None: never).
        progress: show tqdm progress bars.
    """

    def __init__(self, model, optimizer, loss_fn=None, scheduler=None, scheduler_interval=None, device="cpu",
                 out_dir=None, topk=(1, 5), grad_clip_norm=None, early_stopping_patience=None, progress=True):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.loss_fn = loss_fn or F.cross_entropy
        self.scheduler_interval = scheduler_interval or self._default_interval(scheduler)
        if self.scheduler_interval not in ("step", "epoch"):
            raise ValueError(f"unknown scheduler_interval {scheduler_interval!r}; valid values are 'step' and 'epoch'")
        self.device = Device(device)
        self.out_dir = out_dir
        self.topk = tuple(topk)
        self.grad_clip_norm = grad_clip_norm
        self.early_stopping_patience = early_stopping_patience
        self.progress = progress
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
        """Everything a resumed run needs to continue bit for bit."""
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
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

    def load_state_dict(self, state, train_loader=None):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = state["epoch"]
        minidl_random.set_rng_state(state["rng"])
        self.history = History(state["history"])
        self.best_val_top1 = state["best_val_top1"]
        self.best_val_loss = state["best_val_loss"]
        self.epochs_without_improvement = state["epochs_without_improvement"]
        if train_loader is not None and state.get("train_loader") is not None:
            train_loader.load_state_dict(state["train_loader"])

    def save(self, name="last.npz", train_loader=None):
        if self.out_dir is not None:
            save_checkpoint(self.state_dict(train_loader), self.path(name))

    def resume(self, path=None, train_loader=None):
        """Restores model, optimizer, scheduler, epoch, history and random state from a checkpoint."""
        path = path or self.path("last.npz")
        if path is None or not os.path.exists(path):
            raise FileNotFoundError(f"no checkpoint to resume from at {path!r}")
        self.load_state_dict(load_checkpoint(path), train_loader)
        return self

    # ------------------------------------------------------------------ the loop
    def fit(self, train_loader, epochs, val_loader=None, resume=False):
        """Trains until ``epochs`` epochs are complete (counting those before a resume)."""
        if resume:
            self.resume(train_loader=train_loader)
        if self.out_dir is not None and not os.path.exists(self.path("last.npz")):
            self.save("last.npz", train_loader)  # a good checkpoint exists before the first step
        while self.epoch < epochs:
            if hasattr(train_loader, "set_epoch"):
                train_loader.set_epoch(self.epoch)
            started = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]  # the rate the epoch starts with
            train_stats = self.train_epoch(train_loader, epochs)
            val_stats = self.evaluate(val_loader, "val") if val_loader is not None else {}
            self._step_epoch_scheduler(val_stats.get("val_loss", train_stats["train_loss"]))
            self.epoch += 1
            row = {"epoch": self.epoch, "lr": lr, **train_stats, **val_stats,
                   "seconds": round(time.perf_counter() - started, 3)}
            self.history.append(row)
            improved = self._track_best(val_stats)
            self._write_outputs(train_loader, improved)
            self._print_epoch(row, epochs)
            if self._should_stop_early():
                print(f"early stopping: validation loss did not improve for {self.epochs_without_improvement} epochs")
                break
        return self.history

    def train_epoch(self, loader, epochs):
        self.model.train()
        loss_average = RunningAverage()
        correct = {k: 0 for k in self.topk}
        seen, started = 0, time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {self.epoch + 1}/{epochs}", disable=not self.progress, leave=False,
                   dynamic_ncols=True)
        for batch_index, (images, targets) in enumerate(bar):
            images, targets = images.to(self.device), targets.to(self.device)
            logits = self.model(images)
            loss = self.loss_fn(logits, targets)
            loss_value = float(loss.item())
            if not math.isfinite(loss_value):
                raise TrainingDiverged(self._divergence_message(loss_value, batch_index))
            self.optimizer.zero_grad()
            loss.backward()
            if self.grad_clip_norm is not None:
                clip_grad_norm_(self.model.parameters(), self.grad_clip_norm)
            self.optimizer.step()
            if self.scheduler is not None and self.scheduler_interval == "step":
                self.scheduler.step()
            batch = len(targets)
            seen += batch
            loss_average.update(loss_value, batch)
            for k, count in topk_correct(logits.detach(), targets, self.topk).items():
                correct[k] += count
            bar.set_postfix(loss=f"{loss_average.value:.4f}", top1=f"{correct[self.topk[0]] / seen:.3f}",
                            lr=f"{self.optimizer.param_groups[0]['lr']:.4g}",
                            img_s=f"{seen / (time.perf_counter() - started):.0f}")
        stats = {"train_loss": loss_average.value}
        stats.update({f"train_top{k}": correct[k] / max(seen, 1) for k in self.topk})
        stats["train_images_per_s"] = round(seen / (time.perf_counter() - started), 1)
        return stats

    def evaluate(self, loader, prefix="test"):
        """Mean loss and top-k accuracies over ``loader``, in eval mode and without a graph."""
        self.model.eval()
        loss_average = RunningAverage()
        correct, seen = {k: 0 for k in self.topk}, 0
        with no_grad():
            for images, targets in tqdm(loader, desc=prefix, disable=not self.progress, leave=False,
                                        dynamic_ncols=True):
                images, targets = images.to(self.device), targets.to(self.device)
                logits = self.model(images)
                loss_average.update(float(self.loss_fn(logits, targets).item()), len(targets))
                for k, count in topk_correct(logits, targets, self.topk).items():
                    correct[k] += count
                seen += len(targets)
        stats = {f"{prefix}_loss": loss_average.value}
        stats.update({f"{prefix}_top{k}": correct[k] / max(seen, 1) for k in self.topk})
        return stats

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
        if self.out_dir is None:
            return
        self.save("last.npz", train_loader)
        if improved:
            self.save("best.npz", train_loader)
        self.history.save(self.out_dir)
        self.history.plot(self.path("curves.png"), title=type(self.model).__name__)

    def _divergence_message(self, loss_value, batch_index):
        where = f"epoch {self.epoch + 1}, batch {batch_index + 1}"
        kept = (f"the last good checkpoint (after epoch {self.epoch}) is kept at {self.path('last.npz')}"
                if self.out_dir is not None else "no checkpoint was written (out_dir is None)")
        return (f"training diverged: the loss became {loss_value} at {where}; {kept}. "
                "Try a lower learning rate, gradient clipping (grad_clip_norm) or a warm-up.")

    def _print_epoch(self, row, epochs):
        parts = [f"epoch {row['epoch']}/{epochs}", f"lr {row['lr']:.4g}", f"train loss {row['train_loss']:.4f}"]
        for key in ("train_top1", "val_loss", "val_top1", "val_top5"):
            if key in row:
                value = row[key]
                parts.append(f"{key.replace('_', ' ')} {value:.4f}" if "loss" in key else
                             f"{key.replace('_', ' ')} {100 * value:.2f}%")
        parts.append(f"{row['seconds']:.1f}s")
        tqdm.write(" | ".join(parts))
