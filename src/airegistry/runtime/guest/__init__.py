"""The code that runs *inside* a worker process (the guest side of the function runtime).

Started as ``python -I -B .../runtime/worker.py``: the entry script loads this package by path
under the name ``airegistry_guest``, so a worker never imports the rest of ``airegistry`` (less
attack surface, faster start). Every module here therefore imports only the standard library,
msgspec and its siblings (relatively). The parent imports :mod:`.frames` from here too.
"""
