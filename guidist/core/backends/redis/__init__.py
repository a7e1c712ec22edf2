"""The Redis broker (``broker.RedisBroker``), its Lua scripts, and a direct connection to it.

Needs the optional ``redis`` package (``pip install 'guidist[redis]'``).
"""
