# Test-only stand-in for MicroPython's micropython module on CPython.


def const(x):
    return x


def alloc_emergency_exception_buf(n):
    pass
