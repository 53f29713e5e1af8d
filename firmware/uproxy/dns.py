# A small DNS client over one non-blocking UDP socket (docs/protocol.md
# §13.6), so resolving a name never blocks the loop: A and AAAA queries go
# to the network's DNS server (network.WLAN().ifconfig()[3], or the "dns"
# configuration key), answers are read when the socket polls readable, and
# queries are resent every RETRY ms until TIMEOUT.
import os
import socket
import struct

from . import msg as M

try:
    from time import ticks_ms, ticks_diff, ticks_add
except ImportError:  # pragma: no cover
    from time import monotonic as _m

    def ticks_ms():
        return int(_m() * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b

POLLIN = 0x001
A = 1
AAAA = 28
RETRY = 1000
TIMEOUT = 5000
MAX_PENDING = 8
TTL_MIN = 30000
TTL_MAX = 3600000


def _rand16():
    u = getattr(os, "urandom", None)
    if u is not None:
        return struct.unpack("<H", u(2))[0]
    import random
    return random.getrandbits(16)


def valid_name(name):
    if not name or len(name) > 253:
        return False
    for label in name.rstrip(".").split("."):
        if not 0 < len(label) <= 63:
            return False
        for ch in label:
            if not (ch.isalpha() or ch.isdigit() or ch in "-_"):
                return False
    return True


def query(qid, name, qtype):
    """One DNS query message (RFC 1035 §4), recursion desired."""
    out = bytearray(struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0))
    for label in name.rstrip(".").split("."):
        b = label.encode()
        out.append(len(b))
        out.extend(b)
    out.append(0)
    out.extend(struct.pack(">HH", qtype, 1))
    return bytes(out)


def _skip_name(b, i):
    while True:
        if i >= len(b):
            raise ValueError("truncated name")
        n = b[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        if n & 0xC0:
            raise ValueError("bad label")
        i += 1 + n


def ip6_text(b):
    return ":".join("%x" % ((b[i] << 8) | b[i + 1]) for i in range(0, 16, 2))


def parse(b):
    """(id, rcode, [addresses], ttl ms) of a response; ValueError if bad."""
    if len(b) < 12:
        raise ValueError("short")
    qid, flags, qd, an, _, _ = struct.unpack_from(">HHHHHH", b, 0)
    if not flags & 0x8000:
        raise ValueError("not a response")
    i = 12
    for _ in range(qd):
        i = _skip_name(b, i) + 4
    addrs = []
    ttl = TTL_MAX
    for _ in range(an):
        i = _skip_name(b, i)
        if i + 10 > len(b):
            raise ValueError("truncated answer")
        t, c, rttl, n = struct.unpack_from(">HHIH", b, i)
        i += 10
        if i + n > len(b):
            raise ValueError("truncated data")
        if c == 1 and t == A and n == 4:
            addrs.append("%d.%d.%d.%d" % (b[i], b[i + 1], b[i + 2], b[i + 3]))
            ttl = min(ttl, rttl * 1000)
        elif c == 1 and t == AAAA and n == 16:
            addrs.append(ip6_text(b[i:i + 16]))
            ttl = min(ttl, rttl * 1000)
        i += n
    return qid, flags & 0x0F, addrs, max(TTL_MIN, min(ttl, TTL_MAX))


class DnsClient:
    """Resolves names without blocking; the Net polls its socket."""

    def __init__(self, server, port=53, log=None):
        self.server = server
        self.port = port
        self.log = log or (lambda *a: None)
        self.sock = None
        self.addr = None
        self.pending = {}  # name -> entry dict
        self.ids = {}  # query id -> name
        self.queries = 0
        self._socket()

    def _socket(self):
        if self.sock is None:
            ai = socket.getaddrinfo(self.server, self.port, 0, socket.SOCK_DGRAM)[0]
            self.addr = ai[-1]
            s = socket.socket(ai[0], socket.SOCK_DGRAM)
            s.setblocking(False)
            self.sock = s
        return self.sock

    def busy(self):
        return len(self.pending) >= MAX_PENDING

    def resolve(self, name, cb):
        """cb(code, [ip] or reason) from a later on_event or timeouts."""
        e = self.pending.get(name)
        if e is not None:
            e["cbs"].append(cb)
            return True
        if not valid_name(name):
            cb(M.DNS, "invalid name")
            return True
        if self.busy():
            return False  # the caller queues it
        now = ticks_ms()
        e = {"cbs": [cb], "addrs": [], "todo": [A, AAAA], "ttl": TTL_MAX, "rcode": 0,
             "deadline": ticks_add(now, TIMEOUT), "retry": now, "ids": {}}
        self.pending[name] = e
        self._send(name, e, now)
        return True

    def _send(self, name, e, now):
        """(Re)send the queries still unanswered, each with a fresh id."""
        for qid in e["ids"]:
            self.ids.pop(qid, None)
        e["ids"] = {}
        try:
            s = self._socket()
            for qtype in e["todo"]:
                qid = _rand16()
                while qid in self.ids:
                    qid = _rand16()
                e["ids"][qid] = qtype
                self.ids[qid] = name
                s.sendto(query(qid, name, qtype), self.addr)
                self.queries += 1
        except OSError as ex:
            self.log("dns: send: %r" % (ex,))
        e["retry"] = ticks_add(now, RETRY)

    def want(self):
        return POLLIN if self.pending else 0

    def on_event(self, ev):
        for _ in range(8):
            try:
                data, _ = self.sock.recvfrom(1500)
            except OSError:
                return
            if not data:
                return
            self._answer(data)

    def _answer(self, data):
        try:
            qid, rcode, addrs, ttl = parse(data)
        except (ValueError, IndexError):
            return
        name = self.ids.pop(qid, None)
        if name is None:
            return  # late or forged: ignored
        e = self.pending.get(name)
        if e is None:
            return
        qtype = e["ids"].pop(qid, None)
        if qtype is None:
            return
        if qtype in e["todo"]:
            e["todo"].remove(qtype)
        if rcode == 0:
            for a in addrs:
                if a not in e["addrs"]:
                    e["addrs"].append(a)
            e["ttl"] = min(e["ttl"], ttl)
        elif rcode == 3:
            e["rcode"] = 3
        if not e["todo"] or rcode == 3:
            self._finish(name, e)

    def _finish(self, name, e, timed_out=False):
        self.pending.pop(name, None)
        for qid in e["ids"]:
            self.ids.pop(qid, None)
        v4 = [a for a in e["addrs"] if ":" not in a]
        addrs = v4 + [a for a in e["addrs"] if ":" in a]
        if addrs:
            r = (M.OK, addrs, e["ttl"])
        elif timed_out and not e["rcode"]:
            r = (M.TIMEOUT, "no answer from the DNS server", 0)
        else:
            r = (M.DNS, "name not found", 0)
        for cb in e["cbs"]:
            cb(r[0], r[1], r[2])

    def timeouts(self):
        now = ticks_ms()
        for name, e in list(self.pending.items()):
            if ticks_diff(now, e["deadline"]) >= 0:
                self._finish(name, e, True)
            elif ticks_diff(now, e["retry"]) >= 0:
                self._send(name, e, now)

    def next_deadline(self):
        now = ticks_ms()
        t = None
        for e in self.pending.values():
            d = max(0, min(ticks_diff(e["deadline"], now), ticks_diff(e["retry"], now)))
            t = d if t is None else min(t, d)
        return t

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except Exception:
                pass
            self.sock = None
