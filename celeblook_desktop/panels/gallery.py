"""The gallery panel: a strip of targets ("you", built-in faces, dropped photos) and Add photo…"""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QHBoxLayout, QListView, QListWidget, QListWidgetItem, QPushButton, QWidget

from engine.inversion.targets import Target

from celeblook_desktop.panels.views import bgr_to_pixmap

GALLERY_MAX = 12
PENDING_ROLE = Qt.ItemDataRole.UserRole + 1  # a tile's photo name while it is being inverted


class GalleryPanel(QWidget):
    """`gallery` (row 0 is "you", no morph; each other item's UserRole data is an index into the window's targets)
    and `add_photo_button`."""

    def __init__(self):
        super().__init__()
        self.gallery = QListWidget()
        self.gallery.setViewMode(QListView.ViewMode.IconMode)
        self.gallery.setFlow(QListView.Flow.LeftToRight)
        self.gallery.setWrapping(False)
        self.gallery.setIconSize(QSize(72, 72))
        self.gallery.setFixedHeight(112)
        self.gallery.setMovement(QListView.Movement.Static)
        self.gallery.setToolTip("Targets: drop a photo on the window (or Add photo…) to add one")
        none_item = QListWidgetItem("you\n(no morph)")
        none_item.setData(Qt.ItemDataRole.UserRole, None)
        self.gallery.addItem(none_item)
        self.add_photo_button = QPushButton("Add photo…")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.gallery, 1)
        row.addWidget(self.add_photo_button)

    def add(self, target: Target, index: int, first: bool) -> QListWidgetItem:
        """An item for `target` (the window's targets[index]): after "you" when `first`, else at the end; the
        strip keeps GALLERY_MAX targets."""
        item = QListWidgetItem(QIcon(bgr_to_pixmap(target.thumbnail)), target.name)
        item.setData(Qt.ItemDataRole.UserRole, index)
        item.setToolTip(f"{target.name} (its reconstruction by the encoder)")
        if first:
            self.gallery.insertItem(1, item)
        else:
            self.gallery.addItem(item)
        while self.gallery.count() > GALLERY_MAX + 1:
            self.gallery.takeItem(self.gallery.count() - 1)
        return item

    def add_pending(self, name: str) -> None:
        """A tile for a photo being inverted (seconds), after "you": it says so until `resolve` replaces it."""
        item = QListWidgetItem(f"{name}\ninverting…")
        item.setData(Qt.ItemDataRole.UserRole, None)
        item.setData(PENDING_ROLE, name)
        item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsSelectable & ~Qt.ItemFlag.ItemIsEnabled)
        item.setToolTip(f"{name}: finding the face and refining its latent, a few seconds")
        self.gallery.insertItem(1, item)

    def drop_pending(self, name: str) -> None:
        """Remove the pending tile of `name` (its inversion finished or failed)."""
        for row in reversed(range(self.gallery.count())):
            if self.gallery.item(row).data(PENDING_ROLE) == name:
                self.gallery.takeItem(row)

    def pending(self) -> list[str]:
        """Names of the photos still being inverted."""
        items = (self.gallery.item(row) for row in range(self.gallery.count()))
        return [item.data(PENDING_ROLE) for item in items if item.data(PENDING_ROLE)]

    def index_at(self, row: int) -> int | None:
        """The targets index of row `row`, None for "you" (or no row)."""
        item = self.gallery.item(row)
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None
