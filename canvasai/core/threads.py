"""Background threads yield the CPU to the GUI thread.

On a machine with few cores, a job's threads (torch's and OpenCV's compute pools, a model
load, a big resample) keep every core busy, and the GUI thread, as one more runnable
thread of equal weight, waited up to ~90-300 ms for a core (measured with
`benchmarks/editing.py` on 2 cores). A thread that does background work calls
`background_priority()` once before its heavy work: on Linux its nice value goes up by
`BACKGROUND_NICE`, and the compute pools it starts afterwards inherit that. The work
runs at full speed whenever the GUI is idle; it only gives way while the GUI needs a
core. Elsewhere (and where the OS refuses) nothing changes.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

BACKGROUND_NICE = 5  # CFS weight 335 against the GUI thread's 1024

_state = threading.local()  # per thread: lowered already (ids are reused, flags are not)


def background_priority() -> bool:
    """Lower the calling thread's CPU priority to `BACKGROUND_NICE` below the GUI (main)
    thread's (Linux: per-thread nice). Once per thread; True if it is that low now. Does
    nothing on the GUI thread."""
    if not sys.platform.startswith("linux") or threading.current_thread() is threading.main_thread():
        return False
    if getattr(_state, "lowered", False):
        return True
    tid = threading.get_native_id()
    try:
        # relative to the GUI (main) thread: a thread started by a lowered one inherits
        # its nice value already, and is not lowered a second time
        target = min(19, os.getpriority(os.PRIO_PROCESS, threading.main_thread().native_id)
                     + BACKGROUND_NICE)
        if os.getpriority(os.PRIO_PROCESS, tid) < target:
            os.setpriority(os.PRIO_PROCESS, tid, target)
    except (OSError, AttributeError, TypeError):
        log.debug("could not lower this thread's priority", exc_info=True)
        return False
    _state.lowered = True
    return True
