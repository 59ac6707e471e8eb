"""Classification metrics: top-k accuracy and running averages."""
from ..backend import get_array_module


def topk_correct(logits, targets, ks=(1, 5)):
    """For each k, how many rows have their target among the k highest logits.

    A row's target *rank* is the number of classes scored strictly above it; the
    prediction is top-k correct when that rank is below k.
    """
    scores = getattr(logits, "array", logits)
    labels = getattr(targets, "array", targets)
    xp = get_array_module(scores)
    target_scores = xp.take_along_axis(scores, labels.reshape(-1, 1).astype(xp.int64), axis=1)
    ranks = (scores > target_scores).sum(axis=1)
    return {k: int((ranks < k).sum()) for k in ks}


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
