"""Training history: one row of numbers per epoch, saved as JSON and CSV and plotted.

Every file is written atomically (a temporary beside it, then a rename), so a kill or a
full disk leaves the previous ``history.json``/``history.csv``/``curves.png`` whole.
A test evaluation is recorded in the row of the epoch it measured (``test_loss``,
``test_top1``, ``test_top5``), so the CSV, the JSON and the plot all carry it.
"""
import csv
import io
import json
import os

from .checkpoint import atomic_write


class History:
    """Rows like ``{"epoch": 1, "lr": 0.1, "train_loss": ..., "val_top1": ...}``."""

    def __init__(self, rows=None):
        self.rows = list(rows or [])

    def append(self, row):
        self.rows.append(dict(row))

    def column(self, name):
        return [row.get(name) for row in self.rows]

    def best(self, name, mode="max"):
        values = [v for v in self.column(name) if v is not None]
        if not values:
            return None
        return max(values) if mode == "max" else min(values)

    def record(self, stats):
        """Adds ``stats`` (e.g. the test set's ``test_top1``) to the last epoch's row."""
        if not self.rows:
            raise ValueError("History.record: no epoch has been recorded yet")
        self.rows[-1].update(stats)

    def save(self, folder):
        """Writes history.json and history.csv into ``folder`` (each atomically)."""
        text = json.dumps(self.rows, indent=1)
        atomic_write(os.path.join(folder, "history.json"), lambda file: file.write(text.encode("utf-8")))
        names = list(dict.fromkeys(key for row in self.rows for key in row))
        table = io.StringIO(newline="")
        writer = csv.DictWriter(table, fieldnames=names)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write(os.path.join(folder, "history.csv"), lambda file: file.write(table.getvalue().encode("utf-8")))

    def plot(self, path, title=None):
        """Loss and accuracy curves (train, validation, and the test result where recorded), saved as a PNG."""
        from matplotlib.figure import Figure  # no pyplot: no global backend or figure state is touched
        from matplotlib.ticker import MaxNLocator

        epochs = self.column("epoch")
        figure = Figure(figsize=(11, 4))
        loss_axes, accuracy_axes = figure.subplots(1, 2)
        splits = {"train": ("tab:blue", "o"), "val": ("tab:orange", "s"), "test": ("tab:green", "^")}
        for split, (colour, marker) in splits.items():
            size = 8 if split == "test" else 3  # the test result is usually one point: make it visible
            if any(v is not None for v in self.column(f"{split}_loss")):
                loss_axes.plot(epochs, self.column(f"{split}_loss"), color=colour, marker=marker, markersize=size,
                               label=split)
            for k, linestyle in (("top1", "-"), ("top5", "--")):
                values = self.column(f"{split}_{k}")
                known = [v for v in values if v is not None]
                if known:
                    label = f"{split} {k}" + (f" {100 * known[-1]:.2f}%" if split == "test" else "")
                    accuracy_axes.plot(epochs, [None if v is None else 100 * v for v in values], color=colour,
                                       linestyle=linestyle, marker=marker, markersize=size, label=label)
        loss_axes.set(xlabel="epoch", ylabel="loss", title="loss")
        accuracy_axes.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
        for axes in (loss_axes, accuracy_axes):
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            axes.grid(alpha=0.3)
            if axes.get_legend_handles_labels()[0]:
                axes.legend()
        if title:
            figure.suptitle(title)
        figure.tight_layout()
        atomic_write(path, lambda file: figure.savefig(file, dpi=100, format="png"))
