# The reliable link (docs/protocol.md §5, §6): HELLO handshake with session
# ids, selective-repeat ARQ with cumulative ack + SACK bitmap, fast
# retransmit by transmission order, RTO (RFC 6298), keepalive and dead-link
# timers. Single-threaded: the app's loop calls on_frame for every decoded
# SLIP frame, then pump() to write, and polls for at most ms_to_next().
#
# The upper layer (mux.Session) provides:
#   up(link)              a session started (negotiated values on link)
#   down(reason)          the session ended ("peer restarted", "link dead", ...)
#   deliver(payload)      one DATA payload, in order; raises cbor.Malformed
#                         when it cannot be parsed (ends the session, §7.15)
#   fill(buf, off, limit) write messages into buf[off:off+limit], return
#                         the number of bytes written (0: nothing to send)
import math
import os
import struct

from . import cbor
from . import frame as fr
from . import slip

try:
    from time import ticks_diff
except ImportError:  # pragma: no cover - CPython without the shims
    def ticks_diff(a, b):
        return a - b

# Timers and limits (protocol: must match docs/protocol.md §11).
HELLO_INTERVAL = 250
KEEPALIVE = 300
DEAD_TIMEOUT = 1500
RTO_INITIAL = 500
RTO_MIN = 20
RTO_MAX = 2000
MAX_WINDOW = 32
PROTO_MIN = 1
PROTO_MAX = 1
ROLE_HOST = 0
ROLE_DEVICE = 1
HELLO_MAX = 256

# Frame sizing under noise (§6.5a), sender-local policy.
SIZER_DECAY = 0.97  # per frame outcome: remembers ~30 frames
SIZER_OVERHEAD = 32  # header, CRC, SLIP ENDs, message header, escapes
SIZER_MIN = 128
SIZER_PRIOR_BITS = 100000.0  # one loss in this many bits at session start

# Session errors (§5.4): local strings, not wire codes.
PEER_RESTARTED = "peer restarted"
LINK_DEAD = "link dead"
PROTOCOL_ERROR = "protocol error"
CLOSED = "closed"


def new_session_id():
    # §5.1, §13.7: random, non-zero; os.urandom is the hardware RNG on an ESP32.
    while True:
        u = getattr(os, "urandom", None)
        if u is not None:
            s = struct.unpack("<I", u(4))[0]
        else:  # a port without urandom (the WebAssembly VM of the tests)
            import random
            s = random.getrandbits(32)
        if s:
            return s


def parse_hello(p):
    """Validate a HELLO payload (§5.1); return the map or None."""
    if len(p) > HELLO_MAX:
        return None
    try:
        h = cbor.loads(p)
    except cbor.Malformed:
        return None
    if type(h) is not dict:
        return None
    for k in (1, 2, 3, 4, 5, 6, 7, 8):
        v = h.get(k)
        if type(v) is not int or v < 0:
            return None
    if not 0 < h[4] <= 0xFFFFFFFF or h[5] > 0xFFFFFFFF:
        return None
    if h[1] == 0 or h[1] > h[2] or h[3] > 1 or h[6] < 256 or h[7] < 1:
        return None
    for k in (9, 10, 13):
        if k in h and (type(h[k]) is not int or h[k] < 0):
            return None
    e = h.get(14, False)
    if e is not True and e is not False:
        return None
    return h


