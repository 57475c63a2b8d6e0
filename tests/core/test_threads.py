"""Background threads give way to the GUI thread (per-thread nice on Linux)."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from canvasai.core.threads import BACKGROUND_NICE, background_priority


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_a_background_thread_lowers_only_its_own_priority_once():
    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen = {}

    def work():
        tid = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, tid)
        seen["first"] = background_priority()
        seen["second"] = background_priority()  # once per thread: not lowered twice
        seen["delta"] = os.getpriority(os.PRIO_PROCESS, tid) - before

    def nested():  # a thread a lowered thread starts is not lowered twice
        inner = threading.Thread(target=lambda: seen.update(
            inner=(background_priority(), os.getpriority(os.PRIO_PROCESS,
                                                         threading.get_native_id()))))
        background_priority()
        inner.start()
        inner.join()

    for target in (work, nested):
        t = threading.Thread(target=target)
        t.start()
        t.join()
    assert seen["first"] and seen["second"]
    assert seen["delta"] == min(BACKGROUND_NICE, 19 - main_before)
    assert seen["inner"] == (True, min(19, main_before + BACKGROUND_NICE))
    assert not background_priority()  # never the GUI (main) thread
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before
