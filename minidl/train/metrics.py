"""Classification metrics: top-k accuracy and running averages."""
from ..backend import get_array_module


def topk_correct(logits, targets, ks=(1, 5)):
    """For each k, how many rows have their target among the k highest logits.

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
    return {k: int(((ranks < k) & valid).sum()) for k in ks}


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