class Link:
    def __init__(self, hello, upper, write, now, tx_ready=None, flow=True, log=None):
        """hello: our HELLO map without keys 4, 5, 14 (filled at send time).
        write(bytes-like) puts bytes on the UART; tx_ready() says whether the
        UART can take the next frame now (docs/protocol.md §6.7: keep about
        one frame between the protocol and the wire)."""
        self.local = hello
        self.upper = upper
        self.write = write
        self.now = now
        self.tx_ready = tx_ready or (lambda: True)
        self.flow = flow
        self.log = log or (lambda *a: None)
        self.own_payload = hello[6]
        # Slots are indexed by seq mod the slot count; a power of two divides
        # 2^16, so the mapping stays one-to-one across the wrap (§6.1).
        w = 1
        while w * 2 <= min(hello[7], MAX_WINDOW):
            w *= 2
        self.own_window = w
        hello[7] = w
        self.baud = hello.get(13, 0)
        self.mine = new_session_id()
        self.peer = 0  # peer session as last seen
        self.up = False
        self.peer_hello = None
        self.window = self.own_window
        self.max_payload = self.own_payload
        W = self.own_window
        # Send window: whole frames kept for retransmission, built in place.
        self.slots = [bytearray(fr.OVERHEAD + self.own_payload) for _ in range(W)]
        self.slen = [0] * W  # payload length; 0 = free
        self.sacked = [False] * W
        self.lost = [False] * W
        self.retx = [0] * W
        self.sent_at = [0] * W
        self.order = [0] * W
        self.prev_order = [0] * W
        self.rcv = [None] * W  # out-of-order payloads
        self.ctl = bytearray(fr.OVERHEAD + HELLO_MAX)  # ACK and HELLO frames
        self.txw = bytearray(2 * (fr.OVERHEAD + self.own_payload) + 2)  # SLIP-encoded frame
        self.txwmv = memoryview(self.txw)
        self.stats = {}
        self.counters = {"tx_frames": 0, "rx_frames": 0, "retransmits": 0, "fast_retransmits": 0,
                         "timeouts": 0, "sessions": 0, "dead_links": 0, "peer_restarts": 0}
        self.next_hello = now()
        self.hello_now = True
        self.reset_sequences()

    # -- bookkeeping -----------------------------------------------------

    def drop(self, reason):
        self.stats[reason] = self.stats.get(reason, 0) + 1

    def reset_sequences(self):
        W = self.own_window
        for i in range(W):
            self.slen[i] = 0
            self.sacked[i] = False
            self.lost[i] = False
            self.retx[i] = 0
            self.rcv[i] = None
        self.snd_una = self.snd_nxt = self.rcv_nxt = 0
        self.tx_order = 0
        self.lostq = []
        self.ack_owed = self.ack_now = False
        self.srtt = self.rttvar = 0
        self.sampled = False
        self.rto = RTO_INITIAL
        self.backoff = 0
        self.min_rtt = 0
        self.cwnd = float(self.window)
        self.recovering = False
        self.recover_at = 0
        self.z_lost = 1.0
        self.z_bits = SIZER_PRIOR_BITS
        self.set_loss_policy()

    def sizer_record(self, n, lost):
        self.z_lost *= SIZER_DECAY
        self.z_bits = self.z_bits * SIZER_DECAY + 8 * (n + SIZER_OVERHEAD)
        if lost:
            self.z_lost += 1

    def payload_limit(self):
        """Payload size for the next new DATA frame (§6.5a): the largest on
        a clean line, about sqrt(h / 8·BER) on a noisy one."""
        if self.z_lost < 0.5 or self.z_bits <= 0:
            return self.max_payload
        best = int(math.sqrt(SIZER_OVERHEAD * self.z_bits / (8 * self.z_lost)))
        return min(self.max_payload, max(best, SIZER_MIN))

    def set_loss_policy(self):
        base = self.baud or (self.peer_hello or {}).get(13, 0)
        self.rto_min = max(RTO_MIN, self.floor_ms(self.max_payload, base))
        self.max_backoff = 1 if self.flow else 6

    @staticmethod
    def floor_ms(max_payload, baud):
        if baud <= 0:
            return RTO_MIN
        return 2 * (max_payload + 32) * 105 * 10 * 10 // baud + 25  # ms: 1.05 = 105/100

    def in_flight(self, seq):
        return ((seq - self.snd_una) & 0xFFFF) < ((self.snd_nxt - self.snd_una) & 0xFFFF)

    def outstanding(self):
        return (self.snd_nxt - self.snd_una) & 0xFFFF

    def can_send_new(self):
        """Whether a new DATA frame may go out now (window and cwnd)."""
        if not self.up:
            return False
        lim = self.window
        if not self.flow:
            lim = min(lim, int(self.cwnd))
        return self.outstanding() < lim

    # -- receive -----------------------------------------------------------

    def on_frame(self, f):
        """Process one decoded SLIP frame (§3.4, §5.3, §6.3, §6.4)."""
        if len(f) and f[0] == 3:
            self.drop("seed_v3")  # §14.2: the device drops seed frames
            return
        r = fr.parse(f, self.max_payload if self.up else self.own_payload)
        if type(r) is str:
            self.drop(r)
            return
        t, flags, seq, ack, sack = r
        self.counters["rx_frames"] += 1
        now = self.now()
        if t == fr.HELLO:
            self.on_hello(memoryview(f)[fr.HDR:len(f) - 4], now)
            return
        if not self.up:
            self.drop("no_session")
            return
        self.last_recv = now
        self.on_ack(ack, sack, now)
        if flags & fr.ACKREQ:
            self.ack_now = True
        if t == fr.DATA:
            self.on_data(seq, memoryview(f)[fr.HDR:len(f) - 4])

    def on_hello(self, p, now):
        h = parse_hello(p)
        if h is None:
            self.drop("bad_hello")
            return
        if h[4] == self.mine or h[3] == self.local[3]:
            self.drop("bad_hello")  # looped back, or two devices
            return
        if min(h[2], PROTO_MAX) < max(h[1], PROTO_MIN):
            self.drop("bad_hello")
            self.log("incompatible protocol: we speak %d..%d, peer %d..%d" % (PROTO_MIN, PROTO_MAX, h[1], h[2]))
            return
        self.peer = h[4]
        established = h.get(14, False)
        if self.up and h[4] == self.peer_hello[4] and h[5] == self.mine:
            if not established:
                self.hello_now = True
        elif not self.up and h[5] == self.mine:
            self.establish(h, now)
            if not established:
                self.hello_now = True
        else:
            if self.up:
                self.counters["peer_restarts"] += 1
                self.end_session(PEER_RESTARTED)
            self.hello_now = True

    def establish(self, h, now):
        self.up = True
        self.peer_hello = h
        self.window = min(self.own_window, h[7], MAX_WINDOW)
        self.max_payload = min(self.own_payload, h[6])
        self.reset_sequences()
        self.last_recv = now
        self.last_probe = now
        self.counters["sessions"] += 1
        self.log("link up: session %08x, peer %08x, window %d, max payload %d"
                 % (self.mine, h[4], self.window, self.max_payload))
        self.upper.up(self)

    def end_session(self, reason):
        """End the session (§5.4): a new session id, HELLOs at once."""
        if not self.up:
            return
        self.up = False
        self.reset_sequences()
        self.mine = new_session_id()
        self.hello_now = True
        self.log("link down: " + reason)
        self.upper.down(reason)

    def on_data(self, seq, p):
        W = self.window
        d = (seq - self.rcv_nxt) & 0xFFFF
        if d >= W:
            self.drop("duplicate" if d >= 0x8000 else "out_of_window")
            self.ack_now = True
            return
        if d > 0:
            i = seq % self.own_window
            if self.rcv[i] is not None:
                self.drop("duplicate")
            else:
                self.rcv[i] = bytes(p)  # p is a view of the SLIP decoder's buffer
            self.ack_now = True
            return
        self.deliver(p)
        self.rcv_nxt = (self.rcv_nxt + 1) & 0xFFFF
        while self.up:
            i = self.rcv_nxt % self.own_window
            p = self.rcv[i]
            if p is None:
                break
            self.rcv[i] = None
            self.deliver(p)
            self.rcv_nxt = (self.rcv_nxt + 1) & 0xFFFF
        if self.up:
            self.ack_owed = True
            if self.sack_bits():
                self.ack_now = True

    def deliver(self, p):
        if not self.up:
            return
        try:
            self.upper.deliver(p)
        except cbor.Malformed as e:
            self.log("unparseable payload: " + str(e))
            self.end_session(PROTOCOL_ERROR)

    def sack_bits(self):
        bits = 0
        W = self.own_window
        base = self.rcv_nxt + 1
        rcv = self.rcv
        for i in range(self.window - 1):
            if rcv[(base + i) % W] is not None:
                bits |= 1 << i
        return bits

    def on_ack(self, ack, sack, now):
        if ((ack - self.snd_una) & 0xFFFF) > self.outstanding():
            self.drop("bad_ack")
            return
        W = self.own_window
        newest = 0
        while self.snd_una != ack:
            i = self.snd_una % W
            if not self.sacked[i]:
                newest = max(newest, self.take(i, now))
            self.slen[i] = 0
            self.sacked[i] = self.lost[i] = False
            self.retx[i] = 0
            self.snd_una = (self.snd_una + 1) & 0xFFFF
        i = 0
        while sack and i < 32:
            if sack & 1:
                seq = (ack + 1 + i) & 0xFFFF
                if self.in_flight(seq):
                    j = seq % W
                    if not self.sacked[j]:
                        self.sacked[j] = True
                        newest = max(newest, self.take(j, now))
            sack >>= 1
            i += 1
        if self.recovering and ((self.recover_at - self.snd_una) & 0xFFFF) > self.outstanding():
            self.recovering = False
        if not newest:
            return
        # The line never reorders: a frame sent before one that arrived and
        # still unacknowledged was lost (§6.4 rule 4).
        seq = self.snd_una
        while seq != self.snd_nxt:
            j = seq % W
            if not self.sacked[j] and not self.lost[j] and self.order[j] < newest:
                self.mark_lost(j, seq)
                self.counters["fast_retransmits"] += 1
            seq = (seq + 1) & 0xFFFF

    def take(self, i, now):
        """An outstanding frame got acknowledged: RTT sample (Karn), cwnd."""
        self.sizer_record(self.slen[i], False)
        if not self.recovering:
            self.cwnd = min(self.cwnd + 1 / self.cwnd, float(self.window))
        order = self.order[i]
        d = ticks_diff(now, self.sent_at[i])
        if self.retx[i] == 0:
            self.sample(d)
            if self.min_rtt == 0 or d < self.min_rtt:
                self.min_rtt = d
        elif d < self.min_rtt // 2:
            # Too soon to be the retransmission's ack: the earlier copy
            # arrived (§6.5 retransmission ambiguity).
            order = self.prev_order[i]
        return order

    def sample(self, r):
        r = max(r, 1)
        if not self.sampled:
            self.srtt, self.rttvar, self.sampled = r, r // 2, True
        else:
            self.rttvar = (3 * self.rttvar + abs(self.srtt - r)) // 4
            self.srtt = (7 * self.srtt + r) // 8
        self.backoff = 0
        self.rto = min(max(self.srtt + 4 * self.rttvar, self.rto_min), RTO_MAX)

    def mark_lost(self, j, seq):
        self.lost[j] = True
        self.lostq.append(seq)
        self.sizer_record(self.slen[j], True)
        if not self.recovering and not self.flow:
            self.recovering = True
            self.recover_at = self.snd_nxt
            self.cwnd = max(self.cwnd / 2, 2.0)

    # -- timers --------------------------------------------------------------

    def timers(self):
        """Dead link and retransmission timers (§5.6, §6.5)."""
        if not self.up:
            return
        now = self.now()
        if ticks_diff(now, self.last_recv) >= DEAD_TIMEOUT:
            self.counters["dead_links"] += 1
            self.end_session(LINK_DEAD)
            return
        W = self.own_window
        seq = self.snd_una
        expired = False
        while seq != self.snd_nxt:
            j = seq % W
            if not self.sacked[j] and not self.lost[j]:
                if ticks_diff(now, self.sent_at[j]) < self.rto:
                    break  # later frames were sent later
                self.mark_lost(j, seq)
                expired = True
                if not self.flow:
                    break
            seq = (seq + 1) & 0xFFFF
        if expired:
            self.counters["timeouts"] += 1
            if self.backoff < self.max_backoff:
                self.backoff += 1
                self.rto = min(max(self.rto * 2, self.rto_min), RTO_MAX)

    def ms_to_next(self):
        """How long the loop may sleep before a timer matters."""
        now = self.now()
        if self.hello_now or self.ack_now or self.lostq:
            return 0
        if not self.up:
            return max(0, ticks_diff(self.next_hello, now))
        t = DEAD_TIMEOUT - ticks_diff(now, self.last_recv)
        probe = KEEPALIVE - min(ticks_diff(now, self.last_recv), ticks_diff(now, self.last_probe))
        t = min(t, probe)
        W = self.own_window
        seq = self.snd_una
        while seq != self.snd_nxt:
            j = seq % W
            if not self.sacked[j] and not self.lost[j]:
                t = min(t, self.rto - ticks_diff(now, self.sent_at[j]))
                break
            seq = (seq + 1) & 0xFFFF
        if self.ack_owed:
            t = 0
        return max(0, t)

    # -- transmit ------------------------------------------------------------

    def pump(self):
        """Write frames while the UART takes them, most urgent first (§6.7)."""
        while self.tx_ready() and self.pump_one():
            pass

    def pump_one(self):
        now = self.now()
        if self.hello_now or (not self.up and ticks_diff(now, self.next_hello) >= 0):
            self.send_hello(now)
            return True
        if not self.up:
            return False
        if (ticks_diff(now, self.last_recv) >= KEEPALIVE
                and ticks_diff(now, self.last_probe) >= KEEPALIVE):
            self.last_probe = now
            self.send_ack(fr.ACKREQ)
            return True
        if self.ack_now:
            self.send_ack(0)
            return True
        if self.resend(now) or self.send_new(now):
            return True
        if self.ack_owed:
            self.send_ack(0)
            return True
        return False

    def _put(self, buf, n):
        # One write of the whole SLIP frame, escaped into a preallocated
        # buffer (no allocation per frame).
        self.counters["tx_frames"] += 1
        k = slip.encode_into(buf, n, self.txw)
        self.write(self.txwmv[:k])

    def hello_payload(self):
        h = dict(self.local)
        h[4] = self.mine
        h[5] = self.peer
        if self.up:
            h[14] = True
        return cbor.dumps(h)

    def send_hello(self, now):
        p = self.hello_payload()
        self.hello_now = False
        self.next_hello = now + HELLO_INTERVAL
        n = fr.build(self.ctl, fr.HELLO, 0, 0, 0, p)
        self._put(self.ctl, n)

    def send_ack(self, flags):
        n = fr.seal(self.ctl, fr.ACK | flags, 0, self.rcv_nxt, self.sack_bits(), 0)
        self.ack_owed = self.ack_now = False
        self._put(self.ctl, n)

    def resend(self, now):
        W = self.own_window
        while self.lostq:
            seq = self.lostq.pop(0)
            j = seq % W
            if not self.in_flight(seq) or not self.lost[j] or self.sacked[j]:
                continue
            self.lost[j] = False
            self.retx[j] += 1
            self.counters["retransmits"] += 1
            self.transmit(j, fr.DATA | fr.ACKREQ, seq, now)
            return True
        return False

    def send_new(self, now):
        if not self.can_send_new():
            return False
        seq = self.snd_nxt
        j = seq % self.own_window
        n = self.upper.fill(self.slots[j], fr.HDR, self.payload_limit())
        if n <= 0:
            return False
        self.slen[j] = n
        self.sacked[j] = self.lost[j] = False
        self.retx[j] = 0
        self.snd_nxt = (seq + 1) & 0xFFFF
        self.transmit(j, fr.DATA, seq, now)
        return True

    def transmit(self, j, tf, seq, now):
        self.tx_order += 1
        self.prev_order[j] = self.order[j]
        self.order[j] = self.tx_order
        buf = self.slots[j]
        n = fr.seal(buf, tf, seq, self.rcv_nxt, self.sack_bits(), self.slen[j])
        self.ack_owed = self.ack_now = False
        self._put(buf, n)
        self.sent_at[j] = self.now()

    # -- line changes (§5.7) -------------------------------------------------

    def line_changed(self, baud, flow):
        """The UART changed rate or flow control under a running session:
        resend what is unacknowledged, restart the RTT estimate from the new
        floor and tell the peer where we are."""
        self.baud = baud
        self.flow = flow
        if not self.up:
            return
        W = self.own_window
        seq = self.snd_una
        while seq != self.snd_nxt:
            j = seq % W
            if not self.sacked[j] and not self.lost[j]:
                self.lost[j] = True
                self.lostq.append(seq)
            seq = (seq + 1) & 0xFFFF
        self.recovering = False
        self.cwnd = float(self.window)
        self.srtt = self.rttvar = 0
        self.sampled = False
        self.min_rtt = 0
        self.backoff = 0
        self.set_loss_policy()
        self.rto = self.rto_min
        self.ack_now = True
