// Package metrics turns the Stats snapshots of serve's parts into
// Prometheus metrics named uartproxy_<subsystem>_<name>_<unit>: the link
// (bytes, frames, retransmissions, CRC errors, drops by reason, RTT,
// frames in flight), streams, the serial port and the device, each
// forward, the SOCKS5 server and the DNS forwarder.
//
// One Collector reads one Snapshot per scrape through a function the
// caller gives; nothing here keeps counters of its own, so a scrape always
// agrees with the parts' own Stats. The Snapshot types are plain copies of
// those Stats, so this package depends only on the link, mux and uplink
// packages.
//
// Concurrency: Collect may run concurrently with itself (Prometheus does
// that); it only calls the snapshot function.
package metrics

import (
	"runtime"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/uartproxy/uartproxy/internal/link"
	"github.com/uartproxy/uartproxy/internal/mux"
	"github.com/uartproxy/uartproxy/internal/uplink"
)

// Snapshot is everything one scrape reports.
type Snapshot struct {
	Link   link.Stats
	Mux    mux.Stats
	Device uplink.Status
	// Forwards has one entry per configured forward.
	Forwards []Forward
	// SOCKS5 is nil when the SOCKS5 server is off.
	SOCKS5 *SOCKS5
	// DNS is nil when the DNS forwarder is off.
	DNS *DNS
	// Clients counts client connections against the global limit.
	Clients Clients
}

// Forward is one forward's counters.
type Forward struct {
	Spec, Direction, Network string
	Active                   int64
	Accepted, Rejected       uint64
	Failed                   map[string]uint64
	BytesUp, BytesDown       uint64
	Listening                bool
}

// SOCKS5 is the SOCKS5 server's counters.
type SOCKS5 struct {
	Active             int64
	Accepted, Rejected uint64
	Requests           map[string]map[string]uint64 // command -> result
	AuthFailures       uint64
	HandshakeErrors    map[string]uint64
	BytesUp, BytesDown uint64
}

// DNS is the DNS forwarder's counters.
type DNS struct {
	Queries   map[string]uint64 // by query type
	Responses map[string]uint64 // by rcode
	CacheHits uint64
	Dropped   uint64
}

// Clients is the global limit on concurrent client connections.
type Clients struct {
	Active, Limit int64
	Rejected      uint64
}

// Build identifies the binary in uartproxy_build_info.
type Build struct{ Version, Commit string }

// Collector is a prometheus.Collector over a snapshot function.
type Collector struct {
	snap  func() Snapshot
	build Build
}

// NewCollector returns a Collector that calls snap once per scrape.
func NewCollector(build Build, snap func() Snapshot) *Collector {
	return &Collector{snap: snap, build: build}
}

// NewRegistry returns a registry with the Collector, the Go runtime and
// the process collectors: what serve's /metrics exposes.
func NewRegistry(c *Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	registerRuntime(reg)
	return reg
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("uartproxy_"+name, help, labels, nil)
}

