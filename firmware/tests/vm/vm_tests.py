# Codec and dispatch tests of the firmware, run under the real MicroPython
# VM (run.mjs) and, for debugging, under CPython:
#   PYTHONPATH=firmware:firmware/tests/vm python3 -c 'import vm_tests; vm_tests.main("testdata/vectors")'
# The last line printed is "N passed, N failed".
import gc
import json
import sys

from uproxy import cbor
from uproxy import frame as fr
from uproxy import link as lk
from uproxy import msg as M
from uproxy import mux
from uproxy import slip

VECTORS = "/vectors"
_results = [0, 0]


def h(s):
    return bytes.fromhex(s.replace(" ", ""))


def load(name):
    with open(VECTORS + "/" + name) as f:
        return json.loads(f.read())


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def eq(a, b, what=""):
    if a != b:
        raise AssertionError("%s: %r != %r" % (what, a, b))


# -- codecs against the golden vectors ----------------------------------------


def test_slip_vectors():
    for v in load("slip.json"):
        data = h(v["input_hex"])
        want = [h(x) for x in v["frames_hex"]]
        for step in (len(data) or 1, 1, 3):
            d = slip.Decoder(v["max"])
            got = []
            drops = []
            for i in range(0, len(data), step):
                d.feed(data[i:i + step], lambda f: got.append(bytes(f)), drops.append)
            eq(got, want, v["name"] + " frames, step %d" % step)
            eq(drops, v["drops"], v["name"] + " drops")
            eq(d.bad_escapes, v["bad_escapes"], v["name"] + " bad escapes")
        if v["canonical"]:
            enc = b"".join(slip.encode(f) for f in want)
            eq(enc, data, v["name"] + " encoder")


def test_slip_write_no_copy_path():
    out = []
    buf = bytearray(b"\x01\x02\x03xx")
    slip.write(out.append, buf, 3)
    eq(b"".join(bytes(x) for x in out), h("c0010203c0"), "plain")
    out = []
    buf = bytearray(h("c0dbdbc0") + b"zz")
    slip.write(out.append, buf, 4)
    eq(b"".join(bytes(x) for x in out), h("c0dbdcdbdddbdddbdcc0"), "escaped")


def test_frame_vectors():
    for v in load("frame.json"):
        f = h(v["input_hex"])
        r = fr.parse(f, v["max_payload"])
        if v["error"]:
            eq(r, v["error"], v["name"])
            continue
        hd = v["header"]
        eq(r, (hd["type"], hd["flags"], hd["seq"], hd["ack"], hd["sack"]), v["name"])
        p = h(v["payload_hex"])
        eq(bytes(memoryview(f)[10:len(f) - 4]), p, v["name"] + " payload")
        buf = bytearray(14 + len(p))
        n = fr.build(buf, hd["type"] | hd["flags"], hd["seq"], hd["ack"], hd["sack"], p)
        eq(bytes(buf[:n]), f, v["name"] + " build")
        eq(slip.encode(f), h(v["slip_hex"]), v["name"] + " slip")


def test_frame_v3_vectors():
    for v in load("frame_v3.json"):
        r = fr.parse_v3(h(v["input_hex"]))
        if v["error"]:
            eq(r, v["error"], v["name"])
        else:
            eq(r, (v["header"]["type"], v["header"]["seq"]), v["name"])


def test_crc_vectors():
    import binascii
    for v in load("crc.json"):
        data = h(v["input_hex"])
        if v["algorithm"] == "crc32-ieee":
            eq(binascii.crc32(data), v["value"], v["name"])
        else:
            eq(fr.crc16(data), v["value"], v["name"])


# -- CBOR -----------------------------------------------------------------------

