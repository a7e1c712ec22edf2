"""Storage backends behind one seam (``base.BrokerBackend``): in memory with a journal, or Redis.

``factory.open_backend`` picks one from the server's settings; nothing here imports the
client, the server or the worker, so a backend can be tested on its own.
"""
