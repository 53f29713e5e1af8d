# Test-only stand-in for MicroPython's machine module on CPython: UART on
# a pseudo-terminal (the path in UPROXY_SHIM_UART), WDT, Pin. Never copied
# to a board.
import fcntl
import os
import select
import struct
import termios
import tty


class UART:
    RTS = 1
    CTS = 2

    def __init__(self, id, baudrate=115200, **kw):
        path = os.environ["UPROXY_SHIM_UART"]
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.id = id
        self.baudrate = baudrate
        self.flow = kw.get("flow", 0)
        self.kw = kw
        self.written = 0

    def init(self, baudrate=None, **kw):
        # A pty ignores the rate; remember it for tests that look.
        if baudrate:
            self.baudrate = baudrate
        if "flow" in kw:
            self.flow = kw["flow"]

    def fileno(self):
        return self.fd

    def any(self):
        b = fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0")
        return struct.unpack("i", b)[0]

    def read(self, n=-1):
        try:
            b = os.read(self.fd, n if n and n > 0 else 65536)
        except BlockingIOError:
            return None
        return b or None

    def readinto(self, buf, n=None):
        n = len(buf) if n is None else n
        try:
            b = os.read(self.fd, n)
        except BlockingIOError:
            return None
        if not b:
            return None
        buf[:len(b)] = b
        return len(b)

    def write(self, b):
        # Like the board's driver: block until the bytes are queued.
        mv = memoryview(bytes(b))
        while mv:
            try:
                n = os.write(self.fd, mv)
                mv = mv[n:]
                self.written += n
            except BlockingIOError:
                select.select([], [self.fd], [], 1.0)
        return len(b)

    def txdone(self):
        return True

    def deinit(self):
        os.close(self.fd)


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout

    def feed(self):
        pass


class Pin:
    IN = 0
    OUT = 1

    def __init__(self, n, mode=IN, value=None):
        self.n = n
        self.v = value or 0

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v


def reset():
    raise SystemExit("machine.reset()")


def unique_id():
    return b"\x01\x02\x03\x04\x05\x06"
