# What the firmware's protocol code costs per KiB forwarded, measured in
# the MicroPython VM (run.mjs --bench). Each figure is printed as
#   BENCH <name> <value> <unit>
# and collected by BenchmarkMicroPythonVM (firmware/vm_test.go).
#
# DATA frames carry 2 KiB payloads (max payload 2048, one DATA message of
# 2042 bytes each, stream id 1), data with SLIP special bytes at the rate
# of random data. "rx" is host -> device: SLIP decode, frame check and
# CRC, ARQ, CBOR decode, and handing the bytes to a stream (the discard
# service). "tx" is device -> host: reading from a stream (the source
# service), CBOR and frame headers, CRC, SLIP encode. Time is the VM's on
# this machine, not an ESP32's; heap bytes are what MicroPython allocates
# (gc.mem_alloc with the collector off), which is the same 32-bit object
# model as on an ESP32.
import gc
import time

from uproxy import cbor
from uproxy import frame as fr
from uproxy import msg as M
from uproxy import slip

import vm_tests as vt

FRAMES = 1000
PAYLOAD = 2048
CHUNK = PAYLOAD - 6  # [4, 1, bytes(2042)] fills the payload


def us():
    return time.ticks_us()


def report(name, value, unit):
    print("BENCH %s %s %s" % (name, value, unit))


def pseudo_random(n, seed):
    out = bytearray(n)
    x = seed
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out[i] = (x >> 16) & 0xFF
    return bytes(out)


def host_frames(n):
    """n SLIP-encoded host DATA frames, seq 0.., each one DATA message."""
    data = pseudo_random(CHUNK, 1)
    out = []
    buf = bytearray(14 + PAYLOAD)
    for seq in range(n):
        p = bytearray()
        M.data_head(p, 1, CHUNK)
        p.extend(data)
        k = fr.build(buf, fr.DATA, seq & 0xFFFF, 0, 0, p)
        out.append(slip.encode(bytes(buf[:k])))
    return out


def measure(fn, kib):
    """(µs per KiB, heap bytes allocated per KiB) of fn()."""
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    t0 = us()
    fn()
    dt = time.ticks_diff(us(), t0)
    a1 = gc.mem_alloc()
    gc.enable()
    gc.collect()
    return dt / kib, (a1 - a0) / kib


def rig():
    r = vt.Rig(window=16, max_payload=PAYLOAD, max_streams=4, stream_window=1 << 26)
    r.handshake()
    return r


def bench_rx():
    r = rig()
    r.send([M.OPEN, 1, M.KIND_SERVICE, "discard", 0, 1 << 20, {}])
    r.seq = 1
    r.pump()
    r.frames()
    # Frame i of the list has seq i; the OPEN took seq 0.
    wire = host_frames(FRAMES + 1)[1:]
    dec = r.dec
    on_frame = r.link.on_frame

    def run():
        for i, w in enumerate(wire):
            dec.feed(w, on_frame)
            if i % 8 == 7:
                r.link.pump()  # the ACKs the device owes
                r.out = bytearray()
    kib = FRAMES * CHUNK / 1024
    t, a = measure(run, kib)
    check_delivered = r.sess.counters["bytes_in"]
    assert check_delivered == FRAMES * CHUNK, check_delivered
    report("rx_total", "%.1f" % t, "us/KiB")
    report("rx_heap", "%.0f" % a, "B/KiB")


def bench_tx():
    r = rig()
    r.send([M.OPEN, 1, M.KIND_SERVICE, "source", 0, 1 << 30, {}])
    r.pump()
    r.frames()
    link = r.link
    link.z_lost = 0.0  # no loss seen: full-size frames from the start
    sent = [0]

    def sink(b):
        sent[0] += len(b)

    link.write = sink

    def run():
        for _ in range(FRAMES):
            link.snd_una = link.snd_nxt  # as if acknowledged at once
            for j in range(link.own_window):
                link.slen[j] = 0
            link.send_new(link.now())
    before = r.sess.counters["bytes_out"]
    kib = FRAMES * (PAYLOAD - 6) / 1024
    t, a = measure(run, kib)
    moved = r.sess.counters["bytes_out"] - before
    assert moved >= FRAMES * (PAYLOAD - 8), moved
    report("tx_total", "%.1f" % t, "us/KiB")
    report("tx_heap", "%.0f" % a, "B/KiB")


def bench_parts():
    data = pseudo_random(PAYLOAD, 2)
    kib = FRAMES * PAYLOAD / 1024
    import binascii
    frames = host_frames(FRAMES)
    raw = [slip.Decoder(1 << 14) for _ in range(1)]
    dec = raw[0]
    got = [0]

    def count(f):
        got[0] += len(f)

    def slip_dec():
        for w in frames:
            dec.feed(w, count)
    t, a = measure(slip_dec, kib)
    report("slip_decode", "%.1f" % t, "us/KiB")
    report("slip_decode_heap", "%.0f" % a, "B/KiB")

    def crc():
        mv = memoryview(data)
        for _ in range(FRAMES):
            binascii.crc32(mv)
    t, a = measure(crc, kib)
    report("crc32", "%.1f" % t, "us/KiB")

    buf = bytearray(14 + PAYLOAD)
    buf[10:10 + PAYLOAD] = data
    dst = bytearray(2 * len(buf) + 2)

    def slip_enc():
        for _ in range(FRAMES):
            slip.encode_into(buf, len(buf), dst)
    t, a = measure(slip_enc, kib)
    report("slip_encode", "%.1f" % t, "us/KiB")
    report("slip_encode_heap", "%.0f" % a, "B/KiB")

    msg = bytearray()
    M.data_head(msg, 1, CHUNK)
    msg.extend(data[:CHUNK])
    msg = bytes(msg)

    def cbor_dec():
        for _ in range(FRAMES):
            cbor.decode(msg, 0, len(msg))
    t, a = measure(cbor_dec, kib)
    report("cbor_decode_data", "%.1f" % t, "us/KiB")
    report("cbor_decode_data_heap", "%.0f" % a, "B/KiB")


def main():
    print("MicroPython", ".".join(str(x) for x in __import__("sys").implementation.version[:3]),
          "frames of", PAYLOAD, "bytes,", FRAMES, "frames per figure")
    bench_parts()
    bench_rx()
    bench_tx()
    return True