# (value, encoding) pairs from docs/protocol.md §7 and §12.
CBOR_EXAMPLES = [
    ([1, 1, 1, "example.com", 80, 262144, {}],
     "87 01 01 01 6b 65 78 61 6d 70 6c 65 2e 63 6f 6d 18 50 1a 00 04 00 00 a0"),
    ([1, 3, 1, "example.com", 443, 262144, {1: True, 2: "example.com", 3: True, 5: 10000}],
     "87 01 03 01 6b 65 78 61 6d 70 6c 65 2e 63 6f 6d 19 01 bb 1a 00 04 00 00 a4 01 f5 02 6b 65 78 61"
     " 6d 70 6c 65 2e 63 6f 6d 03 f5 05 19 27 10"),
    ([1, 5, 2, "", 0, 65536, {}], "87 01 05 02 60 00 1a 00 01 00 00 a0"),
    ([1, 7, 3, "", 8080, 0, {4: 4}], "87 01 07 03 60 19 1f 90 00 a1 04 04"),
    ([1, 9, 4, "source", 0, 262144, {}], "87 01 09 04 66 73 6f 75 72 63 65 00 1a 00 04 00 00 a0"),
    ([2, 1, 8192, "", 0], "85 02 01 19 20 00 60 00"),
    ([2, 5, 8192, "192.168.1.50", 50123],
     "85 02 05 19 20 00 6c 31 39 32 2e 31 36 38 2e 31 2e 35 30 19 c3 cb"),
    ([3, 1, 1, "ECONNREFUSED"], "84 03 01 01 6c 45 43 4f 4e 4e 52 45 46 55 53 45 44"),
    ([3, 5, 0, ""], "84 03 05 00 60"),
    ([4, 1, b"hello"], "83 04 01 45 68 65 6c 6c 6f"),
    ([5, 1], "82 05 01"),
    ([6, 1, 65536], "83 06 01 1a 00 01 00 00"),
    ([7, 5, "192.0.2.53", 53, h("12340100")],
     "85 07 05 6a 31 39 32 2e 30 2e 32 2e 35 33 18 35 44 12 34 01 00"),
    ([8, 2, 7, "192.168.1.20", 51234, 8192],
     "86 08 02 07 6c 31 39 32 2e 31 36 38 2e 31 2e 32 30 19 c8 22 19 20 00"),
    ([9, 1, 1, ["example.com", 0]], "84 09 01 01 82 6b 65 78 61 6d 70 6c 65 2e 63 6f 6d 00"),
    ([10, 1, 3, "name not found"], "84 0a 01 03 6e 6e 61 6d 65 20 6e 6f 74 20 66 6f 75 6e 64"),
    ([9, 2, 2, None], "84 09 02 02 f6"),
    ([10, 2, 0, {1: "0.1.0", 2: "esp32c3", 3: 112640, 4: 2, 5: -61, 6: "192.168.1.50", 7: 123456,
                 8: "lab"}],
     "84 0a 02 00 a8 01 65 30 2e 31 2e 30 02 67 65 73 70 33 32 63 33 03 1a 00 01 b8 00 04 02 05 38 3c"
     " 06 6c 31 39 32 2e 31 36 38 2e 31 2e 35 30 07 1a 00 01 e2 40 08 63 6c 61 62"),
    ([9, 5, 4, [3000000, 50, 1]], "84 09 05 04 83 1a 00 2d c6 c0 18 32 01"),
    ([11, 1, {4: 2, 5: -58, 6: "192.168.1.50"}],
     "83 0b 01 a3 04 02 05 38 39 06 6c 31 39 32 2e 31 36 38 2e 31 2e 35 30"),
    ({1: 1, 2: 1, 3: 0, 4: 0x11223344, 5: 0, 6: 2048, 7: 32, 8: 1024, 9: 262144, 10: 255, 11: "dev",
      12: "host", 13: 921600},
     "ad 01 01 02 01 03 00 04 1a 11 22 33 44 05 00 06 19 08 00 07 18 20 08 19 04 00 09 1a 00 04 00 00"
     " 0a 18 ff 0b 63 64 65 76 0c 64 68 6f 73 74 0d 1a 00 0e 10 00"),
    (2 ** 32, "1b 00 00 00 01 00 00 00 00"),
    (-1, "20"),
    (-25, "38 18"),
    (-257, "39 01 00"),
    (False, "f4"),
]


def norm(v):
    # Byte strings decode as memoryviews: compare them as bytes.
    if type(v) is memoryview:
        return bytes(v)
    if type(v) is list:
        return [norm(x) for x in v]
    if type(v) is dict:
        return {k: norm(x) for k, x in v.items()}
    return v


def test_cbor_examples():
    for v, enc in CBOR_EXAMPLES:
        b = h(enc)
        eq(cbor.dumps(v), b, "encode %r" % (v,))
        eq(norm(cbor.loads(b)), norm(v), "decode %s" % enc)


def test_cbor_unsupported_items_are_values():
    # Well-formed but outside the subset: floats, tags, other simple values,
    # invalid UTF-8, non-integer or duplicate map keys.
    for enc in ("f9 3c 00", "fa 3f 80 00 00", "fb 3f f0 00 00 00 00 00 00", "c1 1a 00 00 00 01",
                "e0", "f8 20", "62 ff fe", "a1 61 61 01", "a2 01 01 01 02", "a1 20 01"):
        eq(cbor.loads(h(enc)), cbor.UNSUPPORTED, enc)


def test_cbor_malformed_raises_only_malformed():
    for enc in ("", "18", "19 01", "1a 00 00 00", "1b 00", "5f", "7f", "9f", "bf", "ff", "1c", "3e",
                "45 01 02", "83 01 02", "a1 01", "c1", "f8", "fb 00", "01 02",
                "81" * 40 + "00"):
        try:
            cbor.loads(h(enc))
        except cbor.Malformed:
            continue
        raise AssertionError("accepted " + enc)
    # Every prefix of every example, and every single-byte corruption of a
    # few, either decodes or raises Malformed: never anything else.
    n = 0
    for v, enc in CBOR_EXAMPLES:
        b = h(enc)
        for i in range(len(b)):
            try:
                cbor.loads(b[:i])
            except cbor.Malformed:
                n += 1
    check(n > 100, "prefixes tried")
    seed = 12345
    for v, enc in CBOR_EXAMPLES[:8]:
        b = bytearray(h(enc))
        for _ in range(60):
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            c = bytearray(b)
            c[seed % len(c)] = (seed >> 8) & 0xFF
            try:
                cbor.loads(bytes(c))
            except cbor.Malformed:
                pass


# -- link and mux with a fake host on fake UART bytes -----------------------------


class Clock:
    def __init__(self):
        self.t = 1000

    def __call__(self):
        return self.t


class FakeSock:
    """Stands in for a connected socket: takes at most `room` bytes per
    write, reads from `incoming`."""

    def __init__(self):
        self.written = bytearray()
        self.incoming = bytearray()
        self.room = 1 << 20
        self.eof = False


class FakeConn:
    def __init__(self, sess, st, sock):
        self.sess, self.st, self.sock = sess, st, sock
        self.fin = False
        self.closed = False

    def on_data(self, mv):
        n = min(len(mv), self.sock.room)
        self.sock.written.extend(mv[:n])
        return n

    def on_fin(self):
        self.fin = True

    def ready(self):
        return bool(self.sock.incoming) or self.sock.eof

    def read_into(self, mv):
        if not self.sock.incoming:
            return -1 if self.sock.eof else 0
        n = min(len(mv), len(self.sock.incoming))
        mv[:n] = self.sock.incoming[:n]
        self.sock.incoming = self.sock.incoming[n:]
        return n

    def close(self):
        self.closed = True


