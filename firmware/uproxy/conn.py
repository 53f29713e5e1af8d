# Stream endpoints on sockets (docs/protocol.md §7.3, §8): non-blocking
# TCP connect with optional TLS, UDP, listeners, and the Net that opens them
# for OPEN and keeps their poller registrations. Nothing here blocks the
# loop; see net.py for the helpers and the resolver.
import socket

from . import msg as M
from .net import (POLLIN, POLLOUT, POLLERR, POLLHUP, EALREADY, EISCONN, _CODES, code_of,
                  would_block, is_ip, close_quietly, sockaddr, peer_of, ticks_ms, ticks_diff,
                  ticks_add)


class Conn:
    """Base of the socket endpoints; registered with the Net's poller."""

    sock = None
    mask = 0

    def __init__(self, net, sess, st):
        self.net = net
        self.sess = sess
        self.st = st
        if st is not None:
            st.ep = self  # so a failure inside the constructor closes us

    def live(self):
        return self.sess.streams.get(self.st.sid) is self.st

    def fail(self, code, reason):
        self.sess.fail(self.st, code, reason)  # closes us through close()

    def want(self):
        return 0

    def close(self):
        self.net.forget(self)
        close_quietly(self.sock)
        self.sock = None


class TcpConn(Conn):
    """A TCP (optionally TLS) client stream (§7.3, §8.3, §8.4)."""

    RESOLVING = 0
    CONNECTING = 1
    HANDSHAKE = 2
    OPEN = 3

    def __init__(self, net, sess, st, host, port, opts, sock=None):
        Conn.__init__(self, net, sess, st)
        self.host, self.port, self.opts = host, port, opts
        self.wbuf = None  # host bytes the socket did not take yet
        self.fin_rx = False  # host FIN: shut down writing once wbuf is empty
        self.eof = False
        self.readable = False
        self.tls = False
        self.prefetch = None
        self.addr = None
        self.addrs = []
        self.deadline = None
        if sock is not None:  # accepted
            self.sock = sock
            self._setio(sock)
            self.state = self.OPEN
            return
        self.state = self.RESOLVING
        t = opts.get("timeout") or net.connect_timeout
        self.deadline = ticks_add(ticks_ms(), t)
        net.resolver.resolve(host, self._resolved)

    def _setio(self, s):
        self._rd = getattr(s, "readinto", None) or s.recv_into
        self._wr = getattr(s, "write", None) or s.send

    def _resolved(self, code, addrs):
        if not self.live() or self.state != self.RESOLVING:
            return
        if code != M.OK:
            return self.fail(code, addrs if type(addrs) is str else "resolve failed")
        # IPv4 first (what lwIP on the ESP32 reaches best), then the rest,
        # each tried in turn while the deadline allows.
        self.addrs = [a for a in addrs if ":" not in a] + [a for a in addrs if ":" in a]
        self._next_addr()

    def _next_addr(self):
        ip = self.addrs.pop(0)
        try:
            fam, self.addr = sockaddr(ip, self.port, socket.SOCK_STREAM)
            if self.sock is not None:
                self.net.forget(self)
                close_quietly(self.sock)
                self.sock = None
            s = self.sock = socket.socket(fam, socket.SOCK_STREAM)
            s.setblocking(False)
            self.net.track(self, s)
            try:
                s.connect(self.addr)
            except OSError as e:
                if not would_block(e) and e.args[0] != EALREADY:
                    raise
            self.state = self.CONNECTING
        except Exception as e:
            self._connect_failed(code_of(e), "connect: %s" % (e,))

    def _connect_failed(self, code, reason):
        if self.addrs and code in (M.REFUSED, M.UNREACHABLE, M.INTERNAL):
            return self._next_addr()
        self.fail(code, reason)

    def want(self):
        if self.state == self.CONNECTING:
            return POLLOUT
        if self.state == self.HANDSHAKE:
            return self.hs_mask
        if self.state != self.OPEN:
            return 0
        m = 0
        if self.wbuf:
            m |= POLLOUT
        st = self.st
        if (not self.eof and not self.readable and st.credit > 0 and st.state == 1
                and not st.fin_pending and self.net.can_send()):
            m |= POLLIN
        return m

    def on_event(self, ev):
        if self.state == self.CONNECTING:
            return self._connected(ev)
        if self.state == self.HANDSHAKE:
            return self._handshake()
        if ev & (POLLIN | POLLHUP | POLLERR):
            self.readable = True
        if ev & POLLOUT and self.wbuf:
            self._flush()

    def _connected(self, ev):
        s = self.sock
        err = 0
        if hasattr(s, "getsockopt") and hasattr(socket, "SO_ERROR"):
            try:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            except OSError:
                err = 0
        elif ev & (POLLERR | POLLHUP):
            # No SO_ERROR on this port: a second connect tells the error.
            try:
                s.connect(self.addr)
            except OSError as e:
                n = e.args[0] if e.args else 0
                err = 0 if n == EISCONN else n
            err = err or 111
        if err:
            return self._connect_failed(_CODES.get(err, M.REFUSED), "connect: errno %d" % err)
        if self.opts.get("tls"):
            return self._start_tls()
        self._open()

    def _open(self):
        self.state = self.OPEN
        self.deadline = None
        self._setio(self.sock)
        self.sess.open_ok(self.st)

    def _start_tls(self):
        try:
            ctx = self.net.tls_context(self.opts.get("verify", True))
            sni = self.opts.get("sni") or self.host
            self.sock = ctx.wrap_socket(self.sock, server_hostname=sni, do_handshake_on_connect=False)
            self.net.track(self, self.sock)
        except Exception as e:
            return self.fail(M.TLS if not isinstance(e, MemoryError) else M.NO_MEMORY, "tls: %s" % (e,))
        self.tls = True
        self.state = self.HANDSHAKE
        self.hs_mask = POLLIN | POLLOUT
        self._handshake()

    def _handshake(self):
        s = self.sock
        try:
            if hasattr(s, "do_handshake"):  # CPython
                try:
                    s.do_handshake()
                except OSError as e:
                    name = type(e).__name__
                    if name == "SSLWantReadError":
                        self.hs_mask = POLLIN
                        return
                    if name == "SSLWantWriteError":
                        self.hs_mask = POLLOUT
                        return
                    raise
            else:
                # MicroPython drives the handshake inside read and write;
                # a one-byte read makes it progress. The server's first
                # byte, if any, is kept for the host. A peer certificate
                # means the chain and name were checked (mbedTLS verifies
                # while it parses the certificate).
                probe = bytearray(1)
                n = s.readinto(probe)
                if n == 0:
                    raise OSError(-1, "closed during handshake")
                if n:
                    self.prefetch = bytes(probe)
                elif hasattr(s, "getpeercert") and s.getpeercert(True) is None:
                    self.hs_mask = POLLIN | POLLOUT
                    return
        except Exception as e:
            if isinstance(e, MemoryError):
                return self.fail(M.NO_MEMORY, "tls: no memory")
            return self.fail(M.TLS, "tls: %s" % (e,))
        self._open()

    def on_data(self, mv):
        if self.wbuf:
            self.wbuf.extend(mv)
            return 0
        n = self._write(mv)
        if n is None:
            return 0
        if n < len(mv):
            self.wbuf = bytearray(mv[n:])
        return n

    def _write(self, mv):
        try:
            n = self._wr(mv)
        except OSError as e:
            if would_block(e):
                return 0
            self.fail(code_of(e) if code_of(e) != M.INTERNAL else M.RESET_BY_PEER, "write: %s" % (e,))
            return None
        return n or 0

    def _flush(self):
        n = self._write(self.wbuf)
        if n is None:
            return
        if n:
            self.wbuf = self.wbuf[n:]
            self.sess.consumed(self.st, n)
        if not self.wbuf:
            self.wbuf = None
            if self.fin_rx:
                self._shutdown()

    def on_fin(self):
        self.fin_rx = True
        if not self.wbuf:
            self._shutdown()

    def _shutdown(self):
        # §8.4: shut the write side down where the port can (§13.8).
        s = self.sock
        if not self.tls and hasattr(s, "shutdown"):
            try:
                s.shutdown(1)
            except OSError:
                pass

    def ready(self):
        return self.state == self.OPEN and (self.readable or self.prefetch is not None)

    def read_into(self, mv):
        if self.prefetch is not None:
            mv[0] = self.prefetch[0]
            self.prefetch = None
            return 1
        try:
            n = self._rd(mv)
        except OSError as e:
            self.readable = False
            if would_block(e):
                return 0
            c = code_of(e)
            self.fail(M.RESET_BY_PEER if c == M.INTERNAL else c, "read: %s" % (e,))
            return 0
        if n is None:
            self.readable = False
            return 0
        if n == 0:
            self.eof = True
            self.readable = False
            return -1
        if n < len(mv) and not (self.tls and hasattr(self.sock, "pending") and self.sock.pending()):
            self.readable = False
        return n

    def timeout(self, now):
        if self.deadline is not None and ticks_diff(now, self.deadline) >= 0:
            self.deadline = None
            self.net.resolver.cancel(self._resolved)
            self.fail(M.TIMEOUT, "timed out")


