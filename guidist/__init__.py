"""guidist: a desktop monitor and controller for a multiprocessing.managers task queue."""

__version__ = "0.1.0"