class FakeBackend:
    """The app's half of the mux backend, with a fake socket layer."""

    def __init__(self):
        self.socks = {}
        self.ups = 0
        self.downs = []

    def session_up(self, sess):
        self.ups += 1

    def session_down(self, sess, reason):
        self.downs.append(reason)

    def window_for(self, sess):
        return sess.stream_window

    def open(self, sess, st, kind, host, port, opts):
        if host == "refused.example":
            return sess.fail(st, M.REFUSED, "ECONNREFUSED")
        s = self.socks[st.sid] = FakeSock()
        st.ep = FakeConn(sess, st, s)
        sess.open_ok(st, "10.0.0.2" if kind != M.KIND_TCP else "", 40000 if kind != M.KIND_TCP else 0)

    def request(self, sess, rid, op, args):
        if op == M.OP_INFO:
            return sess.respond(rid, M.OK, {1: "test", 3: 1234})
        sess.respond(rid, M.UNSUPPORTED, "unknown op")


class Rig:
    """A device (link + mux) wired to a fake host through SLIP bytes."""

    HOST_SESSION = 0x11223344

    def __init__(self, window=8, max_payload=1024, max_streams=4, stream_window=4096, flow=True):
        self.clock = Clock()
        self.out = bytearray()
        self.backend = FakeBackend()
        feats = 0x1FF & ~M.F_TLS_VERIFY & ~M.F_TLS
        self.sess = mux.Session(self.backend, feats, max_streams, stream_window, 4)
        hello = {1: 1, 2: 1, 3: 1, 6: max_payload, 7: window, 8: max_streams, 9: stream_window,
                 10: feats, 11: "test", 12: "vm", 13: 921600}
        self.link = lk.Link(hello, self.sess, self._write, self.clock, flow=flow)
        self.dec = slip.Decoder(14 + max_payload)
        self.max_payload = max_payload
        self.hdec = slip.Decoder(20000)
        self.seq = 0  # host's next DATA seq
        self.expect = 0  # host's expected device seq
        self.host_mine = self.HOST_SESSION

    def _write(self, b):
        self.out.extend(b)

    def wire(self, frame_bytes):
        check(len(frame_bytes) <= 14 + self.max_payload, "test sends a frame the device cannot take")
        self.dec.feed(slip.encode(frame_bytes), self.link.on_frame)

    def pump(self):
        self.link.timers()
        self.link.pump()

    def frames(self):
        """Frames the device wrote since the last call, parsed."""
        got = []
        self.hdec.feed(bytes(self.out), lambda f: got.append(bytes(f)))
        self.out = bytearray()
        res = []
        for f in got:
            r = fr.parse(f, 8192)
            check(type(r) is tuple, "device sent a bad frame: %r" % (r,))
            res.append((r, bytes(memoryview(f)[10:len(f) - 4])))
        return res

    def host_hello(self, peer, est):
        m = {1: 1, 2: 1, 3: 0, 4: self.host_mine, 5: peer, 6: 2048, 7: 32, 8: 1024, 9: 262144, 10: 0x1FF,
             11: "dev", 12: "host", 13: 921600}
        if est:
            m[14] = True
        buf = bytearray(300)
        n = fr.build(buf, fr.HELLO, 0, 0, 0, cbor.dumps(m))
        self.wire(bytes(buf[:n]))

    def handshake(self):
        self.pump()
        fs = self.frames()
        check(fs and fs[0][0][0] == fr.HELLO, "device HELLO first")
        dev = cbor.loads(fs[-1][1])
        eq(dev[3], 1, "role")
        eq(dev[5], 0, "peer session before a host HELLO")
        self.host_hello(dev[4], False)
        self.pump()
        fs = self.frames()
        check(self.link.up, "device up after host HELLO naming it")
        ans = cbor.loads(fs[-1][1])
        eq(ans.get(14), True, "device says established")
        eq(ans[5], self.HOST_SESSION, "device names the host session")
        return dev[4]

    def send(self, *msgs, seq=None, flags=0, ack=None):
        p = b"".join(cbor.dumps(m) for m in msgs)
        if seq is None:
            seq = self.seq
            self.seq = (self.seq + 1) & 0xFFFF
        buf = bytearray(14 + len(p))
        n = fr.build(buf, fr.DATA | flags, seq, self.expect if ack is None else ack, 0, p)
        self.wire(bytes(buf[:n]))

    def ack(self, ack=None, sack=0, flags=0):
        buf = bytearray(14)
        fr.build(buf, fr.ACK | flags, 0, self.expect if ack is None else ack, sack)
        self.wire(bytes(buf))

    def messages(self, deliver=True):
        """Messages in the device's DATA frames (in order), acknowledging them."""
        out = []
        for (t, flags, seq, ack, sack), p in self.frames():
            if t != fr.DATA:
                continue
            if seq != self.expect:
                continue  # retransmission of something seen, or a gap
            self.expect = (self.expect + 1) & 0xFFFF
            i = 0
            while i < len(p):
                m, i = cbor.decode(p, i, len(p))
                out.append(norm(m))
        return out


def test_handshake_and_reboot_detection():
    r = Rig()
    first = r.handshake()
    eq(r.backend.ups, 1, "session up")
    # A HELLO from a new host session (host restart) ends the session and
    # draws a new device session id (§5.3, §5.4).
    r.host_mine = 0x55667788
    r.host_hello(0, False)
    check(not r.link.up, "down after a new host session")
    eq(r.backend.downs, [lk.PEER_RESTARTED], "reason")
    r.pump()
    fs = r.frames()
    h2 = cbor.loads(fs[-1][1])
    check(h2[4] != first, "new session id after the session ended")
    eq(h2[5], 0x55667788, "peer is the new host session")
    r.host_hello(h2[4], True)
    check(r.link.up, "up again")


