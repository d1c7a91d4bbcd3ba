"""What every skinoct widget shares: a worker thread with a progress bar, a status line and
a cancel button, and the lookup of layers by name.

Long work runs in a napari worker (``napari.qt.threading.create_worker``) as a
generator that yields ``(done, total, text)``; the viewer is only touched from the
``returned`` callback, on the main thread. Cancel asks the worker to stop at its next
``yield``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Generator
from typing import Any

import napari
import napari.layers
from magicgui.widgets import ComboBox, Container, Label, ProgressBar, PushButton

__all__ = ["WorkerWidget", "layer_choices", "widgets_of"]

#: The skinoct widgets docked in each viewer, by kind (so Fine-tune can reach Segment).
_WIDGETS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def widgets_of(viewer) -> dict[str, Any]:
    """The skinoct widgets created for ``viewer``, by kind (``'segment'``, …)."""
    return _WIDGETS.setdefault(viewer, {})


def layer_choices(viewer, kind: type, *, ndim: tuple[int, ...] = (2, 3)) -> Callable:
    """A ComboBox ``choices`` callable: names of the viewer's layers of ``kind``."""

    def choices(_widget=None) -> list[str]:
        return [
            layer.name
            for layer in viewer.layers
            if isinstance(layer, kind) and layer.ndim in ndim
        ]

    return choices


class WorkerWidget(Container):
    """A magicgui container whose action runs in a worker thread.

    Subclasses build their fields, then call :meth:`_finish_layout`; :meth:`start`
    runs a generator function in a worker with ``on_done`` called on its return value.
    """

    kind = "widget"

    def __init__(self, viewer: napari.viewer.Viewer, **kwargs) -> None:
        super().__init__(**kwargs)
        self.viewer = viewer
        self.worker = None
        self.error: str | None = None
        self.progress = ProgressBar(value=0, min=0, max=1, label="progress", visible=False)
        self.status = Label(value="")
        self.cancel = PushButton(text="Cancel", enabled=False)
        self.cancel.changed.connect(self._cancel)
        widgets_of(viewer)[self.kind] = self
        self._combos: list[ComboBox] = []
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self._refresh_choices)

    def _layer_combo(self, label: str, kind: type, *, ndim=(2, 3)) -> ComboBox:
        combo = ComboBox(label=label, choices=layer_choices(self.viewer, kind, ndim=ndim))
        self._combos.append(combo)
        return combo

    def _refresh_choices(self, _event=None) -> None:
        for combo in self._combos:
            combo.reset_choices()

    def _finish_layout(self) -> None:
        self.extend([self.progress, self.status, self.cancel])

    def layer(self, combo: ComboBox):
        """The layer named by ``combo`` (error when none is chosen)."""
        from skinoct.errors import InputError

        name = combo.value
        if name is None or name not in self.viewer.layers:
            raise InputError(f"choose a layer for '{combo.label}'")
        return self.viewer.layers[name]

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def start(self, work: Callable[[], Generator], on_done: Callable[[Any], None]) -> Any:
        """Run the generator function ``work`` in a worker; ``on_done(result)`` afterwards."""
        from napari.qt.threading import create_worker

        self.error = None
        worker = create_worker(_guarded(work), _start_thread=False)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(lambda result: self._on_returned(result, on_done))
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.progress.visible = True
        self.progress.value = 0
        self.cancel.enabled = True
        self.status.value = "working…"
        worker.start()
        return worker

    def _on_progress(self, update) -> None:
        done, total, text = update
        self.progress.max = max(1, int(total))
        self.progress.value = min(int(done), self.progress.max)
        if text:
            self.status.value = str(text)

    def _on_returned(self, result, on_done: Callable[[Any], None]) -> None:
        if isinstance(result, _Refused):  # a user-caused problem: say it in the status line
            self.error = result.reason
            self.status.value = f"⚠ {result.reason}"
            return
        on_done(result)

    def _on_error(self, exc: BaseException) -> None:
        reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
        self.error = reason
        self.status.value = f"error: {reason}"

    def _on_finished(self) -> None:
        self.worker = None
        self.cancel.enabled = False
        self.progress.visible = False

    def _cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()
            self.status.value = "cancelled"

    def add_layers(self, layers: list, *, replace: bool = True) -> list:
        """Add ``(data, kwargs, type)`` layer data, replacing layers of the same name."""
        added = []
        for data, kwargs, kind in layers:
            name = kwargs.get("name")
            if replace and name in self.viewer.layers:
                self.viewer.layers.remove(name)
            added.append(getattr(self.viewer, f"add_{kind}")(data, **kwargs))
        return added


class _Refused:
    """What a worker returns when the library raised an InputError (bad input, not a bug)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _guarded(work: Callable[[], Generator]) -> Callable[[], Generator]:
    """``work`` with :class:`~skinoct.errors.InputError` turned into a :class:`_Refused`
    result; other exceptions reach napari's error notifications."""
    from skinoct.errors import InputError

    def run():
        try:
            return (yield from work())
        except InputError as exc:
            return _Refused(exc.reason)

    return run


def scale_of(layer) -> tuple[float, ...]:
    """The layer's scale, i.e. its spacing in µm."""
    return tuple(float(s) for s in layer.scale)
