package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/uartproxy/uartproxy/internal/link"
	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/mux"
	"github.com/uartproxy/uartproxy/internal/uplink"
)

func full() Snapshot {
	free, uptime := uint64(123456), uint64(90_500)
	rssi, wifi := -61, uint8(2)
	return Snapshot{
		Link: link.Stats{TxBytes: 1000, RxBytes: 2000, TxFrames: 10, RxFrames: 20, Retransmits: 3,
			Dropped: map[string]uint64{"crc": 4, "short": 1}, SRTT: 12 * time.Millisecond, InFlight: 5, Sessions: 2},
		Mux: mux.Stats{StreamsOpen: 3, Opened: 9, Failed: map[string]uint64{"refused": 2}, BytesIn: 500, BytesOut: 400},
		Device: uplink.Status{State: uplink.StateUp, Since: time.Unix(1700000000, 0), Baud: 921600, RTSCTS: true,
			Opens: 1, Reboots: 1, Peer: message.Hello{MaxStreams: 16},
			Info: message.Info{Firmware: "uartproxy-fw 1.0", Model: "ESP32-C3", FreeMem: &free, RSSI: &rssi, UptimeMS: &uptime, WiFi: &wifi}},
		Forwards: []Forward{{Spec: "127.0.0.1:8080:example.com:80", Direction: "local", Network: "tcp", Active: 1, Accepted: 5,
			Failed: map[string]uint64{"refused": 1}, BytesUp: 10, BytesDown: 20, Listening: true}},
		SOCKS5: &SOCKS5{Active: 2, Accepted: 7, Requests: map[string]map[string]uint64{"connect": {"succeeded": 5, "connection_refused": 1}},
			AuthFailures: 1, HandshakeErrors: map[string]uint64{"timeout": 1}, BytesUp: 100, BytesDown: 200},
		DNS:     &DNS{Queries: map[string]uint64{"A": 3}, Responses: map[string]uint64{"NOERROR": 3}, CacheHits: 1},
		Clients: Clients{Active: 3, Limit: 256, Rejected: 1},
	}
}

func TestLint(t *testing.T) {
	c := NewCollector(Build{Version: "v1", Commit: "abc"}, full)
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	// The whole registry, runtime collectors included, gathers cleanly.
	if _, err := NewRegistry(c).Gather(); err != nil {
		t.Fatal(err)
	}
}

func TestValues(t *testing.T) {
	c := NewCollector(Build{Version: "v1", Commit: "abc"}, full)
	want := `
# HELP uartproxy_link_crc_errors_total Frames dropped because their CRC did not match.
# TYPE uartproxy_link_crc_errors_total counter
uartproxy_link_crc_errors_total 4
# HELP uartproxy_device_up 1 while the ESP32 handshake is up and streams can be opened.
# TYPE uartproxy_device_up gauge
uartproxy_device_up 1
# HELP uartproxy_device_wifi_rssi_dbm Wi-Fi signal strength at the ESP32, from its last INFO.
# TYPE uartproxy_device_wifi_rssi_dbm gauge
uartproxy_device_wifi_rssi_dbm -61
# HELP uartproxy_device_uptime_seconds Time since the ESP32 booted, from its last INFO.
# TYPE uartproxy_device_uptime_seconds gauge
uartproxy_device_uptime_seconds 90.5
# HELP uartproxy_link_rtt_seconds Smoothed round-trip time of the link.
# TYPE uartproxy_link_rtt_seconds gauge
uartproxy_link_rtt_seconds 0.012
# HELP uartproxy_socks5_requests_total SOCKS5 requests by command and result.
# TYPE uartproxy_socks5_requests_total counter
uartproxy_socks5_requests_total{command="connect",result="connection_refused"} 1
uartproxy_socks5_requests_total{command="connect",result="succeeded"} 5
# HELP uartproxy_forward_bytes_total Payload through a forward; up is toward the ESP32's network side.
# TYPE uartproxy_forward_bytes_total counter
uartproxy_forward_bytes_total{direction="local",flow="down",forward="127.0.0.1:8080:example.com:80",network="tcp"} 20
uartproxy_forward_bytes_total{direction="local",flow="up",forward="127.0.0.1:8080:example.com:80",network="tcp"} 10
`
	names := []string{"uartproxy_link_crc_errors_total", "uartproxy_device_up", "uartproxy_device_wifi_rssi_dbm",
		"uartproxy_device_uptime_seconds", "uartproxy_link_rtt_seconds", "uartproxy_socks5_requests_total", "uartproxy_forward_bytes_total"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
}

// With the device away and SOCKS5 and DNS off, the metrics that need them
// are absent rather than zero, and the rest still lint.
func TestDeviceAbsent(t *testing.T) {
	c := NewCollector(Build{}, func() Snapshot {
		return Snapshot{Device: uplink.Status{State: uplink.StateAbsent}}
	})
	if n := testutil.CollectAndCount(c, "uartproxy_device_free_memory_bytes", "uartproxy_socks5_connections_total", "uartproxy_dns_cache_hits_total"); n != 0 {
		t.Fatalf("%d metrics for absent parts", n)
	}
	if v := testutil.ToFloat64(metricOnly(c, "uartproxy_device_up")); v != 0 {
		t.Fatalf("device_up %v while absent", v)
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}