def test_own_hello_looped_back_is_dropped():
    r = Rig()
    r.pump()
    fs = r.frames()
    r.wire(bytes(b"\x04\x03" + b"\x00" * 8) + b"")  # bad CRC: dropped as crc
    buf = bytearray(300)
    n = fr.build(buf, fr.HELLO, 0, 0, 0, fs[0][1])  # our own HELLO echoed
    r.wire(bytes(buf[:n]))
    eq(r.link.stats.get("bad_hello"), 1, "looped-back HELLO")
    check(not r.link.up, "still down")


def test_data_before_session_and_seed_v3_dropped():
    r = Rig()
    r.send([M.REQUEST, 1, M.OP_ECHO, b"x"])
    eq(r.link.stats.get("no_session"), 1, "no_session")
    r.wire(h("0303010000009658"))
    eq(r.link.stats.get("seed_v3"), 1, "seed_v3")


def test_echo_request_info_and_unknown_op():
    r = Rig()
    r.handshake()
    r.send([M.REQUEST, 7, M.OP_ECHO, h("00c0ff")], [M.REQUEST, 8, M.OP_INFO, None],
           [M.REQUEST, 9, 99, None], [M.REQUEST, 10, M.OP_ECHO, "not bytes"])
    r.pump()
    ms = r.messages()
    eq(ms, [[10, 7, 0, h("00c0ff")], [10, 8, 0, {1: "test", 3: 1234}], [10, 9, 8, "unknown op"],
            [10, 10, 7, "bad arguments"]], "responses")


def test_service_echo_stream():
    r = Rig()
    r.handshake()
    data = bytes(range(256)) * 8  # 2 KiB with c0/db inside
    r.send([M.OPEN, 1, M.KIND_SERVICE, "echo", 0, 65536, {}])
    r.pump()
    ms = r.messages()
    eq(ms, [[M.OPEN_OK, 1, 4096, "", 0]], "OPEN_OK")
    r.send([M.DATA, 1, data[:900]])
    r.send([M.DATA, 1, data[900:1800]])
    r.send([M.DATA, 1, data[1800:]], [M.FIN, 1])
    got = bytearray()
    fin = False
    credit = 0
    for _ in range(10):
        r.pump()
        for m in r.messages():
            if m[0] == M.DATA:
                got.extend(m[2])
            elif m[0] == M.FIN:
                fin = True
            elif m[0] == M.CREDIT:
                credit += m[2]
        r.ack()
    eq(bytes(got), data, "echoed bytes")
    check(fin, "FIN after the echo")
    check(1 not in r.sess.streams, "stream closed after both FINs")


def test_service_source_pattern_and_credit():
    r = Rig(max_payload=512)
    r.handshake()
    r.send([M.OPEN, 3, M.KIND_SERVICE, "source", 0, 3000, {}])
    got = bytearray()
    for _ in range(20):
        r.pump()
        for m in r.messages():
            if m[0] == M.DATA:
                got.extend(m[2])
        r.ack()
    eq(len(got), 3000, "source stops at the credit")
    eq(bytes(got), bytes(i % 251 for i in range(3000)), "pattern i mod 251")
    r.send([M.CREDIT, 3, 1000], [M.FIN, 3])
    for _ in range(5):
        r.pump()
        for m in r.messages():
            if m[0] == M.DATA:
                got.extend(m[2])
        r.ack()
    eq(bytes(got[3000:]), bytes(i % 251 for i in range(3000, len(got))), "pattern continues")


def test_tcp_open_through_fake_socket_and_credit():
    r = Rig(stream_window=4096)
    r.handshake()
    r.send([M.OPEN, 1, M.KIND_TCP, "example.com", 80, 10000, {5: 5000}])
    r.pump()
    eq(r.messages(), [[M.OPEN_OK, 1, 4096, "", 0]], "connected")
    sock = r.backend.socks[1]
    sock.room = 100  # the socket takes 100 bytes of each write
    r.send([M.DATA, 1, b"a" * 1000])
    eq(bytes(sock.written), b"a" * 100, "socket got what it took")
    r.pump()
    eq(r.messages(), [], "no credit yet: 100 < window/4")
    sock.room = 4000
    r.send([M.DATA, 1, b"b" * 1000])
    r.send([M.DATA, 1, b"c" * 1000])
    r.pump()
    creds = [m for m in r.messages() if m[0] == M.CREDIT]
    # Consumed 2100 of 4096: returned in batches of at least window/4 = 1024 (§9.2).
    eq(creds, [[M.CREDIT, 1, 2100]], "credit returned once the batch is reached")
    # The host may have 4096 - 3000 + 2100 = 3196 bytes in flight: one more
    # byte is a violation (§9.3).
    for _ in range(3):
        r.send([M.DATA, 1, b"x" * 1000])
    r.send([M.DATA, 1, b"x" * 197])
    r.pump()
    ms = r.messages()
    check([M.RESET, 1, M.PROTOCOL, "credit exceeded"] in ms, "RESET 7 on credit overrun: %r" % (ms,))
    check(1 not in r.sess.streams, "stream gone")
    check(sock.written.count(b"x") == 3000, "data within credit reached the socket")
    # Late messages for a closed sid are ignored, not answered (§8.8).
    r.send([M.DATA, 1, b"late"])
    r.pump()
    eq(r.messages(), [], "ignored")


