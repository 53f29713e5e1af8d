# SLIP framing (RFC 1055) as docs/protocol.md §2 defines it. Escaping and
# unescaping use bytes.replace/find, which run in C; the byte loop runs only
# for damaged frames (a bad escape).

END = 0xC0
ESC = 0xDB
_END = b"\xc0"
_ESC = b"\xdb"


def escape(frame):
    """Return frame (bytes-like) SLIP-escaped, without the END bytes."""
    b = bytes(frame)
    if b.find(_ESC) < 0 and b.find(_END) < 0:
        return b
    # ESC first, then END: the order matters.
    return b.replace(_ESC, b"\xdb\xdd").replace(_END, b"\xdb\xdc")


def encode(frame):
    """END, escaped frame, END (§2.2)."""
    return _END + escape(frame) + _END


def write(w, buf, n):
    """Send buf[:n] SLIP-encoded through w(bytes-like); no copy when the
    frame has nothing to escape."""
    mv = memoryview(buf)[:n]
    if buf.find(_END, 0, n) < 0 and buf.find(_ESC, 0, n) < 0:
        w(_END)
        w(mv)
        w(_END)
    else:
        w(_END + bytes(mv).replace(_ESC, b"\xdb\xdd").replace(_END, b"\xdb\xdc") + _END)


class Decoder:
    """Turns bytes into frames (§2.3). limit counts decoded bytes."""

    def __init__(self, limit):
        self.limit = limit
        self.buf = bytearray()
        self.scan = 0  # bytes of buf already searched for END
        self.skipping = False  # discarding an over-long frame up to the next END
        self.too_long = 0
        self.bad_escapes = 0

    def feed(self, data, on_frame, on_drop=None):
        """Add data; call on_frame(bytes) for each complete frame and
        on_drop("too_long") for each discarded one."""
        buf = self.buf
        buf.extend(data)
        start = 0
        i = buf.find(_END, self.scan)
        while i >= 0:
            if self.skipping:
                self.skipping = False
            elif i > start:
                self._frame(bytes(buf[start:i]), on_frame, on_drop)
            start = i + 1
            i = buf.find(_END, start)
        if start:
            buf = self.buf = buf[start:]  # MicroPython: no `del buf[:n]`
        self.scan = len(buf)
        # An escaped frame is at most twice its decoded size.
        if not self.skipping and len(buf) > 2 * self.limit:
            self.skipping = True
            self._drop(on_drop)
        if self.skipping and buf:
            self.buf = bytearray()
            self.scan = 0

    def _drop(self, on_drop):
        self.too_long += 1
        if on_drop:
            on_drop("too_long")

    def _frame(self, raw, on_frame, on_drop):
        n = raw.count(_ESC)
        if n == 0:
            f = raw
        elif n == raw.count(b"\xdb\xdc") + raw.count(b"\xdb\xdd"):
            # END escape first, then ESC escape: the order matters.
            f = raw.replace(b"\xdb\xdc", _END).replace(b"\xdb\xdd", _ESC)
        else:
            f = self._slow(raw)
        if len(f) > self.limit:
            self._drop(on_drop)
            return
        on_frame(f)

    def _slow(self, raw):
        # A damaged frame (RFC 1055 behaviour): ESC + other keeps the other
        # byte; ESC right before END is dropped. The CRC rejects the frame.
        out = bytearray()
        esc = False
        for b in raw:
            if esc:
                esc = False
                if b == 0xDC:
                    b = END
                elif b == 0xDD:
                    b = ESC
                else:
                    self.bad_escapes += 1
            elif b == ESC:
                esc = True
                continue
            out.append(b)
        if esc:
            self.bad_escapes += 1
        return bytes(out)
