package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/uartproxy/uartproxy/internal/config"
	"github.com/uartproxy/uartproxy/internal/metrics"
	"github.com/uartproxy/uartproxy/internal/uplink"
)

// webServer serves /metrics and /healthz.
type webServer struct {
	listen string
	ln     net.Listener
	srv    *http.Server
}

func (w *webServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	w.srv.Shutdown(ctx)
}

func (d *Daemon) startWeb(cfg config.Config) error {
	if cfg.Metrics.Listen == "" {
		return nil
	}
	reg := metrics.NewRegistry(metrics.NewCollector(d.opts.Build, d.Snapshot))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: promLogger{d}}))
	mux.HandleFunc("GET /healthz", d.healthz)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "uartproxy: /metrics (Prometheus), /healthz (200 while the ESP32 is connected)")
	})
	ln, err := net.Listen("tcp", cfg.Metrics.Listen)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	go srv.Serve(ln)
	d.web = &webServer{listen: cfg.Metrics.Listen, ln: ln, srv: srv}
	return nil
}

type promLogger struct{ d *Daemon }

func (p promLogger) Println(v ...any) { p.d.log.Error().Msg(fmt.Sprint(v...)) }

// Health is the body of /healthz.
type Health struct {
	Status    string    `json:"status"` // "ok" or "unavailable"
	State     string    `json:"state"`  // uplink state: absent, connecting, up, closed
	Device    string    `json:"device"`
	Since     time.Time `json:"since"`
	LastError string    `json:"last_error,omitempty"`
	Firmware  string    `json:"firmware,omitempty"`
	Model     string    `json:"model,omitempty"`
	// Protocol is "native" (uartproxy's firmware) or "v3" (the seed's),
	// empty until the device answered.
	Protocol string `json:"protocol,omitempty"`
	// Limits lists what the device's firmware cannot do (v3 only).
	Limits  []string `json:"limits,omitempty"`
	Streams int64    `json:"streams_open"`
	Clients int64    `json:"clients_active"`
}

// healthz answers 200 while the device handshake is up, 503 otherwise,
// with the state as JSON either way.
func (d *Daemon) healthz(w http.ResponseWriter, _ *http.Request) {
	st := d.up.Status()
	_, ms := d.up.Stats()
	active, _, _ := d.gate.counts()
	h := Health{
		Status: "ok", State: st.State.String(), Device: st.Device, Since: st.Since.UTC(),
		LastError: st.LastError, Firmware: st.Peer.Firmware, Model: st.Info.Model,
		Protocol: st.Protocol, Streams: ms.StreamsOpen, Clients: active,
	}
	if st.Protocol == uplink.ProtocolV3 {
		h.Limits = uplink.V3Limits
	}
	code := http.StatusOK
	if st.State != uplink.StateUp || !d.up.Up() {
		h.Status = "unavailable"
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(h)
}
