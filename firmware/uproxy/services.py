# The SERVICE endpoints (docs/protocol.md §7.14): test streams inside the
# device for link tests and benchmarks without Wi-Fi (uartproxy bench).
# They are mux endpoints like the socket ones in conn.py.

ECHO = "echo"
DISCARD = "discard"
SOURCE = "source"

_pattern = None


def source_pattern():
    """Bytes i mod 251 for i in 0 .. 251*10: any 2048-byte window at any
    phase is a slice of it."""
    global _pattern
    if _pattern is None:
        p = bytearray(251 * 10)
        for i in range(251):
            p[i] = i
        one = bytes(p[:251])
        for k in range(1, 10):
            p[251 * k:251 * (k + 1)] = one
        _pattern = bytes(p)
    return _pattern


def service(sess, st, name):
    if name == ECHO:
        return Echo(sess, st)
    if name == DISCARD:
        return Discard(sess, st)
    if name == SOURCE:
        return Source(sess, st)
    return None


class Discard:
    def __init__(self, sess, st):
        self.sess, self.st = sess, st

    def on_data(self, mv):
        return len(mv)

    def on_fin(self):
        self.sess.eof(self.st)

    def ready(self):
        return False

    def read_into(self, mv):
        return 0

    def close(self):
        pass


class Echo(Discard):
    # Credit comes back only once the bytes have been echoed, so the
    # buffer is bounded by the stream window (§7.14).
    def __init__(self, sess, st):
        Discard.__init__(self, sess, st)
        self.buf = bytearray()
        self.fin = False

    def on_data(self, mv):
        self.buf.extend(mv)
        return 0

    def on_fin(self):
        self.fin = True

    def ready(self):
        return bool(self.buf) or self.fin

    def read_into(self, mv):
        n = min(len(mv), len(self.buf))
        if n == 0:
            return -1 if self.fin else 0
        mv[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        self.sess.consumed(self.st, n)
        return n


class Source(Discard):
    def __init__(self, sess, st):
        Discard.__init__(self, sess, st)
        self.pat = source_pattern()
        self.stop = False

    def on_fin(self):
        self.stop = True

    def ready(self):
        return True

    def read_into(self, mv):
        if self.stop:
            return -1
        n = min(len(mv), 251 * 9)
        o = self.st.sent % 251
        mv[:n] = memoryview(self.pat)[o:o + n]
        return n
