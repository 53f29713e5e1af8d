# Network helpers (errno to protocol codes, address handling) and name
# resolution (docs/protocol.md §10, §13.6). The socket endpoints are in
# conn.py.
#
# MicroPython and CPython differ in small ways that are handled in the
# firmware, not in shims: MicroPython sockets read with readinto/write and
# return None when they would block, CPython ones use recv_into/send and
# raise; poll returns objects on MicroPython and file descriptors on CPython.
import errno
import socket

from . import msg as M

try:
    from time import ticks_ms, ticks_diff, ticks_add
except ImportError:  # pragma: no cover
    from time import monotonic as _mono

    def ticks_ms():
        return int(_mono() * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b

POLLIN = 0x001
POLLOUT = 0x004
POLLERR = 0x008
POLLHUP = 0x010

EINPROGRESS = getattr(errno, "EINPROGRESS", 115)
EALREADY = getattr(errno, "EALREADY", 114)
EISCONN = getattr(errno, "EISCONN", 106)
EAGAIN = getattr(errno, "EAGAIN", 11)
EWOULDBLOCK = getattr(errno, "EWOULDBLOCK", EAGAIN)

# errno -> code (§10). Names that a port lacks are skipped.
_CODES = {}
for _name, _code in (
        ("ECONNREFUSED", M.REFUSED), ("EHOSTUNREACH", M.UNREACHABLE),
        ("ENETUNREACH", M.UNREACHABLE), ("ENETDOWN", M.UNREACHABLE),
        ("ETIMEDOUT", M.TIMEOUT), ("EMFILE", M.LIMIT), ("ENFILE", M.LIMIT),
        ("ENOBUFS", M.LIMIT), ("EADDRINUSE", M.IN_USE), ("EACCES", M.DENIED),
        ("EPERM", M.DENIED), ("ECONNRESET", M.RESET_BY_PEER), ("EPIPE", M.RESET_BY_PEER),
        ("ENOTCONN", M.RESET_BY_PEER), ("ECONNABORTED", M.RESET_BY_PEER),
        ("ENOMEM", M.NO_MEMORY), ("EADDRNOTAVAIL", M.UNREACHABLE)):
    if hasattr(errno, _name):
        _CODES[getattr(errno, _name)] = _code
# lwIP numbers, for ports whose errno module lacks a name.
_CODES.setdefault(111, M.REFUSED)
_CODES.setdefault(113, M.UNREACHABLE)
_CODES.setdefault(104, M.RESET_BY_PEER)
_CODES.setdefault(112, M.IN_USE)  # lwIP EADDRINUSE
_CODES.setdefault(98, M.IN_USE)


def code_of(e):
    """Map an exception to a code of §10 (§13.8)."""
    if isinstance(e, MemoryError):
        return M.NO_MEMORY
    if isinstance(e, OSError):
        n = e.args[0] if e.args else 0
        if type(n) is int:
            if n < 0:  # mbedTLS errors surface as negative numbers
                return M.TLS
            return _CODES.get(n, M.INTERNAL)
    return M.INTERNAL


def would_block(e):
    if type(e).__name__ in ("SSLWantReadError", "SSLWantWriteError", "BlockingIOError"):
        return True
    n = e.args[0] if e.args else 0
    return n in (EAGAIN, EWOULDBLOCK, EINPROGRESS)


def is_ip(host):
    if ":" in host:
        return True  # IPv6 literal: getaddrinfo does not look it up
    parts = host.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p.isdigit() or int(p) > 255:
            return False
    return True


def close_quietly(s):
    if s is not None:
        try:
            s.close()
        except Exception:
            pass


class Resolver:
    """Name resolution (§13.6), in this order:

    - IP literals and "localhost" are answered at once;
    - answers are cached for their TTL (getaddrinfo: TTL ms), failures for
      NEG_TTL ms, in a table of at most SIZE names;
    - nothing is looked up while Wi-Fi is down (code 2 at once);
    - with a DNS server known (dns.DnsClient), names are resolved with
      non-blocking UDP queries polled by the loop: nothing blocks;
    - otherwise socket.getaddrinfo, the one blocking call MicroPython
      offers, bounded: one name at a time, one per pass of the loop, so the
      loop serves the UART between lookups. One lookup against an
      unreachable DNS server still blocks for the port's DNS timeout; the
      loop feeds the watchdog before each, and the host's dead timer
      (1.5 s) may end the session meanwhile (the next HELLO restarts it).
    """

    TTL = 300000
    NEG_TTL = 30000
    SIZE = 16

    def __init__(self, getaddrinfo=None, online=None, feed=None, dns=None):
        self.gai = getaddrinfo or socket.getaddrinfo
        self.online = online or (lambda: True)
        self.feed = feed or (lambda: None)
        self.dns = dns
        self.cache = {}  # name -> (expiry ticks, code, [addresses])
        self.queue = []  # (name, callback)
        self.lookups = 0

    def cached(self, name):
        e = self.cache.get(name)
        if e is None:
            return None
        if ticks_diff(e[0], ticks_ms()) <= 0:
            del self.cache[name]
            return None
        return e[1], e[2]

    def resolve(self, name, cb):
        """cb(code, [ip strings]) now or from a later step()."""
        if is_ip(name):
            cb(M.OK, [name])
            return
        if name.lower().rstrip(".") == "localhost":
            cb(M.OK, ["127.0.0.1"])  # RFC 6761: never sent to a DNS server
            return
        r = self.cached(name)
        if r is not None:
            cb(r[0], r[1])
            return
        if not self.online():
            cb(M.UNREACHABLE, "Wi-Fi is down")
            return
        self.queue.append((name, cb))
        self._to_dns()

    def _to_dns(self):
        """Hand queued names to the DNS client while it has room."""
        if self.dns is None:
            return
        while self.queue and not self.dns.busy():
            name, cb = self.queue.pop(0)

            def done(code, addrs, ttl, name=name, cb=cb):
                self._store(name, code, addrs, ttl if code == M.OK else self.NEG_TTL)
                cb(code, addrs)
                self._to_dns()
            r = self.cached(name)
            if r is not None:
                cb(r[0], r[1])
            elif not self.dns.resolve(name, done):
                self.queue.insert(0, (name, cb))
                return

    def _store(self, name, code, addrs, ttl):
        if code == M.TIMEOUT:
            return  # the server did not answer: ask again next time
        if len(self.cache) >= self.SIZE:
            self._evict()
        self.cache[name] = (ticks_add(ticks_ms(), ttl), code, addrs)

    def cancel(self, cb):
        # A query already sent still calls back; TcpConn ignores it then.
        self.queue = [q for q in self.queue if q[1] is not cb]

    def busy(self):
        """Whether step() has a blocking lookup to do now."""
        return bool(self.queue) and self.dns is None

    def step(self):
        """Resolve the oldest queued name (the one blocking call)."""
        if self.dns is not None:
            self._to_dns()
            return
        if not self.queue:
            return
        name, cb = self.queue.pop(0)
        r = self.cached(name)
        if r is None:
            self.feed()
            self.lookups += 1
            try:
                ais = self.gai(name, 0)
                addrs = []
                for ai in ais:
                    a = ai[-1]
                    ip = a[0] if type(a) is tuple else None
                    if ip and ip not in addrs:
                        addrs.append(ip)
                r = (M.OK, addrs) if addrs else (M.DNS, "no address")
            except Exception as e:
                r = (M.DNS, "name not found")
                if isinstance(e, MemoryError):
                    r = (M.NO_MEMORY, "no memory")
            if len(self.cache) >= self.SIZE:
                self._evict()
            ttl = self.TTL if r[0] == M.OK else self.NEG_TTL
            self.cache[name] = (ticks_add(ticks_ms(), ttl), r[0], r[1])
            self.feed()
        cb(r[0], r[1])
        # Others waiting for the same name share the answer.
        rest = []
        for n, c in self.queue:
            if n == name:
                c(r[0], r[1])
            else:
                rest.append((n, c))
        self.queue = rest

    def _evict(self):
        now = ticks_ms()
        for k in list(self.cache):
            if ticks_diff(self.cache[k][0], now) <= 0:
                del self.cache[k]
        while len(self.cache) >= self.SIZE:
            del self.cache[next(iter(self.cache))]


def family_ok(ip, family):
    v6 = ":" in ip
    return family == 0 or (family == 6) == v6


def sockaddr(ip, port, kind):
    """(family, sockaddr) for an IP literal, without a lookup."""
    ai = socket.getaddrinfo(ip, port, 0, kind)[0]
    return ai[0], ai[-1]


def peer_of(addr):
    """(host, port) from an address as recvfrom/accept give it."""
    if type(addr) is tuple:
        host = addr[0]
        if host.startswith("::ffff:") and "." in host:
            host = host[7:]
        return host, addr[1]
    try:  # a raw sockaddr (older ports): family, port, IPv4
        return "%d.%d.%d.%d" % (addr[4], addr[5], addr[6], addr[7]), (addr[2] << 8) | addr[3]
    except Exception:
        return "", 0
