"""A minimal live line plot (loss curve) drawn with QPainter: no plotting dependency."""
from __future__ import annotations

import math

from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget


class CurvePlot(QWidget):
    def __init__(self, title: str = "loss", parent=None):
        super().__init__(parent)
        self.title = title
        self.series: dict[str, list[tuple[float, float]]] = {}
        self.colors = {"loss": QColor(255, 170, 60), "val dice": QColor(80, 200, 255), "val AP50": QColor(140, 230, 120)}
        self.setMinimumHeight(140)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def clear(self):
        self.series.clear()
        self.update()

    def add(self, name: str, x: float, y: float):
        if y is None or not math.isfinite(y):
            return
        self.series.setdefault(name, []).append((float(x), float(y)))
        self.update()

    def paintEvent(self, event):  # noqa: N802 (Qt naming)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        p.fillRect(0, 0, w, h, QColor(38, 41, 48))
        m = 28
        p.setPen(QPen(QColor(140, 140, 140), 1))
        p.drawRect(m, 8, w - m - 8, h - m - 8)
        legend_x = m + 6
        for name, pts in self.series.items():
            if not pts:
                continue
            xs, ys = [a for a, _ in pts], [b for _, b in pts]
            x0, x1 = min(xs), max(xs) or 1
            lo, hi = (0.0, 1.0) if name != "loss" else (min(ys), max(ys))
            if hi - lo < 1e-9:
                hi = lo + 1
            def to_px(a, b):
                fx = (a - x0) / (x1 - x0) if x1 > x0 else 1.0
                return QPointF(m + fx * (w - m - 8), 8 + (1 - (b - lo) / (hi - lo)) * (h - m - 8))
            color = self.colors.get(name, QColor(220, 220, 220))
            p.setPen(QPen(color, 2))
            if len(pts) > 1:
                p.drawPolyline(QPolygonF([to_px(a, b) for a, b in pts]))
            else:
                p.drawEllipse(to_px(*pts[0]), 2, 2)
            p.drawText(legend_x, h - 8, f"{name} {ys[-1]:.3f}")
            legend_x += 110
        if not self.series:
            p.setPen(QColor(160, 160, 160))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, f"{self.title}: not started")
        p.end()
