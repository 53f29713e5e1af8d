# Streams, requests and credit on top of the link (docs/protocol.md §7-§9),
# device role. The Session decodes DATA payloads into messages, keeps the
# stream table and fills outgoing DATA payloads: control messages first,
# then CREDIT, then stream data round robin (§6.7).
#
# Endpoints do the I/O of a stream (conn.TcpConn, conn.UdpConn,
# conn.Listener, the services of services.py). An endpoint provides:
#   on_data(mv) -> bytes consumed now (it keeps the rest, copied, and calls
#                  session.consumed(st, n) as it gets rid of them)
#   on_fin()       the host will send no more DATA
#   on_dgram(host, port, mv)   UDP only; returns nothing (consumed at once)
#   ready()        whether read_into/next_dgram may have something now
#   read_into(mv) -> n > 0 bytes written, 0 nothing now, -1 end of stream
#   next_dgram() -> (host, port, bytes) or None, UDP only; peek_dgram too
#   close()        forget the stream, free its sockets
# Backends (conn.Net, the services) open them; the Session answers.
from . import cbor
from . import msg as M
from .services import service

# Stream states (§8.3)
OPENING = 0
OPEN = 1

MAX_CTRL = 96  # queued control messages; beyond, RESETs for unknown sids are dropped


class Stream:
    def __init__(self, sid, kind, own):
        self.sid = sid
        self.kind = kind
        self.own = own  # the device opened it (ACCEPT)
        self.state = OPENING
        self.ep = None
        self.credit = 0  # what we may still send (§9.1)
        self.window = 0  # what we announced
        self.rx_allowed = 0  # what the host may still send us
        self.owed = 0  # consumed and not yet returned (§9.2)
        self.fin_rx = False
        self.fin_tx = False
        self.fin_pending = False
        self.sent = 0  # bytes sent, for the source service
        self.listener = 0