var (
	dBuild = desc("build_info", "Version of the running uartproxy; always 1.", "version", "commit", "goversion")

	dSerialUp     = desc("serial_port_open", "1 while the serial port (or the emulated line) is open.")
	dSerialOpens  = desc("serial_opens_total", "Times the serial port was opened.")
	dSerialLosses = desc("serial_losses_total", "Times an open serial port was lost (adapter unplugged).")
	dDeviceUp     = desc("device_up", "1 while the ESP32 handshake is up and streams can be opened.")
	dDeviceState  = desc("device_state", "1 for the uplink's current state.", "state")
	dStateSince   = desc("device_state_since_seconds", "Unix time at which the current state was entered.")

	dLinkTxBytes    = desc("link_tx_bytes_total", "Bytes written to the serial line, after SLIP framing.")
	dLinkRxBytes    = desc("link_rx_bytes_total", "Bytes read from the serial line.")
	dLinkTxFrames   = desc("link_tx_frames_total", "Frames written to the serial line.")
	dLinkRxFrames   = desc("link_rx_frames_total", "Valid frames read from the serial line.")
	dLinkPayload    = desc("link_tx_payload_bytes_total", "Payload bytes in DATA frames sent for the first time.")
	dLinkRetrans    = desc("link_retransmits_total", "DATA frames sent again.")
	dLinkFastRetr   = desc("link_fast_retransmits_total", "DATA frames sent again because a later frame was acknowledged first.")
	dLinkTimeouts   = desc("link_retransmit_timeouts_total", "Retransmission timer expiries.")
	dLinkCRC        = desc("link_crc_errors_total", "Frames dropped because their CRC did not match.")
	dLinkDropped    = desc("link_dropped_frames_total", "Frames dropped on receipt, by reason.", "reason")
	dLinkSessions   = desc("link_sessions_total", "Link sessions established (HELLO handshakes).")
	dLinkRestarts   = desc("link_peer_restarts_total", "Sessions ended because the device started a new one (reboot).")
	dLinkDead       = desc("link_dead_total", "Sessions ended because the device went silent.")
	dLinkRTT        = desc("link_rtt_seconds", "Smoothed round-trip time of the link.")
	dLinkRTO        = desc("link_rto_seconds", "Current retransmission timeout.")
	dLinkInFlight   = desc("link_frames_in_flight", "DATA frames sent and not yet acknowledged.")
	dLinkCwnd       = desc("link_congestion_window_frames", "Frames allowed in flight now.")
	dLinkWindow     = desc("link_window_frames", "Negotiated window, in frames.")
	dLinkMaxPayload = desc("link_max_payload_bytes", "Negotiated largest DATA payload.")
	dLinkBaud       = desc("link_baud", "Line rate of the serial port, in baud (bit/s; 8N1 carries baud/10 bytes/s).")
	dLinkRTSCTS     = desc("link_rtscts", "1 when RTS/CTS hardware flow control is on.")

	dStreamsOpen   = desc("streams_open", "Streams (TCP, UDP, listeners) open through the device now.")
	dStreamsOpened = desc("streams_opened_total", "Streams opened.")
	dStreamsFailed = desc("streams_failed_total", "Streams that failed or were refused, by reason.", "reason")
	dStreamBytes   = desc("stream_bytes_total", "Stream and datagram payload through the device, by direction (in: from the device).", "direction")
	dProtoErrors   = desc("stream_protocol_errors_total", "Messages from the device that broke the stream protocol.")

	dDevFreeMem  = desc("device_free_memory_bytes", "Free heap on the ESP32, from its last INFO.")
	dDevRSSI     = desc("device_wifi_rssi_dbm", "Wi-Fi signal strength at the ESP32, from its last INFO.")
	dDevUptime   = desc("device_uptime_seconds", "Time since the ESP32 booted, from its last INFO.")
	dDevWiFiUp   = desc("device_wifi_up", "1 when the ESP32 reports its Wi-Fi as connected.")
	dDevReboots  = desc("device_reboots_total", "ESP32 restarts seen while connected.")
	dDevInfo     = desc("device_info", "The ESP32's firmware and model; always 1.", "firmware", "model")
	dDevMaxStrms = desc("device_max_streams", "Streams the ESP32 can hold open at once.")

	dFwdActive    = desc("forward_active_connections", "Connections (TCP) or client addresses (UDP) active on a forward.", "forward", "direction", "network")
	dFwdAccepted  = desc("forward_connections_total", "Connections (TCP) or client addresses (UDP) accepted by a forward.", "forward", "direction", "network")
	dFwdRejected  = desc("forward_rejected_total", "Clients a forward turned away at the client limit.", "forward", "direction", "network")
	dFwdFailed    = desc("forward_failures_total", "Failures to open a forward's other side, by reason.", "forward", "direction", "network", "reason")
	dFwdBytes     = desc("forward_bytes_total", "Payload through a forward; up is toward the ESP32's network side.", "forward", "direction", "network", "flow")
	dFwdListening = desc("forward_listening", "1 while a forward's listener is open.", "forward", "direction", "network")

	dSocksActive   = desc("socks5_active_connections", "SOCKS5 client connections open now.")
	dSocksAccepted = desc("socks5_connections_total", "SOCKS5 client connections accepted.")
	dSocksRejected = desc("socks5_rejected_total", "SOCKS5 client connections closed at the client limit.")
	dSocksRequests = desc("socks5_requests_total", "SOCKS5 requests by command and result.", "command", "result")
	dSocksAuthFail = desc("socks5_auth_failures_total", "SOCKS5 username/password authentications that failed.")
	dSocksHSErrors = desc("socks5_handshake_errors_total", "SOCKS5 handshakes that failed before a request, by reason.", "reason")
	dSocksBytes    = desc("socks5_bytes_total", "Payload through SOCKS5; up is toward the destination.", "flow")

	dDNSQueries   = desc("dns_queries_total", "DNS queries received, by type.", "type")
	dDNSResponses = desc("dns_responses_total", "DNS responses sent, by rcode.", "rcode")
	dDNSCacheHits = desc("dns_cache_hits_total", "DNS queries answered from the cache.")
	dDNSDropped   = desc("dns_dropped_total", "Unparsable DNS packets dropped.")

	dClientsActive   = desc("clients_active", "Client connections open now across forwards and SOCKS5.")
	dClientsLimit    = desc("clients_limit", "Most client connections open at once.")
	dClientsRejected = desc("clients_rejected_total", "Client connections turned away at the limit.")
)