def test_socket_data_to_host_and_eof():
    r = Rig()
    r.handshake()
    r.send([M.OPEN, 1, M.KIND_TCP, "example.com", 80, 1500, {}])
    r.pump()
    r.messages()
    sock = r.backend.socks[1]
    sock.incoming.extend(b"y" * 2000)
    sock.eof = True
    got = bytearray()
    for _ in range(5):
        r.pump()
        for m in r.messages():
            if m[0] == M.DATA:
                got.extend(m[2])
            check(m[0] != M.FIN, "no FIN before all data went out")
        r.ack()
    eq(len(got), 1500, "stops at the credit")
    r.send([M.CREDIT, 1, 1000])
    seen_fin = False
    for _ in range(5):
        r.pump()
        for m in r.messages():
            if m[0] == M.DATA:
                check(not seen_fin, "DATA after FIN")
                got.extend(m[2])
            if m[0] == M.FIN:
                seen_fin = True
        r.ack()
    eq(len(got), 2000, "all data")
    check(seen_fin, "FIN after the data")


def test_open_refusals():
    r = Rig(max_streams=2)
    r.handshake()
    r.send([M.OPEN, 2, M.KIND_TCP, "a", 1, 100, {}],  # even sid
           [M.OPEN, 1, 9, "a", 1, 100, {}],  # unknown kind
           [M.OPEN, 3, M.KIND_TCP, "", 80, 100, {}],  # no host
           [M.OPEN, 5, M.KIND_SERVICE, "nope", 0, 100, {}],  # unknown service
           [M.OPEN, 7, M.KIND_TCP, "a", 1, 100, {1: True, 3: False}],  # no TLS feature
           [M.OPEN, 9, M.KIND_UDP, "", 0, 100, {1: True}],  # tls on UDP
           [M.OPEN, 11, M.KIND_TCP, "refused.example", 80, 100, {}],
           [M.OPEN, 13, M.KIND_SERVICE, "discard", 0, 100, {}],
           [M.OPEN, 15, M.KIND_SERVICE, "discard", 0, 100, {}],
           [M.OPEN, 17, M.KIND_SERVICE, "discard", 0, 100, {}],  # over max_streams
           [M.OPEN, 13, M.KIND_SERVICE, "discard", 0, 100, {}],  # sid in use
           [M.OPEN, 19, M.KIND_TCP, 5, 80, 100, {}])  # wrong type
    r.pump()
    codes = [(m[1], m[2]) for m in r.messages() if m[0] == M.RESET]
    eq(codes, [(2, 7), (1, 8), (3, 7), (5, 8), (7, 8), (9, 8), (11, 1), (17, 6), (13, 7), (19, 7)],
       "refusal codes")


def test_unknown_sid_and_malformed_messages():
    r = Rig()
    r.handshake()
    r.send([M.DATA, 21, b"x"], [M.CREDIT, 4, 10], [M.RESET, 23, 0, ""], "not an array", [99, 1],
           [M.DATA, 0, b"x"], [M.REQUEST, "id", 1, None], [M.REQUEST, 5], [M.EVENT, 1, {}])
    r.pump()
    eq(r.messages(), [[M.RESET, 21, 7, "unknown stream"], [M.RESET, 4, 7, "unknown stream"],
                      [M.RESPONSE, 5, 7, None]], "answers")
    check(r.link.up, "still up")
    # A payload that cannot be split into items ends the session (§7.15).
    buf = bytearray(14 + 3)
    n = fr.build(buf, fr.DATA, r.seq, r.expect, 0, h("83 04 5f"))
    r.seq += 1
    r.wire(bytes(buf[:n]))
    check(not r.link.up, "protocol error ends the session")
    eq(r.backend.downs[-1], lk.PROTOCOL_ERROR, "reason")


def test_sack_and_retransmission():
    r = Rig(window=8)
    r.handshake()
    # Host frames 0, 2, 3 arrive; 1 is lost: the device ACKs at once with
    # ack 1 and sack 0b11 (§6.3).
    r.send([M.REQUEST, 1, M.OP_ECHO, b"a"], seq=0)
    r.send([M.REQUEST, 3, M.OP_ECHO, b"c"], seq=2)
    r.send([M.REQUEST, 4, M.OP_ECHO, b"d"], seq=3)
    r.pump()
    fs = r.frames()
    first = fs
    acks = [(f[0][3], f[0][4]) for f in fs]
    eq(acks[-1], (1, 0b11), "ack/sack with the hole")
    r.send([M.REQUEST, 2, M.OP_ECHO, b"b"], seq=1)
    r.seq = 4
    r.pump()
    fs = r.frames()
    eq(fs[-1][0][3], 4, "all delivered")
    ids = []
    for (t, fl, seq, ack, sack), p in first + fs:
        if t == fr.DATA:
            i = 0
            while i < len(p):
                m, i = cbor.decode(p, i, len(p))
                ids.append(m[1])
    eq(sorted(ids), [1, 2, 3, 4], "every request answered once, in seq order")
    # Device DATA that the host never acknowledges is resent after the RTO
    # with ACKREQ and the same seq (§6.5).
    dseqs = [f[0][2] for f in first + fs if f[0][0] == fr.DATA]
    r.clock.t += 600
    r.ack(ack=0)  # keeps the link alive, acknowledges nothing
    r.pump()
    fs = r.frames()
    re = [f for f in fs if f[0][0] == fr.DATA]
    check(re and re[0][0][1] == fr.ACKREQ and re[0][0][2] == dseqs[0], "retransmission: %r" % (fs,))
    # A later frame sacked: the earlier one is fast-retransmitted.
    r.ack(ack=dseqs[0] + 1)


