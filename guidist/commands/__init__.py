"""The command line's shared plumbing and its smaller commands (``guidist.cli`` wires them).

``failures`` (the one-line errors and their exit codes), ``connection`` (where a command
connects), ``help`` (the help format); ``control``, ``inspect_task``, ``workers``, ``watch`` and
``window`` are commands or parts of them. Nothing here imports Qt, numpy or pyqtgraph.
"""
