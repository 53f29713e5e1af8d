# The firmware: hardware setup and the one event loop (docs/protocol.md
# §13.5). One select.poll over the UART and every socket; the poll timeout
# is the time to the nearest protocol timer; nothing in the loop blocks but
# getaddrinfo for names (net.Resolver says how that is bounded).
#
# Hardware is touched only by the small functions at the top (make_uart,
# make_wdt, make_wlan, mem_free, model_name), so tests can shim machine and
# network and run this module unchanged.
import gc
import os
import select
import sys

from . import VERSION
from . import config as cfgmod
from . import conn
from . import dns as dnsmod
from . import link as lk
from . import msg as M
from . import mux
from . import net
from . import slip
from . import wifi

try:
    from time import ticks_ms, ticks_diff, ticks_add, sleep_ms
except ImportError:  # pragma: no cover
    import time as _t

    def ticks_ms():
        return int(_t.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b

    def sleep_ms(n):
        _t.sleep(n / 1000)


# -- hardware --------------------------------------------------------------


def model_name():
    """'esp32c3', 'esp32s3', 'esp32' or the platform name."""
    try:
        m = os.uname().machine.upper()
    except Exception:
        m = ""
    if "ESP32C3" in m or "ESP32-C3" in m:
        return "esp32c3"
    if "ESP32S3" in m or "ESP32-S3" in m:
        return "esp32s3"
    if "ESP32" in m:
        return "esp32"
    return sys.platform


def mem_free():
    f = getattr(gc, "mem_free", None)
    return f() if f else 160 * 1024


def make_uart(c, rxbuf, txbuf):
    from machine import UART
    kw = {"baudrate": c["baud"], "tx": c["tx"], "rx": c["rx"], "rxbuf": rxbuf, "txbuf": txbuf,
          "timeout": 0, "timeout_char": 0}
    if c["rts"] >= 0 and c["cts"] >= 0:
        # Pins always assigned, so SET_BAUD can turn RTS/CTS on later (§5.7).
        kw["rts"] = c["rts"]
        kw["cts"] = c["cts"]
        kw["flow"] = (UART.RTS | UART.CTS) if c["flow"] == "rtscts" else 0
    return UART(c["uart"], **kw)


def set_uart(uart, c, baud, flow):
    """Change rate and flow control in place (§5.7)."""
    from machine import UART
    kw = {"baudrate": baud}
    if c["rts"] >= 0 and c["cts"] >= 0:
        kw["flow"] = (UART.RTS | UART.CTS) if flow else 0
    uart.init(**kw)


def make_wdt(ms):
    if not ms:
        return None
    from machine import WDT
    return WDT(timeout=ms)


def make_wlan():
    try:
        import network
    except ImportError:
        return None, None
    return network.WLAN(network.STA_IF), network


def boot_budget(c, free):
    """Pick max_payload, window, max_streams and the stream window to fit
    the heap at boot (§13.1). Returns a dict; the values never exceed the
    configured ones."""
    reserve = 24 * 1024  # interpreter, sockets, messages in flight
    avail = max(0, free - reserve)
    p = c["max_payload"]
    while p > 512 and avail < 48 * p:
        p //= 2
    # Send window: W frames kept whole; the reorder buffer holds up to W-1.
    w = max(2, min(c["window"], (avail * 35 // 100) // (2 * (p + 14))))
    while w & (w - 1):  # a power of two (link.py indexes slots by seq mod W)
        w &= w - 1
    link_cost = w * (p + 14) + (w - 1) * p + 4 * (p + 16)
    left = max(0, avail - link_cost)
    sw = c["stream_window"]
    streams = min(c["max_streams"], left // (sw + 1024))
    while streams < 4 and sw > 2048:
        sw //= 2
        streams = min(c["max_streams"], left // (sw + 1024))
    return {"max_payload": p, "window": w, "max_streams": max(1, streams), "stream_window": sw}


# -- the app ---------------------------------------------------------------


class App:
    """Ties UART, link, mux, network, Wi-Fi and requests together; it is
    also the mux backend (open, request, window_for)."""

    def __init__(self, c, uart, wlan=None, network=None, wdt=None, log=None):
        self.c = c
        self.uart = uart
        self.wdt = wdt
        self.log = log or (lambda *a: None)
        self.model = c["model"] or model_name()
        self.boot = ticks_ms()
        self.uptime = 0
        self.last_tick = self.boot
        gc.collect()
        b = self.budget = boot_budget(c, mem_free())
        self.flow = c["flow"] == "rtscts"
        self.baud = c["baud"]
        self.wifi = wifi.WiFi(wlan, c["ssid"], c["password"], c["hostname"], self.log, network)
        self.poller = select.poll()
        self.resolver = net.Resolver(online=self._online, feed=self.feed)
        self.net = conn.Net(self.poller, self.resolver, c["connect_timeout_ms"], c["ca_file"] or None,
                           c["max_tls"], self.log, can_send=self._can_send)
        feats = M.F_TCP | M.F_UDP | M.F_LISTEN | M.F_SERVICE | M.F_RESOLVE | M.F_INFO | M.F_BAUD
        if c["max_tls"] and self._has_ssl():
            feats |= M.F_TLS
            if c["ca_file"] and self._exists(c["ca_file"]):
                feats |= M.F_TLS_VERIFY
        self.features = feats
        self.sess = mux.Session(self, feats, b["max_streams"], b["stream_window"], 16, self.log)
        hello = {1: lk.PROTO_MIN, 2: lk.PROTO_MAX, 3: lk.ROLE_DEVICE, 6: b["max_payload"],
                 7: b["window"], 8: b["max_streams"], 9: b["stream_window"], 10: feats,
                 11: VERSION, 12: self.model, 13: self.baud}
        self.link = lk.Link(hello, self.sess, self._write, ticks_ms, self._tx_ready, self.flow, self.log)
        self.slip = slip.Decoder(fr_limit(b["max_payload"]))
        self.rxbuf = bytearray(2048)
        self.rxmv = memoryview(self.rxbuf)
        self.uart_key = None
        self.poller.register(uart, select.POLLIN)
        f = getattr(uart, "fileno", None)
        if f is not None:
            self.uart_key = f()
        self.gen = 0  # session generation: answers of an old session are dropped
        self.baud_switch = None  # (when, to_baud, to_flow, from_baud, from_flow, phase)
        self.last_info = None
        self.last_gc = ticks_ms()
        self.last_stats = self.last_gc
        if c["dns"] and c["dns"] != "getaddrinfo":
            self.setup_dns()
        self.log("uartproxy firmware %s on %s: %s" % (VERSION, self.model, cfgmod.describe(c)))
        self.log("budget: %r, features %d, free %d" % (b, feats, mem_free()))

    # -- small helpers -------------------------------------------------------

    @staticmethod
    def _has_ssl():
        try:
            import ssl  # noqa: F401
            return True
        except ImportError:
            return False

    @staticmethod
    def _exists(path):
        try:
            os.stat(path)
            return True
        except OSError:
            return False

    def feed(self):
        if self.wdt is not None:
            self.wdt.feed()

    def _online(self):
        return self.wifi.online() or not self.c["ssid"] and self.wifi.wlan is None

    def _can_send(self):
        return self.link.can_send_new()

    def _write(self, b):
        self.uart.write(b)

    def _tx_ready(self):
        f = getattr(self.uart, "txdone", None)
        return f() if f else True

    def uptime_ms(self):
        now = ticks_ms()
        self.uptime += ticks_diff(now, self.last_tick)
        self.last_tick = now
        return self.uptime

    # -- mux backend ---------------------------------------------------------

    def session_up(self, sess):
        self.gen += 1
        self.last_info = None

    def session_down(self, sess, reason):
        self.gen += 1
        self.resolver.queue = []
        gc.collect()

    def window_for(self, sess):
        # §9.4: size each stream's window to the memory free now.
        w = self.budget["stream_window"]
        free = mem_free()
        while w > 1024 and free < 4 * w + 16 * 1024:
            w //= 2
        return w

    def open(self, sess, st, kind, host, port, opts):
        if kind != M.KIND_SERVICE and not self._online():
            return sess.fail(st, M.UNREACHABLE, "Wi-Fi is down")
        self.net.open(sess, st, kind, host, port, opts)

    def info(self):
        d = {M.INFO_FIRMWARE: VERSION, M.INFO_MODEL: self.model, M.INFO_FREE_MEM: mem_free(),
             M.INFO_UPTIME: self.uptime_ms()}
        d.update(self.wifi.info())
        return d

    def request(self, sess, rid, op, args):
        gen = self.gen
        if op == M.OP_INFO:
            return sess.respond(rid, M.OK, self.info())
        if op == M.OP_RESOLVE:
            if (type(args) is not list or len(args) < 2 or type(args[0]) is not str or not args[0]
                    or args[1] not in (0, 4, 6)):
                return sess.respond(rid, M.PROTOCOL, "bad arguments")
            name, fam = args[0], args[1]

            def done(code, addrs):
                if gen != self.gen:
                    return
                if code == M.OK:
                    out = [a for a in addrs if net.family_ok(a, fam)]
                    if not out:
                        return sess.respond(rid, M.DNS, "no address of that family")
                    # §7.11: a RESOLVE result is cut short to fit a frame.
                    limit = self.link.max_payload - 32
                    size = 0
                    keep = []
                    for a in out:
                        size += len(a) + 2
                        if size > limit:
                            break
                        keep.append(a)
                    return sess.respond(rid, M.OK, keep)
                sess.respond(rid, code, addrs if type(addrs) is str else "resolve failed")
            return self.resolver.resolve(name, done)
        if op == M.OP_SET_BAUD:
            return self.set_baud(sess, rid, args)
        if op == M.OP_BAUD_COMMIT:
            sw = self.baud_switch
            if sw is None or sw[5] != 1:
                return sess.respond(rid, M.PROTOCOL, "no switch pending")
            self.baud_switch = None
            self.log("baud %d committed" % self.baud)
            return sess.respond(rid, M.OK, None)
        sess.respond(rid, M.UNSUPPORTED, "unknown op")

    def set_baud(self, sess, rid, args):
        """§5.7: agree now, switch delay_ms after the answer, fall back
        unless BAUD_COMMIT comes within 1000 ms of the switch."""
        if type(args) is not list or len(args) < 2 or len(args) > 3:
            return sess.respond(rid, M.PROTOCOL, "bad arguments")
        for a in args:
            if type(a) is not int or a < 0:
                return sess.respond(rid, M.PROTOCOL, "bad arguments")
        baud, delay = args[0], args[1]
        flow = self.flow if len(args) < 3 else args[2]
        if len(args) == 3 and flow not in (0, 1):
            return sess.respond(rid, M.PROTOCOL, "flow must be 0 or 1")
        if delay > 1000:
            return sess.respond(rid, M.PROTOCOL, "delay out of range")
        if baud < 9600 or baud > 5000000:
            return sess.respond(rid, M.UNSUPPORTED, "baud out of range")
        if flow and (self.c["rts"] < 0 or self.c["cts"] < 0):
            return sess.respond(rid, M.UNSUPPORTED, "no RTS/CTS pins configured")
        if self.baud_switch is not None:
            return sess.respond(rid, M.LIMIT, "a switch is in progress")
        self.baud_switch = [ticks_add(ticks_ms(), delay), baud, bool(flow), self.baud, self.flow, 0]
        sess.respond(rid, M.OK, None)

    def baud_timers(self):
        sw = self.baud_switch
        if sw is None or ticks_diff(ticks_ms(), sw[0]) < 0:
            return
        if sw[5] == 0:  # switch now, then wait for BAUD_COMMIT
            self.apply_line(sw[1], sw[2])
            sw[5] = 1
            sw[0] = ticks_add(ticks_ms(), 1000)
        else:  # no commit: back to the old setting
            self.baud_switch = None
            self.log("no BAUD_COMMIT: back to %d" % sw[3])
            self.apply_line(sw[3], sw[4])

    def apply_line(self, baud, flow):
        try:
            set_uart(self.uart, self.c, baud, flow)
        except Exception as e:
            self.log("cannot set UART: %r" % (e,))
            return
        self.baud, self.flow = baud, flow
        self.link.line_changed(baud, flow)

    # -- the loop ------------------------------------------------------------

    def read_uart(self):
        u = self.uart
        on_frame = self.link.on_frame
        while True:
            n = u.readinto(self.rxbuf)
            if not n:
                return
            self.slip.feed(self.rxmv[:n], on_frame, self._slip_drop)
            if n < len(self.rxbuf):
                return

    def _slip_drop(self, reason):
        self.link.drop("slip_too_long")

    def timeout(self):
        t = min(self.link.ms_to_next(), 1000)
        if self.resolver.busy():
            t = 0
        d = self.net.next_deadline()
        if d is not None:
            t = min(t, d)
        if self.baud_switch is not None:
            t = min(t, max(0, ticks_diff(self.baud_switch[0], ticks_ms())))
        if self.link.up and self.sess.wants_send() and self.link.can_send_new():
            t = 0
        if t == 0 and not self._tx_ready():
            t = 2  # the UART is busy with a frame: wait for it, do not spin
        if self.c["ssid"] and self.wifi.state != M.WIFI_UP:
            t = min(t, 250)
        return t

    def step(self):
        """One pass of the loop."""
        self.feed()
        for ev in self.poller.poll(self.timeout()):
            obj, flags = ev[0], ev[1]
            if obj is self.uart or (self.uart_key is not None and obj == self.uart_key):
                self.read_uart()
                continue
            conn = self.net.lookup(obj)
            if conn is None:
                continue
            try:
                conn.on_event(flags)
            except Exception as e:  # §13.8: RESET the stream, keep the loop
                self._stream_error(conn, e)
        self.read_uart()
        self.link.timers()
        self.net.timeouts()
        self.baud_timers()
        if self.wifi.step():
            self.wifi_changed()
        self.resolver.step()
        try:
            self.link.pump()
        except Exception as e:
            self._fatal_in_pump(e)
        self.net.update()
        self.housekeeping()

    def _stream_error(self, conn, e):
        self.log("stream error: %r" % (e,))
        st = getattr(conn, "st", None)
        if st is not None:
            self.sess.fail(st, net.code_of(e), "%s" % (e,))
        else:
            conn.close()

    def _fatal_in_pump(self, e):
        # A bug or a socket error surfacing inside fill: the stream state may
        # be inconsistent, so end the session (the peer reconnects at once).
        self.log("error while sending: %r" % (e,))
        if isinstance(e, MemoryError):
            gc.collect()
        self.link.end_session(lk.PROTOCOL_ERROR)

    def dns_server(self):
        """(ip, port) of the DNS server to query, or None for getaddrinfo."""
        v = self.c["dns"]
        if v == "getaddrinfo":
            return None
        if v:
            if v.count(":") == 1:  # IPv4:port
                host, _, port = v.partition(":")
                return host, int(port)
            return v, 53
        try:
            ip = self.wifi.wlan.ifconfig()[3]
        except Exception:
            return None
        if not ip or ip == "0.0.0.0":
            return None
        return ip, 53

    def setup_dns(self):
        srv = self.dns_server() if self.wifi.online() or self.c["dns"] else None
        cur = self.net.resolver.dns
        if srv == (None if cur is None else (cur.server, cur.port)):
            return
        client = None
        if srv is not None:
            try:
                client = dnsmod.DnsClient(srv[0], srv[1], self.log)
            except Exception as e:
                self.log("dns: cannot use %s:%d: %r; using getaddrinfo" % (srv[0], srv[1], e))
        self.net.use_dns(client)
        self.log("dns: %s" % ("%s:%d" % srv if client else "getaddrinfo"))

    def wifi_changed(self):
        self.setup_dns()
        d = self.wifi.info()
        d.pop(M.INFO_RSSI, None)
        if d != self.last_info:
            self.last_info = d
            self.log("wifi: state %d ip %s" % (self.wifi.state, self.wifi.ip or "-"))
            if self.link.up:
                self.sess.event(d)

    def housekeeping(self):
        now = self.last_tick
        self.uptime_ms()  # often enough that ticks never wrap between calls
        every = self.c["stats_ms"]
        if every and ticks_diff(now, self.last_stats) >= every:
            self.last_stats = now
            self.log("stats: link %r drops %r rto %d srtt %d cwnd %.1f out %d; mux %r; free %d"
                     % (self.link.counters, self.link.stats, self.link.rto, self.link.srtt,
                        self.link.cwnd, self.link.outstanding(), self.sess.counters, mem_free()))
        now = ticks_ms()
        if ticks_diff(now, self.last_gc) > 5000 and self.link.outstanding() == 0:
            self.last_gc = now
            gc.collect()

    def run(self):
        while True:
            try:
                self.step()
            except MemoryError:
                gc.collect()
                self.log("out of memory in the loop")
            except Exception as e:  # never let the loop die (§13.8)
                self.log("loop error: %r" % (e,))
                sleep_ms(10)


def fr_limit(max_payload):
    return 14 + max_payload


def make_log(enabled):
    if not enabled:
        return None

    def log(s):
        print("[%d] %s" % (ticks_ms(), s))
    return log


def main(path=cfgmod.PATH):
    model = model_name()
    c = cfgmod.load(path, model)
    log = make_log(c["log"] and c["uart"] != 0)
    budget = boot_budget(c, mem_free())
    frame = 14 + budget["max_payload"]
    rxbuf = c["rxbuf"] or max(4096, 4 * frame)
    txbuf = c["txbuf"] or 2 * frame + 4
    uart = make_uart(c, rxbuf, txbuf)
    wlan, network = make_wlan()
    wdt = make_wdt(c["wdt_ms"])
    app = App(c, uart, wlan, network, wdt, log)
    app.run()
