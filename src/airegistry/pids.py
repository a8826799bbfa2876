"""Whether a process of this host still exists: how a dead owner is told from a live one.

Import jobs, temporary files of the blob store and training records name the process
that owns them; a reader on the same host that finds the pid gone takes over (or cleans
up) at once instead of waiting for a heartbeat to age.
"""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists (also when it belongs to another user); False for pid <= 0."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
