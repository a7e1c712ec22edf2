"""The submit panel: pick a task, say how its arguments are made, enqueue with progress."""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..state import SubmitOutcome, SubmitProgress
from ..style import fmt_int, muted
from ..submission import (
    FIELD_COUNT,
    FIELD_FUNCTION,
    FIELD_HIGH,
    FIELD_JOB,
    FIELD_LOW,
    FIELD_ROWS,
    FIELD_START,
    FIELD_VALUE,
    MAX_TASKS,
    MODE_FIXED,
    MODE_RANDOM,
    MODE_RANGE,
    MODE_ROWS,
    MODES,
    PRESETS,
    InputError,
    SubmitJob,
    build_job,
    check_job_field,
)
from ..widgets import ErrorLabel, HintLabel

_PAGES = {MODE_FIXED: 0, MODE_RANGE: 1, MODE_RANDOM: 2, MODE_ROWS: 3}


class SubmitPanel(QGroupBox):
    """Builds a SubmitJob from the fields; nothing is sent until every field is valid."""

    #: SubmitJob: validated, ready to queue.
    submit_requested = Signal(object)
    #: The person pressed Cancel during a submission.
    cancel_requested = Signal()
    #: str: the key of the preset now chosen (the workers panel's hint follows it).
    preset_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Submit tasks", parent)
        self.setObjectName("submitPanel")
        self._connected = False
        self._submitting = False
        self._rows_path: str | None = None
        self._values: dict[str, dict[str, str]] = {}  # per preset: what the person typed
        self._shown_preset: str | None = None

        self.preset_combo = QComboBox()
        self.preset_combo.setObjectName("taskPresetCombo")
        for p in PRESETS.values():
            self.preset_combo.addItem(p.label, p.key)
        self.preset_combo.setToolTip("What each task runs")
        self.function_edit = QLineEdit()
        self.function_edit.setObjectName("customFunctionEdit")
        self.function_edit.setPlaceholderText("package.module:function")
        self.function_edit.setToolTip("Any function the workers can import, e.g. "
                                      "mypkg.jobs:resize")
        self.help_label = HintLabel()
        self.help_label.setObjectName("presetHelpLabel")
        self.help_label.setWordWrap(True)
        # A wrapped label in a form row does not get its height for the width it ends up
        # with; reserve two lines so the text is never clipped.
        self.help_label.setMinimumHeight(2 * self.help_label.fontMetrics().lineSpacing() + 2)

        self.mode_combo = QComboBox()
        self.mode_combo.setObjectName("argsModeCombo")
        for key, label in MODES.items():
            self.mode_combo.addItem(label, key)
        self.count_spin = QSpinBox()
        self.count_spin.setObjectName("taskCountSpin")
        self.count_spin.setRange(1, MAX_TASKS)
        self.count_spin.setValue(100)
        self.count_spin.setGroupSeparatorShown(True)
        self.count_spin.setAccelerated(True)
        self.count_spin.setToolTip(f"How many tasks to queue (up to {MAX_TASKS:,})")
        self.job_edit = QLineEdit()
        self.job_edit.setObjectName("jobNameEdit")
        self.job_edit.setPlaceholderText("optional: a name to follow them by")
        self.job_edit.setToolTip("The job these tasks join, shown in the Jobs panel; the same "
                                 "name again adds to it. Empty: a job named after the task "
                                 "and the time.")

        # One page of argument fields per mode.
        self.value_edit = QLineEdit()
        self.value_edit.setObjectName("taskValueEdit")
        self.value_edit.setToolTip("A Python literal: 7, 0.5, 'text', or [1, 2] for two "
                                   "arguments; empty for none")
        self.start_edit = QLineEdit()
        self.start_edit.setObjectName("rangeStartEdit")
        self.start_edit.setToolTip("The first n; the tasks get n, n+1, n+2, …")
        self.range_end_label = HintLabel()
        self.low_edit = QLineEdit()
        self.low_edit.setObjectName("randomLowEdit")
        self.high_edit = QLineEdit()
        self.high_edit.setObjectName("randomHighEdit")
        for e in (self.low_edit, self.high_edit):
            e.setToolTip("Whole numbers give random whole numbers; a decimal point gives "
                         "random decimals")
        self.rows_edit = QPlainTextEdit()
        self.rows_edit.setObjectName("rowsTextEdit")
        self.rows_edit.setPlaceholderText("One task per line:\n7\n[3, 4]\n{\"args\": [2], "
                                          "\"kwargs\": {\"x\": 1}}\n1, 'a'")
        self.rows_edit.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.rows_edit.setMaximumHeight(90)
        self.load_button = QPushButton("Load file…")
        self.load_button.setObjectName("rowsLoadButton")
        self.load_button.setToolTip("CSV (one task per row) or JSON lines (one value, list or "
                                    "{\"args\", \"kwargs\"} object per line)")
        self.load_button.clicked.connect(self._on_load_clicked)
        self.file_label = QLabel()
        self.file_label.setObjectName("rowsFileLabel")
        self.clear_file_button = QToolButton()
        self.clear_file_button.setText("✕")
        self.clear_file_button.setToolTip("Use the pasted text instead of the file")
        self.clear_file_button.clicked.connect(lambda: self.set_rows_file(None))

        self.stack = QStackedWidget()
        fixed = QWidget()
        f = QFormLayout(fixed)
        f.setContentsMargins(0, 0, 0, 0)
        f.addRow("Value", self.value_edit)
        rng = QWidget()
        f = QFormLayout(rng)
        f.setContentsMargins(0, 0, 0, 0)
        start_row = QHBoxLayout()
        start_row.addWidget(self.start_edit, 1)
        start_row.addWidget(self.range_end_label)
        f.addRow("From", start_row)
        rnd = QWidget()
        f = QFormLayout(rnd)
        f.setContentsMargins(0, 0, 0, 0)
        bounds = QHBoxLayout()
        bounds.addWidget(self.low_edit)
        bounds.addWidget(QLabel("to"))
        bounds.addWidget(self.high_edit)
        f.addRow("Between", bounds)
        rows = QWidget()
        v = QVBoxLayout(rows)
        v.setContentsMargins(0, 0, 0, 0)
        v.addWidget(self.rows_edit)
        file_row = QHBoxLayout()
        file_row.addWidget(self.load_button)
        file_row.addWidget(self.file_label, 1)
        file_row.addWidget(self.clear_file_button)
        v.addLayout(file_row)
        for page in (fixed, rng, rnd, rows):
            self.stack.addWidget(page)

        self.summary_label = QLabel()
        self.summary_label.setObjectName("submitSummaryLabel")
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextFormat(Qt.TextFormat.RichText)
        self.error_label = ErrorLabel()
        self.error_label.setObjectName("submitErrorLabel")

        self.enqueue_button = QPushButton("Enqueue")
        self.enqueue_button.setObjectName("enqueueButton")
        self.enqueue_button.setDefault(True)
        self.enqueue_button.setToolTip("Queue the tasks (Ctrl+Enter)")
        self.enqueue_button.clicked.connect(self.request_submit)
        self.progress = QProgressBar()
        self.progress.setObjectName("submitProgressBar")
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("submitCancelButton")
        self.cancel_button.setToolTip("Stop after the chunk being sent (what was sent stays "
                                      "queued)")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.progress.hide()
        self.cancel_button.hide()

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Task", self.preset_combo)
        form.addRow(self.help_label)
        form.addRow("Function", self.function_edit)
        form.addRow("Arguments", self.mode_combo)
        form.addRow("Tasks", self.count_spin)
        form.addRow("Job", self.job_edit)
        self._form = form
        buttons = QHBoxLayout()
        buttons.addWidget(self.enqueue_button)
        buttons.addWidget(self.progress, 1)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.stack)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.error_label)
        layout.addLayout(buttons)
        layout.addStretch(1)

        self.preset_combo.currentIndexChanged.connect(self._on_preset_changed)
        self.mode_combo.currentIndexChanged.connect(self._on_mode_changed)
        for e in (self.value_edit, self.start_edit, self.low_edit, self.high_edit,
                  self.function_edit, self.job_edit):
            e.textChanged.connect(self._on_input_changed)
            e.returnPressed.connect(self.request_submit)
        self.count_spin.valueChanged.connect(self._on_input_changed)
        self.rows_edit.textChanged.connect(self._on_input_changed)
        self._on_preset_changed()
        self.set_file_label()
        self._update_enabled()

    # -- state

    @property
    def preset(self) -> str:
        """The key of the chosen preset."""
        return str(self.preset_combo.currentData())

    @property
    def mode(self) -> str:
        """How arguments are made (fixed, range, random, rows)."""
        return str(self.mode_combo.currentData())

    def set_preset(self, key: str) -> None:
        """Choose a preset by key."""
        i = self.preset_combo.findData(key)
        if i >= 0:
            self.preset_combo.setCurrentIndex(i)

    def set_mode(self, mode: str) -> None:
        """Choose how arguments are made."""
        i = self.mode_combo.findData(mode)
        if i >= 0:
            self.mode_combo.setCurrentIndex(i)

    def set_rows_file(self, path: str | None) -> None:
        """Read the tasks from this file (None: from the pasted text)."""
        self._rows_path = path
        self.set_file_label()
        self._on_input_changed()

    def set_file_label(self) -> None:
        """Show which file is loaded."""
        if self._rows_path:
            self.file_label.setText(Path(self._rows_path).name)
            self.file_label.setToolTip(self._rows_path)
        else:
            self.file_label.setText(f"<span style='color:{muted()}'>or paste above</span>")
            self.file_label.setToolTip("")
        self.clear_file_button.setVisible(bool(self._rows_path))
        self.rows_edit.setEnabled(not self._rows_path)

    def set_connected(self, connected: bool) -> None:
        """Enqueue only while a server answers."""
        self._connected = connected
        self._update_enabled()

    def build(self) -> SubmitJob:
        """The job the fields describe; raises InputError naming the field."""
        job = build_job(self.preset, mode=self.mode, count=self.count_spin.value(),
                        function=self.function_edit.text(), value=self.value_edit.text(),
                        start=self.start_edit.text(), low=self.low_edit.text(),
                        high=self.high_edit.text(), rows_text=self.rows_edit.toPlainText(),
                        rows_path=self._rows_path)
        return dataclasses.replace(job, job_name=check_job_field(self.job_edit.text()))

    def request_submit(self) -> None:
        """Validate and ask for the job to be queued; bad input is shown, nothing is sent."""
        if self._submitting or not self.enqueue_button.isEnabled():
            if not self._connected:
                self.error_label.show_error("Start the server (or attach to one) first.")
            return
        try:
            job = self.build()
        except InputError as exc:
            self.show_error(str(exc), exc.field)
            return
        self.error_label.clear_error()
        self.submit_requested.emit(job)

    def show_error(self, message: str, field: str | None = None) -> None:
        """A message next to the form, the field outlined."""
        widget = {FIELD_FUNCTION: self.function_edit, FIELD_COUNT: self.count_spin,
                  FIELD_VALUE: self.value_edit, FIELD_START: self.start_edit,
                  FIELD_LOW: self.low_edit, FIELD_HIGH: self.high_edit,
                  FIELD_ROWS: self.rows_edit if not self._rows_path else self.load_button,
                  FIELD_JOB: self.job_edit}.get(field or "")
        self.error_label.show_error(message, widget)

    def on_submit_started(self, job: SubmitJob) -> None:
        """A submission is under way: show progress and Cancel."""
        self._submitting = True
        total = job.total
        self.progress.setRange(0, total if total else 0)
        self.progress.setValue(0)
        self.progress.setFormat("%v / %m" if total else "reading…")
        self.progress.show()
        self.cancel_button.show()
        self.cancel_button.setEnabled(True)
        self._update_enabled()

    def on_progress(self, p: SubmitProgress) -> None:
        """Tasks sent so far."""
        if p.total:
            if self.progress.maximum() != p.total:
                self.progress.setRange(0, p.total)
            self.progress.setFormat(f"{fmt_int(p.sent)} / {fmt_int(p.total)}")
        self.progress.setValue(min(p.sent, self.progress.maximum()))

    def on_finished(self, outcome: SubmitOutcome) -> None:
        """The submission ended: hide progress; show the error next to its field."""
        self._submitting = False
        self.progress.hide()
        self.cancel_button.hide()
        self._update_enabled()
        if outcome.error:
            self.show_error(outcome.error, outcome.field)

    def on_cancel_pressed(self) -> None:
        """Cancel was pressed; the submit thread stops after the chunk in flight."""
        self.cancel_button.setEnabled(False)
        self.progress.setFormat("cancelling…")

    # -- settings

    def save_settings(self, settings: QSettings) -> None:
        """Remember the preset, the mode and what was typed."""
        self._remember_values()
        settings.setValue("submit/preset", self.preset)
        settings.setValue("submit/count", self.count_spin.value())
        for key, values in self._values.items():
            for name, text in values.items():
                settings.setValue(f"submit/{key}/{name}", text)
        settings.setValue("submit/function", self.function_edit.text())

    def restore_settings(self, settings: QSettings) -> None:
        """Bring back what save_settings stored."""
        for key in PRESETS:
            stored = {name: settings.value(f"submit/{key}/{name}")
                      for name in ("mode", "value", "start", "low", "high")}
            values = {k: str(v) for k, v in stored.items() if v is not None}
            if values:
                self._values[key] = values
        self.function_edit.setText(str(settings.value("submit/function", "") or ""))
        try:
            self.count_spin.setValue(int(settings.value("submit/count", 100)))
        except (TypeError, ValueError):
            pass
        preset = str(settings.value("submit/preset", "square") or "square")
        if preset not in PRESETS:
            preset = "square"
        self._shown_preset = None  # the fields still hold defaults: do not store them
        if preset == self.preset:
            self._load_values(preset)
            self._shown_preset = preset
        else:
            self.set_preset(preset)

    # -- slots

    def _remember_values(self) -> None:
        self._values[self.preset] = {"mode": self.mode, "value": self.value_edit.text(),
                                     "start": self.start_edit.text(),
                                     "low": self.low_edit.text(), "high": self.high_edit.text()}

    def _load_values(self, key: str) -> None:
        p = PRESETS[key]
        v = self._values.get(key, {})
        self.value_edit.setText(v.get("value", p.value))
        self.start_edit.setText(v.get("start", p.start))
        self.low_edit.setText(v.get("low", p.low))
        self.high_edit.setText(v.get("high", p.high))
        self.set_mode(v.get("mode", p.mode))
        self.help_label.setText(p.help)
        custom = p.function is None
        self.function_edit.setVisible(custom)
        self._form.labelForField(self.function_edit).setVisible(custom)
        self._on_mode_changed()

    def _on_preset_changed(self) -> None:
        previous = self._shown_preset
        if previous is not None and previous != self.preset:
            self._values[previous] = {"mode": self.mode, "value": self.value_edit.text(),
                                      "start": self.start_edit.text(),
                                      "low": self.low_edit.text(),
                                      "high": self.high_edit.text()}
        self._shown_preset = self.preset
        self._load_values(self.preset)
        self.preset_changed.emit(self.preset)

    def _on_mode_changed(self) -> None:
        current = _PAGES.get(self.mode, 0)
        # A stacked widget is as tall as its tallest page; let only the shown page count.
        for i in range(self.stack.count()):
            policy = QSizePolicy.Policy.Preferred if i == current else \
                QSizePolicy.Policy.Ignored
            self.stack.widget(i).setSizePolicy(QSizePolicy.Policy.Preferred, policy)
        self.stack.setCurrentIndex(current)
        self.stack.adjustSize()
        rows = self.mode == MODE_ROWS
        self.count_spin.setEnabled(not rows)
        self._on_input_changed()

    def _on_input_changed(self) -> None:
        self.error_label.clear_error()
        self.summary_label.setText(self._preview())

    def _preview(self) -> str:
        """What Enqueue would queue; a call that would not validate is not previewed (it kept
        showing "square(abc)" as if that were fine)."""
        summary = html.escape(self._summary())
        if self.mode == MODE_ROWS and self._rows_path:
            return summary  # a file is read only when queueing
        try:
            self.build()
        except InputError as exc:
            return (f"<span style='color:{muted()}'>Nothing to queue yet: "
                    f"{html.escape(str(exc))}</span>")
        return summary

    def _summary(self) -> str:
        count = self.count_spin.value()
        p = PRESETS[self.preset]
        fn = p.function or (self.function_edit.text().strip() or "function")
        if self.mode == MODE_RANGE:
            try:
                first = int(self.start_edit.text().strip())
            except ValueError:
                self.range_end_label.setText("")
                return ""
            self.range_end_label.setText(f"to {first + count - 1:,}")
            return f"Queues {count:,} tasks: {fn}({first:,}) … {fn}({first + count - 1:,})"
        if self.mode == MODE_FIXED:
            value = self.value_edit.text().strip()
            return f"Queues {count:,} × {fn}({value})"
        if self.mode == MODE_RANDOM:
            return (f"Queues {count:,} × {fn}(x), x random between "
                    f"{self.low_edit.text().strip()} and {self.high_edit.text().strip()}")
        if self._rows_path:
            return f"Queues one {fn} task per line of {Path(self._rows_path).name}"
        lines = sum(1 for line in self.rows_edit.toPlainText().splitlines() if line.strip())
        return f"Queues {lines:,} {fn} task(s), one per line"

    def _on_load_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Load task arguments", "",
            "Task files (*.csv *.jsonl *.json *.txt);;All files (*)")
        if path:
            self.set_rows_file(path)

    def _update_enabled(self) -> None:
        self.enqueue_button.setEnabled(self._connected and not self._submitting)
        self.enqueue_button.setToolTip(
            "Queue the tasks (Ctrl+Enter)" if self._connected
            else "Start the server (or attach to one) to queue tasks")
