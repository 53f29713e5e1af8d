# Message types, kinds, codes and encoders (docs/protocol.md §7, §10).
# protocol: must match firmware and docs/protocol.md
from . import cbor

OPEN = 1
OPEN_OK = 2
RESET = 3
DATA = 4
FIN = 5
CREDIT = 6
DGRAM = 7
ACCEPT = 8
REQUEST = 9
RESPONSE = 10
EVENT = 11

KIND_TCP = 1
KIND_UDP = 2
KIND_LISTEN = 3
KIND_SERVICE = 4

# OPEN options (§7.3)
OPT_TLS = 1
OPT_SNI = 2
OPT_VERIFY = 3
OPT_BACKLOG = 4
OPT_TIMEOUT = 5

# REQUEST ops (§7.12)
OP_RESOLVE = 1
OP_INFO = 2
OP_ECHO = 3
OP_SET_BAUD = 4
OP_BAUD_COMMIT = 5

EVENT_INFO = 1

# HELLO feature bits (§5.1)
F_TCP = 1
F_UDP = 2
F_LISTEN = 4
F_TLS = 8
F_TLS_VERIFY = 16
F_SERVICE = 32
F_RESOLVE = 64
F_INFO = 128
F_BAUD = 256

# Error codes (§10)
OK = 0
REFUSED = 1
UNREACHABLE = 2
DNS = 3
TIMEOUT = 4
TLS = 5
LIMIT = 6
PROTOCOL = 7
UNSUPPORTED = 8
IN_USE = 9
DENIED = 10
RESET_BY_PEER = 11
INTERNAL = 12
NO_MEMORY = 13

# INFO keys (§7.12)
INFO_FIRMWARE = 1
INFO_MODEL = 2
INFO_FREE_MEM = 3
INFO_WIFI = 4
INFO_RSSI = 5
INFO_IP = 6
INFO_UPTIME = 7
INFO_SSID = 8

WIFI_DOWN = 0
WIFI_CONNECTING = 1
WIFI_UP = 2

MAX_REASON = 64


def reason_text(s):
    """A RESET reason cut to 64 bytes (§7.5) on a character boundary."""
    s = str(s)
    while len(s.encode()) > MAX_REASON:
        s = s[:-1]
    return s


def encode(m):
    return cbor.dumps(m)


def data_head(out, sid, n):
    """Append the head of [4, sid, bytes(n)] (§7.6)."""
    out.append(0x83)
    out.append(DATA)
    cbor.head(out, 0, sid)
    cbor.head(out, 2, n)


def data_overhead(sid, n):
    return 2 + cbor.head_len(sid) + cbor.head_len(n)


def is_uint(v, limit=0xFFFFFFFF):
    return type(v) is int and 0 <= v <= limit
