# Test-only: gives CPython the MicroPython additions the firmware uses from
# built-in modules (time.ticks_*, time.sleep_ms, gc.mem_free/mem_alloc).
# Python imports sitecustomize at start-up when it is on PYTHONPATH; the
# firmware itself is run unmodified. Never copied to a board.
import gc
import time

_T0 = time.monotonic_ns()
_PERIOD = 1 << 30  # MicroPython's ticks wrap; so do these


def ticks_ms():
    return ((time.monotonic_ns() - _T0) // 1000000) % _PERIOD


def ticks_us():
    return ((time.monotonic_ns() - _T0) // 1000) % _PERIOD


def ticks_add(t, d):
    return (t + d) % _PERIOD


def ticks_diff(a, b):
    return ((a - b + _PERIOD // 2) % _PERIOD) - _PERIOD // 2


def sleep_ms(n):
    time.sleep(n / 1000)


for _name, _f in (("ticks_ms", ticks_ms), ("ticks_us", ticks_us), ("ticks_add", ticks_add),
                  ("ticks_diff", ticks_diff), ("sleep_ms", sleep_ms)):
    if not hasattr(time, _name):
        setattr(time, _name, _f)

if not hasattr(gc, "mem_free"):
    # An ESP32-C3's heap after boot, so the firmware's memory budget
    # picks the values it would pick on the board.
    gc.mem_free = lambda: 160 * 1024
    gc.mem_alloc = lambda: 40 * 1024
