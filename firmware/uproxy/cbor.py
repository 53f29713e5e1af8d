# Strict CBOR for the subset of docs/protocol.md §7.1: unsigned and negative
# integers, byte and text strings, arrays, maps (uint keys), false/true/null.
# Definite lengths only. The decoder never raises anything but Malformed:
# input that cannot be split into items (truncated, reserved or indefinite
# heads, nesting too deep) raises Malformed; well-formed items outside the
# subset (floats, tags, other simple values, invalid UTF-8, maps with
# duplicate or non-integer keys) decode to UNSUPPORTED, which no message
# field accepts, so the message is rejected as §7.15 says.
import struct


class Malformed(ValueError):
    pass


class _Unsupported:
    def __repr__(self):
        return "UNSUPPORTED"


UNSUPPORTED = _Unsupported()

MAX_DEPTH = 8  # deepest message: REQUEST args / INFO map inside an array


def head(out, major, n):
    """Append the shortest head for major type major with argument n."""
    m = major << 5
    if n < 24:
        out.append(m | n)
    elif n < 0x100:
        out.append(m | 24)
        out.append(n)
    elif n < 0x10000:
        out.append(m | 25)
        out.extend(struct.pack(">H", n))
    elif n < 0x100000000:
        out.append(m | 26)
        out.extend(struct.pack(">I", n))
    else:
        out.append(m | 27)
        out.extend(struct.pack(">Q", n))


def head_len(n):
    """Bytes taken by the head of a string or array of length n."""
    if n < 24:
        return 1
    if n < 0x100:
        return 2
    if n < 0x10000:
        return 3
    if n < 0x100000000:
        return 5
    return 9


def encode(v, out):
    """Append the deterministic encoding of v (§7.1) to the bytearray out."""
    if v is None:
        out.append(0xF6)
    elif v is True:
        out.append(0xF5)
    elif v is False:
        out.append(0xF4)
    elif isinstance(v, int):
        if v >= 0:
            head(out, 0, v)
        else:
            head(out, 1, -1 - v)
    elif isinstance(v, str):
        b = v.encode()
        head(out, 3, len(b))
        out.extend(b)
    elif isinstance(v, (bytes, bytearray, memoryview)):
        head(out, 2, len(v))
        out.extend(v)
    elif isinstance(v, (list, tuple)):
        head(out, 4, len(v))
        for x in v:
            encode(x, out)
    elif isinstance(v, dict):
        keys = sorted(v)
        head(out, 5, len(keys))
        for k in keys:
            if not isinstance(k, int) or k < 0:
                raise ValueError("map keys must be unsigned integers")
            head(out, 0, k)
            encode(v[k], out)
    else:
        raise ValueError("cannot encode")
    return out


def dumps(v):
    return bytes(encode(v, bytearray()))


def _arg(b, i, end, ai):
    # Returns (argument, next index) for additional info ai at b[i-1].
    if ai < 24:
        return ai, i
    if ai == 24:
        if i + 1 > end:
            raise Malformed("truncated")
        return b[i], i + 1
    if ai == 25:
        if i + 2 > end:
            raise Malformed("truncated")
        return (b[i] << 8) | b[i + 1], i + 2
    if ai == 26:
        if i + 4 > end:
            raise Malformed("truncated")
        return struct.unpack_from(">I", b, i)[0], i + 4
    if ai == 27:
        if i + 8 > end:
            raise Malformed("truncated")
        return struct.unpack_from(">Q", b, i)[0], i + 8
    # 28..30 are reserved; 31 is an indefinite length or "break".
    raise Malformed("indefinite length" if ai == 31 else "reserved head")


def decode(b, i, end, depth=0):
    """Decode one item of b[i:end] (bytes, bytearray or memoryview).

    Returns (value, next index). Byte strings come back as memoryview
    slices of b (no copy): copy them to keep them past the buffer's life.
    """
    if i >= end:
        raise Malformed("truncated")
    ib = b[i]
    i += 1
    major = ib >> 5
    ai = ib & 0x1F
    if major == 7:
        if ai == 20:
            return False, i
        if ai == 21:
            return True, i
        if ai == 22:
            return None, i
        if ai < 24:
            return UNSUPPORTED, i  # other simple values
        if ai == 24:
            if i + 1 > end:
                raise Malformed("truncated")
            return UNSUPPORTED, i + 1
        if ai in (25, 26, 27):  # half, single, double floats
            n = 1 << (ai - 24)
            if i + n > end:
                raise Malformed("truncated")
            return UNSUPPORTED, i + n
        raise Malformed("indefinite length" if ai == 31 else "reserved head")
    n, i = _arg(b, i, end, ai)
    if major == 0:
        return n, i
    if major == 1:
        return -1 - n, i
    if major == 2 or major == 3:
        if n > end - i:
            raise Malformed("truncated")
        j = i + n
        if major == 2:
            return memoryview(b)[i:j], j
        try:
            return str(bytes(memoryview(b)[i:j]), "utf-8"), j
        except Exception:  # invalid UTF-8 (UnicodeError)
            return UNSUPPORTED, j
    if depth >= MAX_DEPTH:
        raise Malformed("nested too deep")
    if major == 4:
        if n > end - i:  # every item takes at least one byte
            raise Malformed("truncated")
        out = []
        for _ in range(n):
            v, i = decode(b, i, end, depth + 1)
            out.append(v)
        return out, i
    if major == 5:
        if 2 * n > end - i:
            raise Malformed("truncated")
        out = {}
        ok = True
        for _ in range(n):
            k, i = decode(b, i, end, depth + 1)
            v, i = decode(b, i, end, depth + 1)
            if type(k) is not int or k < 0 or k in out:
                ok = False
            else:
                out[k] = v
        return (out if ok else UNSUPPORTED), i
    # major 6: a tag followed by one item. Skip it, report unsupported.
    _, i = decode(b, i, end, depth + 1)
    return UNSUPPORTED, i


def loads(b):
    """Decode exactly one item from b; trailing bytes are Malformed."""
    v, i = decode(b, 0, len(b))
    if i != len(b):
        raise Malformed("trailing bytes")
    return v