class UdpConn(Conn):
    """A UDP stream (§8.6): DGRAM both ways, credit per datagram (§9.5)."""

    MAX_DGRAM = 2048

    def __init__(self, net, sess, st, host, port):
        Conn.__init__(self, net, sess, st)
        self.pending = None
        self.dropped = 0
        fam, addr = sockaddr(host or "0.0.0.0", port, socket.SOCK_DGRAM)
        s = self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        s.setblocking(False)
        s.bind(addr)
        net.track(self, s)

    def bound(self):
        try:
            a = self.sock.getsockname()
            return peer_of(a)
        except Exception:
            return "", 0

    def want(self):
        return POLLIN if self.pending is None else 0

    def on_event(self, ev):
        if self.pending is not None:
            return
        try:
            data, addr = self.sock.recvfrom(self.MAX_DGRAM)
        except OSError as e:
            if not would_block(e):
                self.fail(code_of(e), "recvfrom: %s" % (e,))
            return
        # §9.5: read it anyway; drop it if credit is short.
        if max(1, len(data)) > self.st.credit:
            self.dropped += 1
            self.sess.counters["dgrams_dropped"] += 1
            return
        host, port = peer_of(addr)
        self.pending = (host, port, data)

    def peek_dgram(self):
        return self.pending

    def next_dgram(self):
        d, self.pending = self.pending, None
        return d

    def on_dgram(self, host, port, mv):
        ip = host
        if not is_ip(host):
            r = self.net.resolver.cached(host)
            if r is None or r[0] != M.OK:
                self.dropped += 1  # §7.9: unresolvable names are dropped
                return
            ip = r[1][0]
        try:
            _, addr = sockaddr(ip, port, socket.SOCK_DGRAM)
            self.sock.sendto(mv, addr)
        except OSError:
            self.dropped += 1  # full buffers drop the datagram, as UDP does

    def on_fin(self):
        pass

    def ready(self):
        return False

    def read_into(self, mv):
        return 0


