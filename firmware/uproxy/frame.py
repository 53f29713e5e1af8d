# Native frames (docs/protocol.md §3, §4) and recognition of seed v3 frames
# (§3.5, §4.4). Frames are built in place in preallocated bytearrays.
import binascii
import struct

VERSION = 4
HDR = 10  # header bytes; a frame is HDR + payload + 4 (CRC)
OVERHEAD = 14

DATA = 1
ACK = 2
HELLO = 3
ACKREQ = 0x10

# Reject reasons (§3.4), also metric/log tokens.
SHORT = "short"
BAD_VERSION = "bad_version"
CRC = "crc"
BAD_TYPE = "bad_type"
TOO_LONG = "too_long"
BAD_LENGTH = "bad_length"


def parse(f, limit):
    """Check frame f (bytes) in the order of §3.4.

    Returns (type, flags, seq, ack, sack) or a reason string. limit is the
    largest payload accepted.
    """
    n = len(f)
    if n == 0:
        return SHORT
    if f[0] != VERSION:
        return BAD_VERSION
    if n < OVERHEAD:
        return SHORT
    if binascii.crc32(memoryview(f)[: n - 4]) != struct.unpack_from("<I", f, n - 4)[0]:
        return CRC
    _, tf, seq, ack, sack = struct.unpack_from("<BBHHI", f, 0)
    t = tf & 0x0F
    if t < DATA or t > HELLO:
        return BAD_TYPE
    if n - OVERHEAD > limit:
        return TOO_LONG
    if (t == ACK and n > OVERHEAD) or (t == DATA and n == OVERHEAD):
        return BAD_LENGTH
    return (t, tf & 0xF0, seq, ack, sack)


def seal(buf, tf, seq, ack, sack, plen):
    """Write header and CRC around a payload already at buf[10:10+plen];
    return the frame length."""
    struct.pack_into("<BBHHI", buf, 0, VERSION, tf, seq, ack, sack)
    end = HDR + plen
    struct.pack_into("<I", buf, end, binascii.crc32(memoryview(buf)[:end]))
    return end + 4


def build(buf, tf, seq, ack, sack, payload=b""):
    """Copy payload into buf and seal it; return the frame length."""
    n = len(payload)
    buf[HDR : HDR + n] = payload
    return seal(buf, tf, seq, ack, sack, n)


def crc16(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE (§4.4): only for recognising seed v3 frames, which
    the device drops (a byte loop, never on the hot path)."""
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        crc &= 0xFFFF
    return crc


def parse_v3(f):
    """Check a seed v3 frame (§3.5): (type, seq) or a reason string."""
    n = len(f)
    if n == 0:
        return SHORT
    if f[0] != 3:
        return BAD_VERSION
    if n < 8:
        return SHORT
    _, t, seq, plen, crc = struct.unpack_from("<BBHHH", f, 0)
    if n != 8 + plen:
        return BAD_LENGTH
    mv = memoryview(f)
    if crc16(mv[8:], crc16(mv[:6])) != crc:
        return CRC
    if t < 1 or t > 3:
        return BAD_TYPE
    return (t, seq)