class Session:
    def __init__(self, backend, features, max_streams, stream_window, max_requests=16, log=None):
        self.backend = backend  # opens endpoints, serves requests
        self.features = features
        self.max_streams = max_streams
        self.stream_window = stream_window
        self.max_requests = max_requests
        self.log = log or (lambda *a: None)
        self.link = None
        self.is_up = False
        self.streams = {}
        self.order = []  # round-robin order of sids
        self.rr = 0
        self.ctrl = []
        self.credits = []
        self.pending = 0
        self.peer_max = 0
        self.next_id = 2
        self.peer_features = 0
        self.peer_max_streams = 0
        self.counters = {"ignored": 0, "proto_errors": 0, "bytes_in": 0, "bytes_out": 0,
                         "dgrams_dropped": 0, "opens": 0, "limit": 0}

    # -- link callbacks ------------------------------------------------------

    def up(self, link):
        self._reset()
        self.link = link
        self.is_up = True
        h = link.peer_hello
        self.peer_features = h.get(10, 0)
        self.peer_max_streams = h.get(8, 0)
        self.backend.session_up(self)

    def down(self, reason):
        self.is_up = False
        self._reset()
        self.backend.session_down(self, reason)

    def _reset(self):
        for st in list(self.streams.values()):
            self._close_ep(st)
        self.streams = {}
        self.order = []
        self.ctrl = []
        self.credits = []
        self.pending = 0
        self.peer_max = 0
        self.next_id = 2
        self.rr = 0

    def _close_ep(self, st):
        ep = st.ep
        st.ep = None
        if ep is not None:
            try:
                ep.close()
            except Exception as e:  # never let a socket error escape (§13.8)
                self.log("close: %r" % (e,))

    # -- queueing ------------------------------------------------------------

    def queue(self, m):
        """Queue a control message (any list encodable by cbor)."""
        self.ctrl.append(cbor.dumps(m))

    def reset(self, sid, code, reason=""):
        if len(self.ctrl) < MAX_CTRL or sid in self.streams:
            self.queue([M.RESET, sid, code, M.reason_text(reason)])

    def remove(self, st):
        if self.streams.get(st.sid) is st:
            del self.streams[st.sid]
            self.order.remove(st.sid)
        if st in self.credits:
            self.credits.remove(st)
        self._close_ep(st)

    def fail(self, st, code, reason=""):
        """Abort a stream from our side: RESET, forget it (§8.5)."""
        if self.streams.get(st.sid) is st:
            self.reset(st.sid, code, reason)
            self.remove(st)

    def proto_error(self, st, reason):
        self.counters["proto_errors"] += 1
        self.log("stream %d: %s" % (st.sid, reason))
        self.fail(st, M.PROTOCOL, reason)

    def _add(self, st):
        self.streams[st.sid] = st
        self.order.append(st.sid)

    # -- what endpoints call -------------------------------------------------

    def open_ok(self, st, host="", port=0):
        """The responder is ready (§7.4): OPEN_OK with our window."""
        if self.streams.get(st.sid) is not st:
            return
        st.state = OPEN
        win = 0 if st.kind == M.KIND_LISTEN else st.window
        self.queue([M.OPEN_OK, st.sid, win, host, port])

    def consumed(self, st, n):
        """n bytes received on st were used; return credit in batches (§9.2)."""
        if n <= 0 or self.streams.get(st.sid) is not st or st.fin_rx:
            return
        st.owed += n
        if st.owed >= max(1, st.window // 4) and st not in self.credits:
            self.credits.append(st)

    def can_accept(self):
        n = len(self.streams)
        return self.is_up and n < self.max_streams and n < self.peer_max_streams

    def push_accept(self, listener, ep, host, port):
        """A connection arrived on a listener (§7.10): ACCEPT it."""
        sid = self.next_id
        if sid > 0xFFFFFFFE:
            return None
        self.next_id += 2
        st = Stream(sid, M.KIND_TCP, True)
        st.ep = ep
        st.window = st.rx_allowed = self.stream_window
        st.listener = listener.sid
        self._add(st)
        self.queue([M.ACCEPT, sid, listener.sid, host, port, st.window])
        return st

    def eof(self, st):
        """The socket's peer closed: FIN after the data (§8.4)."""
        st.fin_pending = True

    def event(self, info):
        if self.is_up and self.peer_features is not None:
            self.queue([M.EVENT, M.EVENT_INFO, info])

    def respond(self, rid, code, result):
        """Answer a REQUEST (§7.11); pending requests count against the limit."""
        self.pending = max(0, self.pending - 1)
        if not self.is_up:
            return
        b = cbor.dumps([M.RESPONSE, rid, code, result])
        if len(b) > self.link.max_payload:
            b = cbor.dumps([M.RESPONSE, rid, M.INTERNAL, "result too large"])
        self.ctrl.append(b)

    # -- receive (§7.15) -----------------------------------------------------

    def deliver(self, p):
        """Apply the messages of one DATA payload in order."""
        end = len(p)
        i = 0
        while i < end:
            m, i = cbor.decode(p, i, end)  # Malformed ends the session
            if not self.is_up:
                return
            if type(m) is not list or not m or type(m[0]) is not int or m[0] < 0:
                self.counters["ignored"] += 1
                continue
            t = m[0]
            if t < M.OPEN or t > M.EVENT:
                self.counters["ignored"] += 1
                continue
            try:
                self._dispatch(t, m)
            except MemoryError:
                self._bad(t, m, M.NO_MEMORY, "no memory")
            except _Bad as e:
                self._bad(t, m, M.PROTOCOL, e.args[0] if e.args else "malformed")
            except Exception as e:  # a bug or a socket surprise: reset that stream only (§13.8)
                self.log("message %d: %r" % (t, e))
                self._bad(t, m, M.INTERNAL, "internal error")

    def _bad(self, t, m, code, reason):
        self.counters["proto_errors"] += 1
        sid = m[1] if len(m) > 1 else None
        if t <= M.ACCEPT:
            if not M.is_uint(sid) or sid == 0:
                self.counters["ignored"] += 1
                return
            st = self.streams.get(sid)
            if st is not None:
                self.fail(st, code, reason)
            else:
                self.reset(sid, code, reason)
        elif t == M.REQUEST:
            if M.is_uint(sid):
                self.ctrl.append(cbor.dumps([M.RESPONSE, sid, code, None]))
            else:
                self.counters["ignored"] += 1
        else:
            self.counters["ignored"] += 1

    def _dispatch(self, t, m):
        if t == M.REQUEST:
            return self.on_request(m)
        if t == M.RESPONSE or t == M.EVENT:
            if t == M.EVENT:
                raise _Bad("EVENT goes device to host")
            self.counters["ignored"] += 1  # we send no requests
            return
        if len(m) < 2 or not M.is_uint(m[1]):
            raise _Bad("bad sid")
        sid = m[1]
        if sid == 0:
            self.counters["ignored"] += 1
            return
        if t == M.OPEN:
            return self.on_open(m)
        if t == M.ACCEPT:
            raise _Bad("ACCEPT goes device to host")
        st = self.streams.get(sid)
        if st is None:
            if self.used_earlier(sid):
                self.counters["ignored"] += 1
            elif t != M.RESET:
                self.counters["proto_errors"] += 1
                self.reset(sid, M.PROTOCOL, "unknown stream")
            return
        if t == M.RESET:
            self.remove(st)  # never answered (§7.5), whatever else it holds
        elif t == M.DATA:
            self.on_data(st, m)
        elif t == M.CREDIT:
            _need(m, 3)
            inc = m[2]
            if not M.is_uint(inc):
                raise _Bad("bad increment")
            if st.kind == M.KIND_LISTEN:
                return self.proto_error(st, "CREDIT on a listener")
            if inc and st.credit + inc > 0x7FFFFFFF:
                return self.proto_error(st, "credit overflow")
            st.credit += inc
        elif t == M.FIN:
            if st.kind == M.KIND_UDP or st.kind == M.KIND_LISTEN:
                return self.proto_error(st, "FIN on a datagram stream or listener")
            if st.state != OPEN or st.fin_rx:
                return self.proto_error(st, "FIN out of order")
            st.fin_rx = True
            if st in self.credits:
                self.credits.remove(st)
            st.ep.on_fin()
            self._maybe_closed(st)
        elif t == M.OPEN_OK:
            _need(m, 5)
            if not st.own or st.state != OPENING:
                return self.proto_error(st, "unexpected OPEN_OK")
            if not M.is_uint(m[2]):
                raise _Bad("bad window")
            st.state = OPEN
            st.credit = m[2]
        elif t == M.DGRAM:
            _need(m, 5)
            host, port, data = m[2], m[3], m[4]
            if type(host) is not str or not M.is_uint(port, 0xFFFF) or type(data) is not memoryview:
                raise _Bad("bad DGRAM")
            if st.kind != M.KIND_UDP or st.state != OPEN:
                return self.proto_error(st, "DGRAM on a non-UDP stream")
            n = max(1, len(data))
            if n > st.rx_allowed:
                return self.proto_error(st, "credit exceeded")
            st.rx_allowed -= n
            self.counters["bytes_in"] += len(data)
            st.ep.on_dgram(host, port, data)
            self.consumed(st, n)

    def used_earlier(self, sid):
        if sid & 1:
            return sid <= self.peer_max
        return sid < self.next_id

    def on_data(self, st, m):
        _need(m, 3)
        data = m[2]
        if type(data) is not memoryview or len(data) == 0:
            raise _Bad("bad DATA")
        if st.kind == M.KIND_UDP or st.kind == M.KIND_LISTEN:
            return self.proto_error(st, "DATA on a datagram stream or listener")
        if st.state != OPEN:
            return self.proto_error(st, "DATA before OPEN_OK")
        if st.fin_rx:
            return self.proto_error(st, "DATA after FIN")
        n = len(data)
        if n > st.rx_allowed:
            return self.proto_error(st, "credit exceeded")
        st.rx_allowed -= n
        self.counters["bytes_in"] += n
        took = st.ep.on_data(data)
        if self.streams.get(st.sid) is st:
            self.consumed(st, took)

    def on_open(self, m):
        sid = m[1]
        if not sid & 1 or sid <= self.peer_max:
            self.counters["proto_errors"] += 1
            self.reset(sid, M.PROTOCOL, "bad stream id")
            return
        self.peer_max = sid
        _need(m, 7)
        kind, host, port, window, opts = m[2], m[3], m[4], m[5], m[6]
        if not M.is_uint(kind) or type(host) is not str or not M.is_uint(port, 0xFFFF) \
                or not M.is_uint(window) or type(opts) is not dict:
            raise _Bad("bad OPEN")
        bit = {M.KIND_TCP: M.F_TCP, M.KIND_UDP: M.F_UDP, M.KIND_LISTEN: M.F_LISTEN,
               M.KIND_SERVICE: M.F_SERVICE}.get(kind, 0)
        if not bit & self.features:
            return self.reset(sid, M.UNSUPPORTED, "unknown kind or feature off")
        tls = opts.get(M.OPT_TLS, False)
        verify = opts.get(M.OPT_VERIFY, True)
        sni = opts.get(M.OPT_SNI, host)
        timeout = opts.get(M.OPT_TIMEOUT, 0)
        backlog = opts.get(M.OPT_BACKLOG, 0)
        if tls is not True and tls is not False:
            raise _Bad("bad tls option")
        if kind == M.KIND_TCP and tls:
            if verify is not True and verify is not False:
                raise _Bad("bad verify option")
            if type(sni) is not str:
                raise _Bad("bad sni option")
        if not M.is_uint(timeout) or not M.is_uint(backlog):
            raise _Bad("bad option")
        if tls and kind != M.KIND_TCP:
            return self.reset(sid, M.UNSUPPORTED, "tls on a non-TCP stream")
        if tls and not self.features & M.F_TLS:
            return self.reset(sid, M.UNSUPPORTED, "no TLS on this device")
        if tls and verify and not self.features & M.F_TLS_VERIFY:
            return self.reset(sid, M.UNSUPPORTED, "no CA bundle: cannot verify")
        if kind == M.KIND_TCP and (host == "" or port == 0):
            return self.reset(sid, M.PROTOCOL, "TCP needs host and port")
        if kind != M.KIND_LISTEN and window < 1:
            return self.reset(sid, M.PROTOCOL, "window 0")
        if len(self.streams) >= self.max_streams:
            self.counters["limit"] += 1
            return self.reset(sid, M.LIMIT, "too many streams")
        st = Stream(sid, kind, False)
        st.credit = window
        st.window = st.rx_allowed = 0 if kind == M.KIND_LISTEN else self.backend.window_for(self)
        self._add(st)
        self.counters["opens"] += 1
        try:
            if kind == M.KIND_SERVICE:
                st.ep = service(self, st, host)
                if st.ep is None:
                    self.fail(st, M.UNSUPPORTED, "unknown service")
                    return
                self.open_ok(st)
            else:
                self.backend.open(self, st, kind, host, port,
                                  {"tls": tls, "sni": sni, "verify": verify,
                                   "timeout": timeout, "backlog": backlog})
        except MemoryError:
            self.fail(st, M.NO_MEMORY, "no memory")

    def on_request(self, m):
        if len(m) < 2 or not M.is_uint(m[1]):
            raise _Bad("bad request id")
        rid = m[1]
        if len(m) < 4 or not M.is_uint(m[2]):
            return self.ctrl.append(cbor.dumps([M.RESPONSE, rid, M.PROTOCOL, None]))
        if self.pending >= self.max_requests:
            self.counters["limit"] += 1
            return self.ctrl.append(cbor.dumps([M.RESPONSE, rid, M.LIMIT, "too many requests"]))
        self.pending += 1
        op, args = m[2], m[3]
        if op == M.OP_ECHO:
            if type(args) is not memoryview:
                return self.respond(rid, M.PROTOCOL, "bad arguments")
            return self.respond(rid, M.OK, args)
        self.backend.request(self, rid, op, args)

    def _maybe_closed(self, st):
        # Both FINs exchanged: CLOSED without a message (§8.4).
        if st.fin_rx and st.fin_tx and self.streams.get(st.sid) is st:
            self.remove(st)

    # -- transmit ------------------------------------------------------------

    def fill(self, buf, off, limit):
        """Write messages into buf[off:off+limit]; return their length.

        limit is the link's size for this frame (smaller on a noisy line,
        §6.5a); a message larger than that still goes alone in a frame as
        long as it fits the negotiated max payload, so none waits forever.
        """
        if not self.is_up:
            return 0
        hard = self.link.max_payload
        pos = off
        end = off + limit
        ctrl = self.ctrl
        while ctrl:
            b = ctrl[0]
            n = len(b)
            if n > hard:
                ctrl.pop(0)  # cannot ever fit: never happens with bounded fields
                continue
            if pos + n > end:
                if pos != off:
                    return pos - off
                end = off + n  # alone in its frame, above the advisory size
            buf[pos:pos + n] = b
            pos += n
            ctrl.pop(0)
        credits = self.credits
        while credits:
            st = credits[0]
            if pos + 16 > end:
                return pos - off
            c = bytearray()
            cbor.encode([M.CREDIT, st.sid, st.owed], c)
            buf[pos:pos + len(c)] = c
            pos += len(c)
            st.rx_allowed += st.owed
            st.owed = 0
            credits.pop(0)
        order = self.order
        k = len(order)
        for _ in range(k):
            if end - pos < 24:
                break
            if self.rr >= len(order):
                self.rr = 0
            if not order:
                break
            st = self.streams[order[self.rr]]
            self.rr += 1
            pos = self._fill_stream(st, buf, pos, end, off)
        return pos - off

    def _fill_stream(self, st, buf, pos, end, off):
        if st.state != OPEN or st.fin_tx or st.ep is None:
            return pos
        ep = st.ep
        if st.kind == M.KIND_UDP:
            while st.credit > 0:
                d = ep.peek_dgram()
                if d is None:
                    break
                host, port, data = d
                cost = max(1, len(data))
                b = cbor.dumps([M.DGRAM, st.sid, host, port, data])
                if len(b) > self.link.max_payload or cost > st.credit:
                    ep.next_dgram()
                    self.counters["dgrams_dropped"] += 1  # §9.5: dropped, counted
                    continue
                if pos + len(b) > end:
                    if pos != off:
                        break
                    end = off + len(b)  # alone in its frame (see fill)
                ep.next_dgram()
                buf[pos:pos + len(b)] = b
                pos += len(b)
                st.credit -= cost
                self.counters["bytes_out"] += len(data)
            return pos
        if st.kind == M.KIND_LISTEN:
            return pos
        if not st.fin_pending and st.credit > 0 and ep.ready():
            hd = 2 + cbor.head_len(st.sid)
            room = end - pos - hd - 3
            n = min(st.credit, room)
            if n > 0:
                start = pos + hd + 3
                k = ep.read_into(memoryview(buf)[start:start + n])
                if k is not None and k > 0:
                    hb = cbor.head_len(k)
                    if hb != 3:  # move the bytes next to a shorter head
                        buf[pos + hd + hb:pos + hd + hb + k] = buf[start:start + k]
                    h = bytearray()
                    M.data_head(h, st.sid, k)
                    buf[pos:pos + len(h)] = h
                    pos += len(h) + k
                    st.credit -= k
                    st.sent += k
                    self.counters["bytes_out"] += k
                elif k == -1:
                    st.fin_pending = True
        if st.fin_pending and not st.fin_tx and end - pos >= 8:
            c = bytearray()
            cbor.encode([M.FIN, st.sid], c)
            buf[pos:pos + len(c)] = c
            pos += len(c)
            st.fin_tx = True
            self._maybe_closed(st)
        return pos

    def wants_send(self):
        """Whether fill would produce something now (for the poll timeout)."""
        if self.ctrl or self.credits:
            return True
        for st in self.streams.values():
            if st.state == OPEN and not st.fin_tx and st.ep is not None:
                if st.fin_pending:
                    return True
                if st.kind == M.KIND_UDP:
                    if st.credit > 0 and st.ep.peek_dgram() is not None:
                        return True
                elif st.kind != M.KIND_LISTEN and st.credit > 0 and st.ep.ready():
                    return True
        return False


class _Bad(Exception):
    pass


def _need(m, n):
    if len(m) < n:
        raise _Bad("missing elements")
