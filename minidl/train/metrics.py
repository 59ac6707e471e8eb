"""Classification metrics: top-k accuracy, running averages, and an epoch's totals kept on the device."""
import math

from ..backend import get_array_module


def topk_hits(logits, targets, ks=(1, 5)):
    """For each k, how many rows have their target among the k highest logits, as 0-d arrays on the
    logits' device (reading them is the caller's choice: on a GPU each read waits for the device).

    A row's target *rank* is the number of classes scored strictly above it, a NaN score
    counting as above everything (as ``torch.topk`` sorts NaN first); the prediction is
    top-k correct when that rank is below k and the target's own score is not NaN. So a
    diverged model whose logits are NaN scores 0, never 100%. Each k must lie in
    [1, number of classes] (``torch.topk``'s rule): top-5 of 3 classes is refused, not 100%.
    """
    scores = getattr(logits, "array", logits)
    labels = getattr(targets, "array", targets)
    classes = scores.shape[1]
    bad = [k for k in ks if not 1 <= k <= classes]
    if bad:
        raise ValueError(f"topk_correct: k={bad} is outside [1, {classes}] for logits of shape {tuple(scores.shape)} "
                         f"(top-k needs at least k classes)")
    xp = get_array_module(scores)
    target_scores = xp.take_along_axis(scores, labels.reshape(-1, 1).astype(xp.int64), axis=1)
    ranks = (scores > target_scores).sum(axis=1) + xp.isnan(scores).sum(axis=1)
    valid = ~xp.isnan(target_scores[:, 0])
    return {k: ((ranks < k) & valid).sum() for k in ks}


def topk_correct(logits, targets, ks=(1, 5)):
    """``topk_hits`` as Python ints."""
    return {k: int(hits) for k, hits in topk_hits(logits, targets, ks).items()}


def accuracy(logits, targets, k=1):
    """Fraction of rows whose target is among the top-k logits."""
    labels = getattr(targets, "array", targets)
    return topk_correct(logits, targets, (k,))[k] / len(labels)


class RunningAverage:
    """A weighted running mean (e.g. of the loss over the batches of an epoch)."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def update(self, value, weight=1):
        self.total += float(value) * weight
        self.count += weight

    @property
    def value(self):
        return self.total / self.count if self.count else float("nan")


class EpochTotals:
    """An epoch's loss and top-k hits, summed where the batches live: on a GPU adding a batch never
    waits for the device, and ``read()`` waits once (call it when the numbers are shown).

    It also keeps the first batch whose loss was not finite, with that loss and the number of NaN/Inf
    values in its inputs (``watch_inputs=True``), so a failure found at the end is still explained.
    """

    def __init__(self, topk, watch_inputs=False):
        self.topk, self.watch_inputs = tuple(topk), watch_inputs
        self.seen = 0
        self.sums = None  # 0-d device arrays: loss sum, top-k hits, first bad batch, its loss and bad inputs

    def add(self, loss, logits, targets, batch_index, images=None):
        loss = getattr(loss, "array", loss)
        xp = get_array_module(loss)
        batch = len(getattr(targets, "array", targets))
        hits = topk_hits(logits, targets, self.topk)
        if self.sums is None:
            self.sums = {"loss": xp.zeros((), dtype=xp.float64), "first_bad_batch": xp.full((), -1, dtype=xp.int64),
                         "first_bad_loss": xp.zeros((), dtype=xp.float64), "bad_inputs": xp.zeros((), dtype=xp.int64),
                         **{k: xp.zeros((), dtype=xp.int64) for k in self.topk}}
        sums = self.sums
        sums["loss"] += loss.astype(xp.float64) * batch
        for k in self.topk:
            sums[k] += hits[k]
        new_bad = ~xp.isfinite(loss) & (sums["first_bad_batch"] < 0)
        sums["first_bad_batch"] = xp.where(new_bad, batch_index, sums["first_bad_batch"])
        sums["first_bad_loss"] = xp.where(new_bad, loss, sums["first_bad_loss"])
        if self.watch_inputs and images is not None:
            array = getattr(images, "array", images)
            sums["bad_inputs"] = xp.where(new_bad, (~xp.isfinite(array)).sum(), sums["bad_inputs"])
        self.seen += batch

    def read(self):
        """{"loss", "top<k>" (means), "loss_sum", "hits" ({k: count}), "seen", "first_bad_batch" (-1: none),
        "first_bad_loss", "bad_inputs"} as Python numbers: one transfer."""
        if self.sums is None:
            return {"loss": math.nan, **{f"top{k}": 0.0 for k in self.topk}, "loss_sum": 0.0,
                    "hits": {k: 0 for k in self.topk}, "seen": 0, "first_bad_batch": -1, "first_bad_loss": 0.0,
                    "bad_inputs": 0}
        names = list(self.sums)
        xp = get_array_module(self.sums["loss"])
        values = dict(zip(names, xp.stack([self.sums[n].astype(xp.float64) for n in names]).tolist()))
        return {"loss": values["loss"] / self.seen, **{f"top{k}": values[k] / self.seen for k in self.topk},
                "loss_sum": values["loss"], "hits": {k: int(values[k]) for k in self.topk}, "seen": self.seen,
                "first_bad_batch": int(values["first_bad_batch"]), "first_bad_loss": values["first_bad_loss"],
                "bad_inputs": int(values["bad_inputs"])}