def test_keepalive_and_dead_link():
    r = Rig()
    r.handshake()
    r.clock.t += 310
    r.pump()
    fs = r.frames()
    check(any(f[0][0] == fr.ACK and f[0][1] == fr.ACKREQ for f in fs), "keepalive probe")
    r.ack(flags=fr.ACKREQ)
    r.pump()
    fs = r.frames()
    check(any(f[0][0] == fr.ACK and f[0][1] == 0 for f in fs), "answer without ACKREQ")
    r.clock.t += 1600
    r.pump()
    check(not r.link.up, "dead after 1.5 s of silence")
    eq(r.backend.downs, [lk.LINK_DEAD], "reason")


def test_hostile_messages_never_raise():
    # Random messages of every type with random field values: the session
    # answers, ignores or resets, but nothing but cbor.Malformed may escape
    # deliver (§7.15, §13.8), and the link stays up.
    r = Rig(max_streams=8)
    r.handshake()
    seed = [987654321]

    def rnd(n):
        seed[0] = (seed[0] * 1103515245 + 12345) & 0x7FFFFFFF
        return (seed[0] >> 8) % n

    def value(depth=0):
        k = rnd(11 if depth < 2 else 8)
        if k == 0:
            return rnd(40)
        if k == 1:
            return -1 - rnd(300)
        if k == 2:
            return rnd(1 << 30) * 4
        if k == 3:
            return ["", "echo", "source", "discard", "a", "127.0.0.1", "x" * 70][rnd(7)]
        if k == 4:
            return bytes(rnd(256) for _ in range(rnd(5)))
        if k == 5:
            return None
        if k == 6:
            return rnd(2) == 0
        if k == 7:
            return rnd(65536)
        if k == 8:
            return [value(depth + 1) for _ in range(rnd(4))]
        return {rnd(8): value(depth + 1) for _ in range(rnd(4))}

    sent = 0
    for _ in range(300):
        t = 1 + rnd(12)
        m = [t] + [value() for _ in range(rnd(8))]
        if rnd(3) == 0 and len(m) > 1:
            m[1] = 1 + 2 * rnd(6)  # often a plausible odd sid
        try:
            b = cbor.dumps(m)
        except ValueError:
            continue
        if len(b) > 1000:
            continue
        r.send(m)
        sent += 1
        r.pump()
        r.messages()
        r.ack()
        check(r.link.up, "link survived %r" % (m,))
    check(sent > 200, "messages sent")


def test_window_is_a_power_of_two_across_the_wrap():
    # Slots are indexed by seq mod W: with W = 11, frames 65531 and 4 would
    # share a slot. The link rounds its window down to a power of two.
    r = Rig(window=11)
    eq(r.link.own_window, 8, "rounded down")
    r.handshake()
    r.link.rcv_nxt = 65532
    r.seq = 65532
    order = [65533, 65535, 0, 1, 2, 65532, 65534]  # holes, then filled
    for s in order:
        r.send([M.REQUEST, s, M.OP_ECHO, b"w"], seq=s)
    r.pump()
    ids = []
    for (t, fl, seq, ack, sack), p in r.frames():
        if t == fr.DATA:
            i = 0
            while i < len(p):
                m, i = cbor.decode(p, i, len(p))
                ids.append(m[1])
    eq(ids, [65532, 65533, 65534, 65535, 0, 1, 2], "each delivered once, in seq order")
    eq(r.link.rcv_nxt, 3, "expect after the wrap")


def test_sequence_wrap():
    r = Rig(window=4)
    r.handshake()
    r.link.rcv_nxt = 65534
    r.seq = 65534
    for i in range(4):
        r.send([M.REQUEST, 100 + i, M.OP_ECHO, b"w"])
    r.pump()
    eq(r.seq, 2, "host wrapped")
    fs = r.frames()
    eq(fs[-1][0][3], 2, "device ack wrapped")


# -- the modules that touch the network, with a stub socket module -----------------


class _StubSocket:
    """What net.py needs of socket when the VM has none: getaddrinfo with a
    fixed table, and the constants."""

    SOCK_STREAM = 1
    SOCK_DGRAM = 2
    SOL_SOCKET = 1
    SO_REUSEADDR = 4
    calls = []
    table = {"lab.example": ["192.0.2.7", "2001:db8::7"]}

    @classmethod
    def getaddrinfo(cls, host, port, af=0, kind=0):
        cls.calls.append(host)
        if host in cls.table:
            return [(2 if ":" not in a else 10, 1, 0, "", (a, port)) for a in cls.table[host]]
        if ":" in host or host.replace(".", "").isdigit():
            return [(2, 1, 0, "", (host, port))]
        raise OSError(-2, "name not found")


def _net():
    try:
        import socket  # noqa: F401
    except ImportError:
        sys.modules["socket"] = _StubSocket
    from uproxy import net
    return net


def test_network_modules_import():
    _net()
    from uproxy import app, config, wifi  # noqa: F401


def test_resolver_bounded_and_cached():
    net = _net()
    calls = []

    def gai(name, port):
        calls.append(name)
        return _StubSocket.getaddrinfo(name, port)
    up = [True]
    r = net.Resolver(getaddrinfo=gai, online=lambda: up[0])
    got = []
    r.resolve("192.0.2.1", lambda c, a: got.append((c, a)))
    eq(got, [(M.OK, ["192.0.2.1"])], "literal answered at once")
    eq(calls, [], "literal never looked up")
    r.resolve("lab.example", lambda c, a: got.append((c, a)))
    r.resolve("lab.example", lambda c, a: got.append((c, a)))
    r.resolve("nx.example", lambda c, a: got.append((c, a)))
    eq(len(got), 1, "names wait for step()")
    r.step()
    eq(calls, ["lab.example"], "one lookup per step, shared by both requests")
    eq(got[1:], [(M.OK, ["192.0.2.7", "2001:db8::7"])] * 2, "answers")
    r.step()
    eq(got[-1][0], M.DNS, "failure")
    r.resolve("nx.example", lambda c, a: got.append((c, a)))
    eq(got[-1][0], M.DNS, "negative cache answers at once")
    eq(calls, ["lab.example", "nx.example"], "no second lookup")
    up[0] = False
    r.resolve("other.example", lambda c, a: got.append((c, a)))
    eq(got[-1][0], M.UNREACHABLE, "Wi-Fi down: code 2 without a lookup")


