"""The views panel: input and output side by side, and the message bar under them (with the buttons that offer
another source when the current one fails)."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget


def bgr_to_pixmap(image: np.ndarray, size: QSize | None = None) -> QPixmap:
    """uint8 BGR array -> QPixmap, optionally fitted into `size` (aspect kept)."""
    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    qimage = QImage(image.data, w, h, image.strides[0], QImage.Format.Format_BGR888).copy()
    pixmap = QPixmap.fromImage(qimage)
    if size is not None and size.width() > 0 and size.height() > 0:
        pixmap = pixmap.scaled(size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    return pixmap


class VideoView(QLabel):
    """A label that shows frames scaled to fit."""

    def __init__(self, title: str):
        super().__init__(title)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(240, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setStyleSheet("background: #111; color: #aaa;")
        self.frame: np.ndarray | None = None

    def show_frame(self, image: np.ndarray) -> None:
        self.frame = image
        self.setPixmap(bgr_to_pixmap(image, self.size()))


class ViewsPanel(QWidget):
    """`input_view`, `output_view`, `message` and, shown when a source fails, `open_video_button` and
    `demo_button` (the built-in demo face)."""

    def __init__(self, side_by_side_view: bool = True):
        super().__init__()
        self.input_view = VideoView("input")
        self.output_view = VideoView("starting the engine…")
        self.input_view.setVisible(side_by_side_view)
        views = QHBoxLayout()
        views.addWidget(self.input_view)
        views.addWidget(self.output_view)

        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("padding: 4px;")
        self.open_video_button = QPushButton("Open video file…")
        self.demo_button = QPushButton("Show the demo face")
        self.demo_button.setToolTip("A face made by CelebLook's own generator, moving like a person on camera")
        message_row = QHBoxLayout()
        message_row.addWidget(self.message, 1)
        message_row.addWidget(self.demo_button)
        message_row.addWidget(self.open_video_button)
        self.offer_sources(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(views, 1)
        layout.addLayout(message_row)

    def offer_sources(self, on: bool) -> None:
        """Show (or hide) the buttons that switch to another source."""
        self.open_video_button.setVisible(on)
        self.demo_button.setVisible(on)