class Listener(Conn):
    """A LISTEN stream (§8.7): each connection becomes an ACCEPT."""

    def __init__(self, net, sess, st, host, port, backlog):
        Conn.__init__(self, net, sess, st)
        fam, addr = sockaddr(host or "0.0.0.0", port, socket.SOCK_STREAM)
        s = self.sock = socket.socket(fam, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        except Exception:
            pass
        s.bind(addr)
        s.listen(backlog or 2)
        s.setblocking(False)
        net.track(self, s)

    def bound(self):
        try:
            return peer_of(self.sock.getsockname())
        except Exception:
            return "", 0

    def want(self):
        # §8.7: leave connections in the backlog while at the stream limit.
        return POLLIN if self.sess.can_accept() else 0

    def on_event(self, ev):
        if not self.sess.can_accept():
            return
        try:
            c, addr = self.sock.accept()
        except OSError as e:
            if not would_block(e):
                self.fail(code_of(e), "accept: %s" % (e,))
            return
        try:
            c.setblocking(False)
            host, port = peer_of(addr)
            child = TcpConn(self.net, self.sess, None, host, port, {}, sock=c)
            st = self.sess.push_accept(self.st, child, host, port)
            if st is None:
                close_quietly(c)
                return
            child.st = st
            self.net.track(child, c)
        except Exception as e:
            close_quietly(c)
            self.net.log("accept: %r" % (e,))

    def on_data(self, mv):
        return len(mv)

    def on_fin(self):
        pass

    def ready(self):
        return False

    def read_into(self, mv):
        return 0


class Net:
    """Opens endpoints for OPEN (the mux backend's network half) and owns
    the poller registrations of their sockets."""

    def __init__(self, poller, resolver, connect_timeout=10000, ca_file=None, max_tls=2, log=None,
                 can_send=None):
        self.poller = poller
        self.resolver = resolver
        self.connect_timeout = connect_timeout
        self.ca_file = ca_file
        self.max_tls = max_tls
        self.log = log or (lambda *a: None)
        self.can_send = can_send or (lambda: True)
        self.conns = {}  # poll key -> Conn
        self.masks = {}  # id(Conn) -> (sock, registered mask)
        self._ctx = {}

    # -- poller bookkeeping --------------------------------------------------

    def track(self, conn, sock):
        old = self.masks.get(id(conn))
        if old is not None and old[0] is not sock:
            self._unregister(old[0])
        self.conns[sock] = conn
        f = getattr(sock, "fileno", None)
        if f is not None:
            try:
                self.conns[f()] = conn
            except Exception:
                pass
        self.masks[id(conn)] = (sock, -1)

    def _unregister(self, sock):
        try:
            self.poller.unregister(sock)
        except Exception:
            pass
        for k in [k for k, v in self.conns.items() if k is sock or (type(k) is int and getattr(v, "sock", None) is sock)]:
            self.conns.pop(k, None)

    def forget(self, conn):
        e = self.masks.pop(id(conn), None)
        if e is not None:
            self._unregister(e[0])
        for k in [k for k, v in self.conns.items() if v is conn]:
            del self.conns[k]

    def update(self):
        """Register every socket with what it waits for now."""
        for key, (sock, mask) in list(self.masks.items()):
            conn = self.conns.get(sock)
            if conn is None or conn.sock is not sock:
                continue
            m = conn.want()
            if m != mask:
                if mask == -1:
                    self.poller.register(sock, m)
                else:
                    self.poller.modify(sock, m)
                self.masks[key] = (sock, m)

    def lookup(self, obj):
        return self.conns.get(obj)

    def timeouts(self):
        if self.resolver.dns is not None:
            self.resolver.dns.timeouts()
        now = ticks_ms()
        for conn in list(self.conns.values()):
            if isinstance(conn, TcpConn) and conn.deadline is not None:
                conn.timeout(now)

    def next_deadline(self):
        now = ticks_ms()
        t = self.resolver.dns.next_deadline() if self.resolver.dns is not None else None
        for conn in self.conns.values():
            if isinstance(conn, TcpConn) and conn.deadline is not None:
                d = max(0, ticks_diff(conn.deadline, now))
                t = d if t is None else min(t, d)
        return t

    def use_dns(self, client):
        """Resolve names with client (a dns.DnsClient), or getaddrinfo (None)."""
        old = self.resolver.dns
        if old is not None:
            self.forget(old)
            old.close()
        self.resolver.dns = client
        if client is not None:
            self.track(client, client.sock)

    def tls_streams(self):
        n = 0
        seen = set()
        for c in self.conns.values():
            if isinstance(c, TcpConn) and c.opts.get("tls") and id(c) not in seen:
                seen.add(id(c))
                n += 1
        return n

    def tls_context(self, verify):
        ctx = self._ctx.get(verify)
        if ctx is not None:
            return ctx
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if verify:
            ctx.verify_mode = ssl.CERT_REQUIRED
            try:
                ctx.load_verify_locations(cafile=self.ca_file)
            except TypeError:  # a port that takes the bytes only
                with open(self.ca_file, "rb") as f:
                    ctx.load_verify_locations(cadata=f.read())
        else:
            if hasattr(ctx, "check_hostname"):
                ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        self._ctx[verify] = ctx
        return ctx

    # -- opening -------------------------------------------------------------

    def open(self, sess, st, kind, host, port, opts):
        try:
            if kind == M.KIND_TCP:
                if opts.get("tls") and self.tls_streams() >= self.max_tls:
                    return sess.fail(st, M.LIMIT, "too many TLS streams")
                st.ep = TcpConn(self, sess, st, host, port, opts)
            elif kind == M.KIND_UDP:
                st.ep = UdpConn(self, sess, st, host, port)
                h, p = st.ep.bound()
                sess.open_ok(st, h, p)
            elif kind == M.KIND_LISTEN:
                st.ep = Listener(self, sess, st, host, port, opts.get("backlog"))
                h, p = st.ep.bound()
                sess.open_ok(st, h, p)
            else:
                sess.fail(st, M.UNSUPPORTED, "unknown kind")
        except Exception as e:
            sess.fail(st, code_of(e), "%s" % (e,))  # closes st.ep and its socket
