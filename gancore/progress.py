"""Training progress on stderr: a tqdm bar on a terminal, plain lines elsewhere (CI logs, files)."""

from __future__ import annotations

import sys
from typing import Any

SKIP = ("step", "time_s", "images_per_s")


def fmt_time(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    def __init__(self, start: int, total: int, enabled: bool, label: str = "") -> None:
        self.total, self.enabled, self.label = total, enabled, label
        self.bar: Any = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", desc=label or None, dynamic_ncols=True,
                            file=sys.stderr)

    def update(self, step: int, line: dict[str, float], left_s: float) -> None:
        if not self.enabled:
            return
        losses = {k: v for k, v in line.items() if k not in SKIP}
        if self.bar is not None:
            self.bar.n = step  # absolute: a rollback moves it back
            self.bar.set_postfix({**{k: f"{v:.3f}" for k, v in losses.items()},
                                  "img/s": f"{line['images_per_s']:.0f}"}, refresh=True)
        else:
            parts = " ".join(f"{k} {v:.3f}" for k, v in losses.items())
            head = f"{self.label} step" if self.label else "step"
            print(f"{head} {step}/{self.total} | {parts} | {line['images_per_s']:.0f} img/s | "
                  f"{fmt_time(left_s)} left", file=sys.stderr, flush=True)

    def note(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
