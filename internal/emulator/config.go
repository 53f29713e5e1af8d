// Package emulator is an emulated ESP32 running the uartproxy firmware: the
// device side of docs/protocol.md in Go, doing real socket operations on
// the host. It shares the link and mux code with the host side and
// defaults to the limits of an ESP32-C3.
//
// Concurrency: a Device owns one link at a time on its port; Reboot
// replaces it. Each served stream runs in its own goroutines, bounded by
// MaxStreams. All methods are safe for concurrent use.
package emulator

import (
	"crypto/x509"
	"net"
	"time"

	"github.com/rs/zerolog"
	"github.com/uartproxy/uartproxy/internal/link"
)

// Config configures a Device. DefaultConfig gives an ESP32-C3.
type Config struct {
	Model        string
	Firmware     string
	Baud         int
	MaxPayload   int
	Window       int
	MaxStreams   int
	StreamWindow uint32
	// ConnectTimeout is how long a TCP connect may take when the host
	// does not say.
	ConnectTimeout time.Duration
	// BootTime is how long a reboot keeps the device silent.
	BootTime time.Duration
	// RootCAs verifies TLS servers when the host asks for verification;
	// nil uses the system pool.
	RootCAs *x509.CertPool
	// Link tunes the link timers; zero values take the defaults. Its
	// Hello and Logger are set from the fields above.
	Link link.Config
	// Dialer and Resolver reach the network (the "Wi-Fi" side).
	Dialer   *net.Dialer
	Resolver *net.Resolver
	Logger   zerolog.Logger
}

// DefaultConfig returns an ESP32-C3 running our firmware
// (docs/protocol.md §11).
func DefaultConfig() Config {
	return Config{
		Model:          "esp32c3 (emulated)",
		Firmware:       "uartproxy-emulator",
		Baud:           921600,
		MaxPayload:     2048,
		Window:         16,
		MaxStreams:     16,
		StreamWindow:   8 << 10,
		ConnectTimeout: 10 * time.Second,
		BootTime:       300 * time.Millisecond,
		Logger:         zerolog.Nop(),
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Model == "" {
		c.Model = d.Model
	}
	if c.Firmware == "" {
		c.Firmware = d.Firmware
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = d.MaxPayload
	}
	if c.Window == 0 {
		c.Window = d.Window
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = d.MaxStreams
	}
	if c.StreamWindow == 0 {
		c.StreamWindow = d.StreamWindow
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = d.ConnectTimeout
	}
	if c.BootTime == 0 {
		c.BootTime = d.BootTime
	}
	if c.Dialer == nil {
		c.Dialer = &net.Dialer{}
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	return c
}
