"""The Qt-free core: server, broker, workers, pool and client (no PySide6, no pyqtgraph)."""