def test_dns_messages():
    _net()
    from uproxy import dns
    q = dns.query(0x1234, "fw-test.example", dns.A)
    eq(q, h("1234 0100 0001 0000 0000 0000 07 66772d74657374 07 6578616d706c65 00 0001 0001"), "A query")
    # A response with the question, a CNAME and an A record behind a
    # compression pointer, TTL 60 s.
    resp = h("1234 8180 0001 0002 0000 0000"
             "07 66772d74657374 07 6578616d706c65 00 0001 0001"
             "c00c 0005 0001 0000003c 0006 03 777777 c014"
             "c02d 0001 0001 0000003c 0004 c0000207")
    eq(dns.parse(resp), (0x1234, 0, ["192.0.2.7"], 60000), "answer")
    eq(dns.parse(h("1234 8183 0000 0000 0000 0000"))[1], 3, "NXDOMAIN")
    six = h("0001 8180 0000 0001 0000 0000 c00c 001c 0001 00000e10 0010 20010db8000000000000000000000007")
    eq(dns.parse(six)[2], ["2001:db8:0:0:0:0:0:7"], "AAAA")
    for bad in ("", "1234", "1234 0100 0000 0000 0000 0000", "1234 8180 0000 0001 0000 0000 c0"):
        try:
            dns.parse(h(bad))
        except (ValueError, IndexError):
            continue
        raise AssertionError("accepted %r" % bad)
    check(dns.valid_name("a-b.example") and not dns.valid_name("a..b") and not dns.valid_name("x" * 64 + ".e"),
          "names")


def test_error_codes():
    net = _net()
    import errno
    eq(net.code_of(OSError(errno.ECONNREFUSED, "x")), M.REFUSED, "refused")
    eq(net.code_of(OSError(113, "x")), M.UNREACHABLE, "lwIP EHOSTUNREACH")
    eq(net.code_of(OSError(-0x2700, "x")), M.TLS, "mbedTLS error")
    eq(net.code_of(MemoryError()), M.NO_MEMORY, "memory")
    eq(net.code_of(ValueError()), M.INTERNAL, "other")
    check(net.is_ip("10.0.0.1") and net.is_ip("::1") and not net.is_ip("a.b.c.d"), "is_ip")


def test_config_defaults_and_validation():
    _net()
    from uproxy import config
    c = config.merge({}, "esp32c3")
    eq((c["uart"], c["tx"], c["rx"], c["rts"], c["cts"], c["baud"], c["flow"]),
       (1, 4, 5, 6, 7, 921600, "rtscts"), "C3 defaults match the host's line settings")
    eq(config.merge({}, "esp32")["uart"], 2, "classic ESP32 uses UART2")
    eq(config.merge({"tx": 10, "unknown": 1}, "esp32s3")["tx"], 10, "override")
    for bad in ({"baud": 100}, {"flow": "xon"}, {"window": 33}, {"ssid": 5}, {"wdt_ms": 500},
                {"dns": "1.2.3.4:x"}, {"dns": ":53"}):
        try:
            config.merge(bad, "esp32c3")
        except config.ConfigError:
            continue
        raise AssertionError("accepted %r" % (bad,))
    d = config.describe(config.merge({"password": "hunter2"}, "esp32c3"))
    check("hunter2" not in d and "password=(set)" in d, "password masked: " + d)


def test_boot_budget_fits_the_heap():
    _net()
    from uproxy import app, config
    c = config.merge({}, "esp32c3")
    for free in (300000, 160000, 100000, 60000, 30000):
        b = app.boot_budget(c, free)
        check(256 <= b["max_payload"] <= 2048 and 2 <= b["window"] <= 16, "%d: %r" % (free, b))
        check(b["window"] & (b["window"] - 1) == 0, "window a power of two: %r" % (b,))
        cost = (b["window"] * 2 * (b["max_payload"] + 14) + b["max_streams"] * (b["stream_window"] + 1024))
        check(cost <= max(free - 24 * 1024, 0) or b["max_streams"] == 1, "%d: %r costs %d" % (free, b, cost))
    eq(app.boot_budget(c, 10 ** 7), {"max_payload": 2048, "window": 16, "max_streams": 16,
                                     "stream_window": 8192}, "plenty of heap: the configured values")


class _FakeWLAN:
    def __init__(self):
        self.up = False
        self.connects = 0

    def active(self, on=None):
        return True

    def connect(self, ssid, pw):
        self.connects += 1

    def disconnect(self):
        pass

    def isconnected(self):
        return self.up

    def ifconfig(self):
        return ("192.168.1.50", "255.255.255.0", "192.168.1.1", "192.168.1.1")

    def status(self, what=None):
        return -61


def test_wifi_reconnect_with_backoff():
    _net()
    from uproxy import wifi
    w = _FakeWLAN()
    wf = wifi.WiFi(w, "lab", "secret")
    check(wf.step(), "connecting is a change")
    eq((wf.state, w.connects), (M.WIFI_CONNECTING, 1), "first attempt")
    wf.started -= wifi.CONNECT_TIMEOUT  # the attempt times out
    wf.step()
    eq(wf.state, M.WIFI_DOWN, "gave up")
    eq(wf.backoff, 2 * wifi.BACKOFF_MIN, "backoff doubled")
    wf.next_try -= wifi.BACKOFF_MIN
    wf.step()
    eq(w.connects, 2, "retried after the backoff")
    w.up = True
    check(wf.step(), "up is a change")
    eq(wf.info(), {M.INFO_WIFI: M.WIFI_UP, M.INFO_SSID: "lab", M.INFO_IP: "192.168.1.50", M.INFO_RSSI: -61},
       "INFO keys")
    eq(wf.backoff, wifi.BACKOFF_MIN, "backoff reset once connected")