var allDescs = []*prometheus.Desc{
	dBuild, dSerialUp, dSerialOpens, dSerialLosses, dDeviceUp, dDeviceState, dStateSince,
	dLinkTxBytes, dLinkRxBytes, dLinkTxFrames, dLinkRxFrames, dLinkPayload, dLinkRetrans, dLinkFastRetr,
	dLinkTimeouts, dLinkCRC, dLinkDropped, dLinkSessions, dLinkRestarts, dLinkDead, dLinkRTT, dLinkRTO,
	dLinkInFlight, dLinkCwnd, dLinkWindow, dLinkMaxPayload, dLinkBaud, dLinkRTSCTS,
	dStreamsOpen, dStreamsOpened, dStreamsFailed, dStreamBytes, dProtoErrors,
	dDevFreeMem, dDevRSSI, dDevUptime, dDevWiFiUp, dDevReboots, dDevInfo, dDevMaxStrms,
	dFwdActive, dFwdAccepted, dFwdRejected, dFwdFailed, dFwdBytes, dFwdListening,
	dSocksActive, dSocksAccepted, dSocksRejected, dSocksRequests, dSocksAuthFail, dSocksHSErrors, dSocksBytes,
	dDNSQueries, dDNSResponses, dDNSCacheHits, dDNSDropped,
	dClientsActive, dClientsLimit, dClientsRejected,
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect reads one snapshot and sends its metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.snap()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	b01 := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}

	gauge(dBuild, 1, c.build.Version, c.build.Commit, runtime.Version())

	st := s.Device
	gauge(dSerialUp, b01(st.State == uplink.StateConnecting || st.State == uplink.StateUp))
	counter(dSerialOpens, st.Opens)
	counter(dSerialLosses, st.Losses)
	gauge(dDeviceUp, b01(st.State == uplink.StateUp))
	for _, state := range []uplink.State{uplink.StateAbsent, uplink.StateConnecting, uplink.StateUp, uplink.StateClosed} {
		gauge(dDeviceState, b01(st.State == state), state.String())
	}
	if !st.Since.IsZero() {
		gauge(dStateSince, float64(st.Since.UnixNano())/1e9)
	}

	l := s.Link
	counter(dLinkTxBytes, l.TxBytes)
	counter(dLinkRxBytes, l.RxBytes)
	counter(dLinkTxFrames, l.TxFrames)
	counter(dLinkRxFrames, l.RxFrames)
	counter(dLinkPayload, l.TxPayload)
	counter(dLinkRetrans, l.Retransmits)
	counter(dLinkFastRetr, l.FastRetransmits)
	counter(dLinkTimeouts, l.Timeouts)
	counter(dLinkCRC, l.Dropped["crc"])
	for _, r := range link.DropReasons {
		counter(dLinkDropped, l.Dropped[r], r)
	}
	counter(dLinkSessions, l.Sessions)
	counter(dLinkRestarts, l.PeerRestarts)
	counter(dLinkDead, l.DeadLinks)
	gauge(dLinkRTT, seconds(l.SRTT))
	gauge(dLinkRTO, seconds(l.RTO))
	gauge(dLinkInFlight, float64(l.InFlight))
	gauge(dLinkCwnd, float64(l.CongestionWindow))
	gauge(dLinkWindow, float64(l.Window))
	gauge(dLinkMaxPayload, float64(l.MaxPayload))
	gauge(dLinkBaud, float64(st.Baud))
	gauge(dLinkRTSCTS, b01(st.RTSCTS))

	m := s.Mux
	gauge(dStreamsOpen, float64(m.StreamsOpen))
	counter(dStreamsOpened, m.Opened)
	for _, k := range sortedKeys(m.Failed) {
		counter(dStreamsFailed, m.Failed[k], k)
	}
	counter(dStreamBytes, m.BytesIn, "in")
	counter(dStreamBytes, m.BytesOut, "out")
	counter(dProtoErrors, m.ProtoErrors)

	in := st.Info
	if in.FreeMem != nil {
		gauge(dDevFreeMem, float64(*in.FreeMem))
	}
	if in.RSSI != nil {
		gauge(dDevRSSI, float64(*in.RSSI))
	}
	if in.UptimeMS != nil {
		gauge(dDevUptime, float64(*in.UptimeMS)/1000)
	}
	if in.WiFi != nil {
		gauge(dDevWiFiUp, b01(*in.WiFi == 2))
	}
	counter(dDevReboots, st.Reboots)
	if in.Firmware != "" || in.Model != "" {
		gauge(dDevInfo, 1, in.Firmware, in.Model)
	}
	if st.Peer.MaxStreams > 0 {
		gauge(dDevMaxStrms, float64(st.Peer.MaxStreams))
	}

	for _, f := range s.Forwards {
		lv := []string{f.Spec, f.Direction, f.Network}
		gauge(dFwdActive, float64(f.Active), lv...)
		counter(dFwdAccepted, f.Accepted, lv...)
		counter(dFwdRejected, f.Rejected, lv...)
		for _, k := range sortedKeys(f.Failed) {
			counter(dFwdFailed, f.Failed[k], append(lv[:3:3], k)...)
		}
		counter(dFwdBytes, f.BytesUp, append(lv[:3:3], "up")...)
		counter(dFwdBytes, f.BytesDown, append(lv[:3:3], "down")...)
		gauge(dFwdListening, b01(f.Listening), lv...)
	}

	if x := s.SOCKS5; x != nil {
		gauge(dSocksActive, float64(x.Active))
		counter(dSocksAccepted, x.Accepted)
		counter(dSocksRejected, x.Rejected)
		for _, cmd := range sortedKeys(x.Requests) {
			for _, res := range sortedKeys(x.Requests[cmd]) {
				counter(dSocksRequests, x.Requests[cmd][res], cmd, res)
			}
		}
		counter(dSocksAuthFail, x.AuthFailures)
		for _, k := range sortedKeys(x.HandshakeErrors) {
			counter(dSocksHSErrors, x.HandshakeErrors[k], k)
		}
		counter(dSocksBytes, x.BytesUp, "up")
		counter(dSocksBytes, x.BytesDown, "down")
	}

	if d := s.DNS; d != nil {
		for _, k := range sortedKeys(d.Queries) {
			counter(dDNSQueries, d.Queries[k], k)
		}
		for _, k := range sortedKeys(d.Responses) {
			counter(dDNSResponses, d.Responses[k], k)
		}
		counter(dDNSCacheHits, d.CacheHits)
		counter(dDNSDropped, d.Dropped)
	}

	gauge(dClientsActive, float64(s.Clients.Active))
	if s.Clients.Limit > 0 {
		gauge(dClientsLimit, float64(s.Clients.Limit))
	}
	counter(dClientsRejected, s.Clients.Rejected)
}

func seconds(d time.Duration) float64 { return d.Seconds() }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
