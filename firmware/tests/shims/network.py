# Test-only stand-in for MicroPython's network module on CPython: a
# station that reports connected with loopback addresses. Never copied to
# a board.
import os

STA_IF = 0
AP_IF = 1
_hostname = "uartproxy"


def hostname(name=None):
    global _hostname
    if name is None:
        return _hostname
    _hostname = name


class WLAN:
    def __init__(self, interface=STA_IF):
        self._active = False
        self._connected = os.environ.get("UPROXY_SHIM_WIFI", "up") == "up"
        self.ssid = None

    def active(self, on=None):
        if on is None:
            return self._active
        self._active = bool(on)

    def connect(self, ssid, password=None):
        self.ssid = ssid

    def disconnect(self):
        pass

    def isconnected(self):
        return self._connected

    def ifconfig(self):
        # No DNS server: the firmware falls back to getaddrinfo (the tests
        # that want its DNS client name a server in the configuration).
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "0.0.0.0")

    def status(self, what=None):
        if what == "rssi":
            return -42
        return 1010 if self._connected else 1000

    def config(self, *a, **kw):
        return None