# -- the app's loop on a fake UART, against a host-role link -------------------------


def _fake_uart_class():
    import io
    import select

    class FakeUART(io.IOBase):
        """A UART the app can poll: bytes from the host wait in rx; what the
        app writes goes to tx. Like a board's UART, readinto returns None
        when nothing is waiting."""

        def __init__(self):
            self.rx = bytearray()
            self.tx = bytearray()

        def ioctl(self, req, arg):
            if req == 3:  # MP_STREAM_POLL
                r = 0
                if arg & select.POLLIN and self.rx:
                    r |= select.POLLIN
                if arg & select.POLLOUT:
                    r |= select.POLLOUT
                return r
            return 0

        def readinto(self, buf):
            n = min(len(buf), len(self.rx))
            if not n:
                return None
            buf[:n] = self.rx[:n]
            self.rx = self.rx[n:]
            return n

        def write(self, b):
            self.tx.extend(b)
            return len(b)

        def txdone(self):
            return True

    return FakeUART


class _HostUpper:
    def __init__(self):
        self.msgs = []
        self.queue = []
        self.ups = 0

    def up(self, link):
        self.ups += 1

    def down(self, reason):
        pass

    def deliver(self, p):
        i = 0
        p = bytes(p)
        while i < len(p):
            m, i = cbor.decode(p, i, len(p))
            self.msgs.append(norm(m))

    def fill(self, buf, off, limit):
        n = 0
        while self.queue and n + len(self.queue[0]) <= limit:
            b = self.queue.pop(0)
            buf[off + n:off + n + len(b)] = b
            n += len(b)
        return n


def test_app_loop_on_micropython():
    if sys.implementation.name != "micropython":
        return  # CPython cannot poll an io.IOBase; the CPython end-to-end tests cover the app there
    _net()
    from uproxy import app, config
    import time
    c = config.merge({"model": "esp32c3", "log": False}, "esp32c3")
    uart = _fake_uart_class()()
    a = app.App(c, uart)
    a.timeout = lambda: 0  # never sleep in poll: the test drives the clock
    hu = _HostUpper()
    hello = {1: 1, 2: 1, 3: 0, 6: 2048, 7: 32, 8: 1024, 9: 262144, 10: 0x1FF, 13: 921600}
    host = lk.Link(hello, hu, lambda b: uart.rx.extend(b), time.ticks_ms)
    hdec = slip.Decoder(14 + 2048)

    def spin(n=20):
        for _ in range(n):
            host.timers()
            host.pump()
            a.step()
            if uart.tx:
                data, uart.tx = bytes(uart.tx), bytearray()
                hdec.feed(data, host.on_frame)

    spin()
    check(host.up and a.link.up, "handshake through the app's loop")
    peer = host.peer_hello
    eq((peer[3], peer[11], peer[12]), (1, "0.1.0", "esp32c3"), "device HELLO")
    check(peer[10] & M.F_SERVICE and not peer[10] & M.F_TLS, "features: services, no ssl module here")
    hu.queue.append(cbor.dumps([M.REQUEST, 1, M.OP_INFO, None]))
    hu.queue.append(cbor.dumps([M.REQUEST, 2, M.OP_SET_BAUD, [115200, 0, 1]]))
    hu.queue.append(cbor.dumps([M.OPEN, 1, M.KIND_SERVICE, "echo", 0, 65536, {}]))
    spin()
    resp = [m for m in hu.msgs if m[0] == M.RESPONSE]
    eq(resp[0][:3], [M.RESPONSE, 1, M.OK], "INFO answered")
    info = resp[0][3]
    check(info[M.INFO_FIRMWARE] == "0.1.0" and info[M.INFO_MODEL] == "esp32c3"
          and info[M.INFO_FREE_MEM] > 0 and M.INFO_UPTIME in info, "INFO %r" % (info,))
    # SET_BAUD is agreed; the switch itself fails quietly here (no machine
    # module) and the device stays on its rate.
    eq(resp[1], [M.RESPONSE, 2, M.OK, None], "SET_BAUD agreed")
    check([M.OPEN_OK, 1, a.budget["stream_window"], "", 0] in hu.msgs, "echo service opened: %r" % (hu.msgs,))
    hu.queue.append(cbor.dumps([M.DATA, 1, b"through the loop \xc0\xdb"]))
    spin()
    echoed = b"".join(m[2] for m in hu.msgs if m[0] == M.DATA)
    eq(echoed, b"through the loop \xc0\xdb", "echo through the app")


# -- runner ------------------------------------------------------------------------


def run(names=None):
    g = globals()
    tests = sorted(k for k in g if k.startswith("test_"))
    for name in tests:
        if names and name not in names:
            continue
        gc.collect()
        try:
            g[name]()
            _results[0] += 1
            print("ok   " + name)
        except Exception as e:
            _results[1] += 1
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
            if hasattr(sys, "print_exception"):
                sys.print_exception(e)
            else:
                import traceback
                traceback.print_exc()
    print("%d passed, %d failed" % (_results[0], _results[1]))
    return _results[1] == 0


def main(vectors=None):
    global VECTORS
    if vectors:
        VECTORS = vectors
    return run()
