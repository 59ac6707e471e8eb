"""Training history: one row of numbers per epoch, saved as JSON and CSV and plotted."""
import csv
import json
import os


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

    def save(self, folder):
        """Writes history.json and history.csv into ``folder``."""
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "history.json"), "w") as file:
            json.dump(self.rows, file, indent=1)
        names = list(dict.fromkeys(key for row in self.rows for key in row))
        with open(os.path.join(folder, "history.csv"), "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=names)
            writer.writeheader()
            writer.writerows(self.rows)

    def plot(self, path, title=None):
        """Loss and accuracy curves (train and validation) side by side, saved as a PNG."""
        from matplotlib.figure import Figure  # no pyplot: no global backend or figure state is touched
        from matplotlib.ticker import MaxNLocator

        epochs = self.column("epoch")
        figure = Figure(figsize=(11, 4))
        loss_axes, accuracy_axes = figure.subplots(1, 2)
        splits = {"train": ("tab:blue", "o"), "val": ("tab:orange", "s"), "test": ("tab:green", "^")}
        for split, (colour, marker) in splits.items():
            if any(v is not None for v in self.column(f"{split}_loss")):
                loss_axes.plot(epochs, self.column(f"{split}_loss"), color=colour, marker=marker, markersize=3,
                               label=split)
            for k, linestyle in (("top1", "-"), ("top5", "--")):
                values = self.column(f"{split}_{k}")
                if any(v is not None for v in values):
                    accuracy_axes.plot(epochs, [None if v is None else 100 * v for v in values], color=colour,
                                       linestyle=linestyle, marker=marker, markersize=3, label=f"{split} {k}")
        loss_axes.set(xlabel="epoch", ylabel="loss", title="loss")
        accuracy_axes.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
        for axes in (loss_axes, accuracy_axes):
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            axes.grid(alpha=0.3)
            axes.legend()
        if title:
            figure.suptitle(title)
        figure.tight_layout()
        figure.savefig(path, dpi=100)
