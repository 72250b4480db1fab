"""The controls panel: source, view, morph, edits, prompt (only with the text models), engine options,
calibration, recording and the face indicator."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSlider, \
    QWidget

from engine.edits import MORPH_MODES
from engine.text_edit import missing_text_models

from celeblook_desktop.workers import Source

SLIDER_EDITS = (("yaw", "Head yaw"), ("pitch", "Head pitch"), ("smile", "Expression (smile)"))
# the face's attributes, a panel of their own: age in years, gender on P(female) 0..1 (docs/EDITS.md)
ATTRIBUTE_SLIDERS = (("age", "Age (younger ↔ older)"), ("gender", "Gender (masc. ↔ fem.)"))
CAMERA_CHOICES = 4
PANEL_WIDTH = 330


def _check(text: str, checked: bool, tip: str) -> QCheckBox:
    box = QCheckBox(text)
    box.setChecked(checked)
    box.setToolTip(tip)
    return box


def _button(text: str, tip: str) -> QPushButton:
    button = QPushButton(text)
    button.setToolTip(tip)
    return button


def _with_label(slider: QSlider, label: QLabel) -> QWidget:
    label.setMinimumWidth(44)
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(slider, 1)
    row.addWidget(label)
    return box


class ControlsPanel(QWidget):
    """The form on the window's right. Its widgets are attributes; MainWindow connects them."""

    def __init__(self, side_by_side_view: bool = True, calibrating: bool = True):
        super().__init__()
        self.setFixedWidth(PANEL_WIDTH)
        form = QFormLayout(self)
        self.source_box = QComboBox()
        for i in range(CAMERA_CHOICES):
            self.source_box.addItem(f"Camera {i}", Source(camera=i))
        self.source_box.addItem("Demo face", Source(demo=True))
        self.source_box.addItem("Video file…", "video")
        self.source_box.setCurrentIndex(-1)
        form.addRow("Source", self.source_box)
        self.side_by_side_box = QCheckBox("Input beside output")
        self.side_by_side_box.setChecked(side_by_side_view)
        form.addRow("View", self.side_by_side_box)

        self.strength = QSlider(Qt.Orientation.Horizontal)
        self.strength.setRange(0, 100)
        self.strength.setValue(100)
        self.strength_label = QLabel("1.00")
        form.addRow("Morph strength", _with_label(self.strength, self.strength_label))
        self.preset = QComboBox()
        self.preset.addItems(list(MORPH_MODES))
        self.preset.setToolTip("reenact: become the target, moving like you; identity: the target's features on your "
                               "face shape; full / features: other mixes of the two faces")
        form.addRow("Morph", self.preset)
        self.target_colours_box = _check("Target's colours", True, "With the strength, the face takes the target "
                                         "photo's skin colours (its lighting too); off: your camera's colours")
        form.addRow("", self.target_colours_box)
        self.your_smile_box = _check("Your smile", True, "Reenacting, the target's resting smile becomes yours, so a "
                                     "photo taken grinning does not grin while you talk; off: the photo's own smile "
                                     "stays under your motion")
        form.addRow("", self.your_smile_box)
        self.edit_sliders: dict[str, tuple[QSlider, QLabel]] = {}
        self._add_sliders(form, SLIDER_EDITS)
        attributes = QLabel("Face attributes")
        attributes.setToolTip("Age and gender directions (labellers trained on UTKFace: non-commercial research use)")
        form.addRow(attributes)
        self._add_sliders(form, ATTRIBUTE_SLIDERS)

        # text prompts: only once their models are installed (engine.text_edit; none ships)
        self.prompt = QLineEdit()
        self.prompt.setPlaceholderText("a face described in words, e.g. man with glasses")
        self.missing_text_models = missing_text_models()
        if self.missing_text_models:
            self.prompt.setVisible(False)
            self.prompt.setToolTip("Text prompts need the CLIP text models, not installed: "
                                   + ", ".join(self.missing_text_models) + " missing")
        else:
            form.addRow("Prompt", self.prompt)

        self.smoothing_box = _check("Smooth over time", True, "One-Euro filters on the landmarks and the latent "
                                    "(less flicker, a little lag)")
        self.reuse_box = _check("Reuse face when still", False, "Skip the generator while the latent barely changes "
                                "(saves CPU and battery; the face then stops following small expression changes)")
        self.skin_box = _check("Match skin tone", True, "Move your reconstructed face's skin colour to the camera's "
                               "(the encoder alone pulls skin chroma toward the average face)")
        self.likeness_box = _check("Check likeness", True, "Every 32 frames, render your reconstruction and let the "
                                   "face recogniser compare it with you; move it toward what it misses (looks more "
                                   "like you; costs about 2 fps on a 2-core laptop; off while calibrated)")
        self.calib_box = _check("Calibrate to my face", calibrating, "Refine a few frames of you once (seconds each, "
                                "in the background) and add what they learned to every frame: your reconstruction "
                                "looks more like you (docs/ENCODER.md, personal calibration)")
        self.recalibrate_button = _button("Recalibrate", "Forget the calibration and take it again from the next "
                                          "frames (someone else in front of the camera)")
        self.save_calibration_button = _button("Save calibration", "Write the calibration to the output folder "
                                               "(calibration.npz), to start with it next time: celeblook-desktop "
                                               "--calibration FILE")
        self.save_calibration_button.setEnabled(False)
        form.addRow("Engine", self.smoothing_box)
        form.addRow("", self.reuse_box)
        form.addRow("", self.skin_box)
        form.addRow("", self.likeness_box)
        form.addRow(self.recalibrate_button, self.calib_box)
        form.addRow("", self.save_calibration_button)

        self.record_button = QPushButton("● Record")
        self.record_button.setCheckable(True)
        self.record_format = QComboBox()
        self.record_format.addItem("GIF (up to 50 s)", ".gif")
        self.record_format.addItem("MP4 (up to 10 min)", ".mp4")
        self.record_format.setToolTip("Frames go to disk as they arrive; the file is written when you stop")
        self.record_sbs_box = QCheckBox("record input beside output")
        self.sweep_button = _button("Sweep GIF of this edit", "Render the current edit from none to full on the "
                                    "current frame")
        record_row = QHBoxLayout()
        record_row.addWidget(self.record_button)
        record_row.addWidget(self.record_format)
        form.addRow("Record", record_row)
        form.addRow("", self.record_sbs_box)
        form.addRow("", self.sweep_button)
        self.face_indicator = QLabel("—")
        form.addRow("Face", self.face_indicator)

    def _add_sliders(self, form: QFormLayout, edits: tuple[tuple[str, str], ...]) -> None:
        """One disabled slider (-100..100 % of the direction's calibrated range) per edit, enabled by the engine."""
        for name, title in edits:
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(-100, 100)
            slider.setEnabled(False)
            slider.setToolTip("waiting for the engine")
            label = QLabel("0")
            self.edit_sliders[name] = (slider, label)
            form.addRow(title, _with_label(slider, label))

    def settings_changed_signals(self) -> list:
        """The signals of every control that changes LiveSettings."""
        sliders = [slider.valueChanged for slider, _ in self.edit_sliders.values()]
        boxes = [b.toggled for b in (self.target_colours_box, self.your_smile_box, self.smoothing_box, self.reuse_box,
                                     self.skin_box, self.likeness_box)]
        return [self.strength.valueChanged, self.preset.currentIndexChanged, *sliders, *boxes]
