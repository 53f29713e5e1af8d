# The device configuration: a JSON file on the board (/uproxy.json).
# Every key is optional; DEFAULTS documents them. The Wi-Fi password is
# never logged: describe() masks it.
import json

# Relative to the current directory, which is the filesystem root when the
# board runs main.py: "/uproxy.json" on the board.
PATH = "uproxy.json"

# UART pins per board (README.md has the wiring table). The line defaults
# match the host's: 921600 baud, 8N1, RTS/CTS (docs/protocol.md §1.3).
BOARD_UART = {
    # ESP32-C3 DevKitM-1: UART1 on free GPIOs (UART0 is the USB bridge/REPL).
    "esp32c3": {"uart": 1, "tx": 4, "rx": 5, "rts": 6, "cts": 7},
    # ESP32-S3 DevKitC-1: UART1 on its default TX/RX pins.
    "esp32s3": {"uart": 1, "tx": 17, "rx": 18, "rts": 15, "cts": 16},
    # Classic ESP32 DevKitC (WROOM-32): UART2 on its default TX/RX pins.
    "esp32": {"uart": 2, "tx": 17, "rx": 16, "rts": 18, "cts": 19},
}

DEFAULTS = {
    "ssid": "",  # Wi-Fi network; empty: no Wi-Fi (SERVICE endpoints still work)
    "password": "",
    "hostname": "uartproxy",  # DHCP host name
    "uart": None,  # UART id; None: the board's default above
    "tx": None,
    "rx": None,
    "rts": None,
    "cts": None,
    "baud": 921600,
    "flow": "rtscts",  # or "none"
    "rxbuf": 0,  # UART driver buffers; 0: sized from max_payload
    "txbuf": 0,
    "max_streams": 16,  # upper bound; memory may allow fewer (HELLO key 8)
    "stream_window": 8192,  # per-stream receive window, bytes (upper bound)
    "max_payload": 2048,  # upper bound (256..8192)
    "window": 16,  # frames in flight (1..32), upper bound
    "max_tls": 2,  # TLS streams at once (each costs ~40 KiB of mbedTLS heap)
    "ca_file": "",  # PEM/DER CA bundle on the board; enables TLS verification
    "connect_timeout_ms": 10000,  # when OPEN has no timeout_ms
    "dns": "",  # "": the Wi-Fi's DNS server; "ip" or "ip:port"; "getaddrinfo": the blocking resolver
    "wdt_ms": 20000,  # watchdog; 0 disables it. Longer than a stuck DNS lookup
    "log": True,  # print log lines (never on the UART the link uses)
    "stats_ms": 0,  # log link counters this often (0: never)
    "model": "",  # override the model reported in HELLO/INFO
}


class ConfigError(ValueError):
    pass


def load(path=PATH, model=None, opener=open):
    """Read the config file (missing file: defaults) and validate it."""
    raw = {}
    try:
        with opener(path) as f:
            raw = json.loads(f.read())
    except OSError:
        raw = {}
    except ValueError as e:
        raise ConfigError("%s: not valid JSON (%s)" % (path, e))
    if type(raw) is not dict:
        raise ConfigError("%s: must hold a JSON object" % path)
    return merge(raw, model)


def merge(raw, model=None):
    c = dict(DEFAULTS)
    for k, v in raw.items():
        if k not in DEFAULTS:
            continue  # unknown keys are ignored (room for later versions)
        c[k] = v
    m = c["model"] or model or "esp32c3"
    board = BOARD_UART.get(m, BOARD_UART["esp32c3"])
    for k in ("tx", "rx", "rts", "cts"):
        if c[k] is None:
            c[k] = board[k]
    if c["uart"] is None:
        c["uart"] = board["uart"]
    validate(c)
    return c


def _int(c, k, lo, hi):
    v = c[k]
    if type(v) is not int or v < lo or v > hi:
        raise ConfigError("%s must be an integer in %d..%d" % (k, lo, hi))


def validate(c):
    for k in ("ssid", "password", "hostname", "ca_file", "model", "dns"):
        if type(c[k]) is not str:
            raise ConfigError(k + " must be a string")
    _int(c, "uart", 0, 3)
    for k in ("tx", "rx"):
        _int(c, k, 0, 48)
    for k in ("rts", "cts"):
        if c[k] != -1:
            _int(c, k, 0, 48)
    _int(c, "baud", 9600, 5000000)
    if c["flow"] not in ("rtscts", "none"):
        raise ConfigError('flow must be "rtscts" or "none"')
    _int(c, "rxbuf", 0, 1 << 20)
    _int(c, "txbuf", 0, 1 << 20)
    _int(c, "max_streams", 1, 1024)
    _int(c, "stream_window", 1024, 1 << 20)
    _int(c, "max_payload", 256, 8192)
    _int(c, "window", 1, 32)
    _int(c, "max_tls", 0, 16)
    _int(c, "connect_timeout_ms", 100, 600000)
    _int(c, "wdt_ms", 0, 600000)
    _int(c, "stats_ms", 0, 3600000)
    if c["wdt_ms"] and c["wdt_ms"] < 2000:
        raise ConfigError("wdt_ms must be 0 (off) or at least 2000")
    d = c["dns"]
    if d not in ("", "getaddrinfo"):
        host, _, port = d.partition(":") if d.count(":") == 1 else (d, "", "")
        if not host or (port and (not port.isdigit() or not 0 < int(port) < 65536)):
            raise ConfigError('dns must be "", "getaddrinfo", an IP address or IPv4:port')
    if c["log"] is not True and c["log"] is not False:
        raise ConfigError("log must be true or false")


def describe(c):
    """The configuration as a log line, without the password."""
    keys = sorted(k for k in c if k != "password")
    parts = ["%s=%r" % (k, c[k]) for k in keys]
    parts.append("password=%s" % ("(set)" if c["password"] else "(none)"))
    return " ".join(parts)
