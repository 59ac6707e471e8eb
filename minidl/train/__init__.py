"""``minidl.train``: the training loop, checkpoints, metrics and history."""
from .checkpoint import load_checkpoint, save_checkpoint
from .history import History
from .metrics import EpochTotals, RunningAverage, accuracy, topk_correct, topk_hits
from .trainer import Trainer, TrainingDiverged
