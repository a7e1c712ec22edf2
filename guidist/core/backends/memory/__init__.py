"""The in-memory broker (``broker.Broker``) and its SQLite journal (``journal``)."""
