"""The desktop window: the only package that imports PySide6 and pyqtgraph.

``app.main`` is the composition root; ``controller.Controller`` owns every connection and runs
all blocking work on its own threads; the widgets in ``main_window`` and ``panels`` only react to
its signals.
"""
