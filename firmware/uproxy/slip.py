# SLIP framing (RFC 1055) as docs/protocol.md §2 defines it.
#
# Hot path without per-byte Python loops and without allocating per frame
# (§13.4): bytes are accumulated in a preallocated buffer, ENDs found with
# bytearray.find (C), escapes located with find and the runs between them
# copied by slice assignment (memcpy), so Python code runs once per escape
# (about 16 in a 2 KiB frame of random data), not once per byte.

END = 0xC0
ESC = 0xDB
_END = b"\xc0"
_ESC = b"\xdb"


def encode(frame):
    """END, escaped frame, END (§2.2), as a new bytes object."""
    if not isinstance(frame, (bytes, bytearray)):
        frame = bytes(frame)
    out = bytearray(2 * len(frame) + 2)
    n = encode_into(frame, len(frame), out)
    return bytes(out[:n])


def encode_into(src, n, dst):
    """SLIP-encode src[:n] into the bytearray dst (at least 2n+2 bytes);
    return the encoded length."""
    mv = memoryview(src)
    dst[0] = END
    o = 1
    p = 0
    a = src.find(_END, 0, n)  # next END and ESC at or after p; -1: none left
    b = src.find(_ESC, 0, n)
    while a >= 0 or b >= 0:
        if b < 0 or (0 <= a < b):
            e, esc = a, 0xDC
        else:
            e, esc = b, 0xDD
        k = e - p
        if k:
            dst[o:o + k] = mv[p:e]
            o += k
        dst[o] = ESC
        dst[o + 1] = esc
        o += 2
        p = e + 1
        if esc == 0xDC:
            a = src.find(_END, p, n)
        else:
            b = src.find(_ESC, p, n)
    k = n - p
    dst[o:o + k] = mv[p:n]
    o += k
    dst[o] = END
    return o + 1


def write(w, buf, n):
    """Send buf[:n] SLIP-encoded through w(bytes-like), allocating only the
    escaped copy when there is something to escape (tests and tools)."""
    w(encode(memoryview(buf)[:n]))


class Decoder:
    """Turns bytes into frames (§2.3). limit counts decoded bytes.

    Frames are handed to on_frame as a memoryview of a buffer the decoder
    reuses: the receiver must copy what it keeps past the call.
    """

    def __init__(self, limit, chunk=4096):
        self.limit = limit
        # Accumulated raw bytes: an escaped frame is at most 2*limit, plus
        # one read's worth.
        self.acc = bytearray(2 * limit + 2 + chunk)
        self.accmv = memoryview(self.acc)
        self.n = 0
        self.scan = 0  # acc[:scan] holds no END
        self.out = bytearray(limit)
        self.outmv = memoryview(self.out)
        self.skipping = False  # discarding an over-long frame up to the next END
        self.too_long = 0
        self.bad_escapes = 0

    def feed(self, data, on_frame, on_drop=None):
        """Add data; call on_frame(memoryview) for each complete frame and
        on_drop("too_long") for each discarded one."""
        mv = memoryview(data)
        while len(mv):
            room = len(self.acc) - self.n
            k = min(room, len(mv))
            self.acc[self.n:self.n + k] = mv[:k]
            self.n += k
            mv = mv[k:]
            self._frames(on_frame, on_drop)

    def _frames(self, on_frame, on_drop):
        acc = self.acc
        n = self.n
        start = 0
        i = acc.find(_END, self.scan, n)
        while i >= 0:
            if self.skipping:
                self.skipping = False
            elif i > start:
                self._frame(start, i, on_frame, on_drop)
            start = i + 1
            i = acc.find(_END, start, n)
        rem = n - start
        if start and rem:
            acc[0:rem] = bytes(self.accmv[start:n])
        self.n = rem
        self.scan = rem
        # An escaped frame is at most twice its decoded size.
        if not self.skipping and rem > 2 * self.limit:
            self.skipping = True
            self._drop(on_drop)
        if self.skipping:
            self.n = self.scan = 0

    def _drop(self, on_drop):
        self.too_long += 1
        if on_drop:
            on_drop("too_long")

    def _frame(self, p, end, on_frame, on_drop):
        acc = self.acc
        src = self.accmv
        out = self.out
        limit = self.limit
        o = 0
        while True:
            e = acc.find(_ESC, p, end)
            stop = end if e < 0 else e
            k = stop - p
            if o + k > limit:
                self._drop(on_drop)
                return
            if k:
                out[o:o + k] = src[p:stop]
                o += k
            if e < 0:
                break
            if e + 1 >= end:  # ESC right before END: dropped (§2.3)
                self.bad_escapes += 1
                break
            c = acc[e + 1]
            if c == 0xDC:
                c = END
            elif c == 0xDD:
                c = ESC
            else:
                self.bad_escapes += 1  # keep the byte; the CRC rejects the frame
            if o >= limit:
                self._drop(on_drop)
                return
            out[o] = c
            o += 1
            p = e + 2
        on_frame(self.outmv[:o])
