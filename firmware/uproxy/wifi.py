# Wi-Fi station with reconnect and exponential backoff. Never blocks:
# WLAN.connect returns at once on the ESP32 and step() only looks at the
# state. The password is never logged.
from . import msg as M

try:
    from time import ticks_ms, ticks_diff, ticks_add
except ImportError:  # pragma: no cover
    from time import monotonic as _m

    def ticks_ms():
        return int(_m() * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b

CONNECT_TIMEOUT = 20000  # ms before a connection attempt is abandoned
BACKOFF_MIN = 1000
BACKOFF_MAX = 60000


class WiFi:
    def __init__(self, wlan, ssid, password, hostname="", log=None, network=None):
        self.wlan = wlan
        self.ssid = ssid
        self.password = password
        self.log = log or (lambda *a: None)
        self.state = M.WIFI_DOWN
        self.ip = ""
        self.backoff = BACKOFF_MIN
        self.next_try = ticks_ms()
        self.started = 0
        self.attempts = 0
        if wlan is not None:
            try:
                wlan.active(True)
            except Exception as e:
                self.log("wifi: cannot activate: %r" % (e,))
            if hostname and network is not None:
                try:
                    network.hostname(hostname)
                except Exception:
                    try:
                        wlan.config(dhcp_hostname=hostname)
                    except Exception:
                        pass

    def online(self):
        return self.state == M.WIFI_UP

    def connected(self):
        try:
            return bool(self.wlan.isconnected())
        except Exception:
            return False

    def step(self):
        """Advance the state machine; return True when state or IP changed."""
        if self.wlan is None or not self.ssid:
            return False
        now = ticks_ms()
        old = (self.state, self.ip)
        if self.connected():
            if self.state != M.WIFI_UP:
                self.backoff = BACKOFF_MIN
                self.attempts = 0
            self.state = M.WIFI_UP
            try:
                self.ip = self.wlan.ifconfig()[0]
            except Exception:
                self.ip = ""
        elif self.state == M.WIFI_CONNECTING:
            if ticks_diff(now, self.started) >= CONNECT_TIMEOUT:
                self._give_up(now)
        else:
            if self.state == M.WIFI_UP:
                self.log("wifi: connection lost")
                self.state = M.WIFI_DOWN
                self.ip = ""
                self.next_try = now
            if ticks_diff(now, self.next_try) >= 0:
                self._connect(now)
        return (self.state, self.ip) != old

    def _connect(self, now):
        self.attempts += 1
        self.log("wifi: connecting to %r (attempt %d)" % (self.ssid, self.attempts))
        try:
            self.wlan.connect(self.ssid, self.password)
            self.state = M.WIFI_CONNECTING
            self.started = now
        except Exception as e:
            self.log("wifi: connect failed: %r" % (e,))
            self._give_up(now)

    def _give_up(self, now):
        try:
            self.wlan.disconnect()
        except Exception:
            pass
        self.state = M.WIFI_DOWN
        self.ip = ""
        self.next_try = ticks_add(now, self.backoff)
        self.log("wifi: retry in %d ms" % self.backoff)
        self.backoff = min(self.backoff * 2, BACKOFF_MAX)

    def rssi(self):
        if self.state != M.WIFI_UP:
            return None
        try:
            return self.wlan.status("rssi")
        except Exception:
            return None

    def info(self):
        """The Wi-Fi keys of the INFO map (§7.12); absent when unknown."""
        d = {M.INFO_WIFI: self.state}
        if self.ssid:
            d[M.INFO_SSID] = self.ssid
        if self.ip:
            d[M.INFO_IP] = self.ip
        r = self.rssi()
        if type(r) is int:
            d[M.INFO_RSSI] = r
        return d
