// Package hostlink is the host's end of a serial link to an ESP32: it opens
// the serial port and runs the link (ARQ) and the mux (streams) over it, so
// the commands that talk to a device (emulate's tests, serve, bench) set the
// stack up the same way.
//
// Open returns at once; the handshake happens in the background, and
// Session().WaitUp waits for it. The mux session outlives link sessions: a
// device that reboots or a line that goes quiet fails the open streams, and
// new streams work after the next handshake. What a Host does not survive is
// losing the port itself (the USB adapter unplugged): Done is then closed and
// Err says why. Reconnecting is up to the caller.
//
// Concurrency: all methods are safe for concurrent use. The Host owns the
// port, the link and the session; Close stops them and waits for the link's
// goroutines.
package hostlink

import (
	"fmt"
	"io"
	"sync"

	"github.com/rs/zerolog"

	"github.com/uartproxy/uartproxy/internal/capture"
	"github.com/uartproxy/uartproxy/internal/link"
	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/mux"
	"github.com/uartproxy/uartproxy/internal/serialport"
)

// Config configures a Host.
type Config struct {
	// Port is the serial device and its line settings.
	Port serialport.Config
	// Link tunes the link. Open sets Hello.Role to host and Hello.Baud to
	// Port.Baud, and takes Hello.MaxStreams and Hello.StreamWindow from Mux
	// when they are zero.
	Link link.Config
	// Mux configures the session; Open sets Role to host.
	Mux mux.Config
	// Logger is given to the link and the mux, with a "layer" field, in
	// place of their own Logger.
	Logger zerolog.Logger
	// Mirror, if set, records every byte read from and written to the
	// port (a capture.LinkTypeRaw Writer): what `serve --mirror` writes and
	// `sniff --file` reads.
	Mirror *capture.Writer
}

// Host is an open serial port with the link and the mux running over it.
type Host struct {
	port *serialport.Port
	link *link.Link
	sess *mux.Session

	closeOnce sync.Once
}

// Open opens the port and starts the link and the mux over it. It does not
// wait for the handshake: use Session().WaitUp.
func Open(cfg Config) (*Host, error) {
	mc := cfg.Mux
	mc.Role = message.RoleHost
	mc.Logger = cfg.Logger.With().Str("layer", "mux").Logger()
	d := mux.DefaultConfig()
	if mc.MaxStreams <= 0 {
		mc.MaxStreams = d.MaxStreams
	}
	if mc.StreamWindow == 0 {
		mc.StreamWindow = d.StreamWindow
	}

	lc := cfg.Link
	lc.Logger = cfg.Logger.With().Str("layer", "link").Logger()
	lc.Hello.Role = message.RoleHost
	lc.Hello.Baud = uint(max(cfg.Port.Baud, 0))
	if lc.Hello.MaxStreams == 0 {
		lc.Hello.MaxStreams = uint(mc.MaxStreams)
	}
	if lc.Hello.StreamWindow == 0 {
		lc.Hello.StreamWindow = uint(mc.StreamWindow)
	}
	if lc.Hello.Features == 0 {
		// link.Config's zero-field defaults leave Features alone.
		lc.Hello.Features = link.DefaultConfig().Hello.Features
	}

	port, err := serialport.Open(cfg.Port)
	if err != nil {
		return nil, err
	}
	// What the adapter really does decides the loss policy: one that
	// cannot do RTS/CTS overflows like a line configured without it.
	lc.NoFlowControl = !port.FlowControl()
	sess := mux.New(mc)
	var rw io.ReadWriteCloser = port
	if cfg.Mirror != nil {
		rw = capture.NewTap(port, cfg.Mirror).(io.ReadWriteCloser)
	}
	l, err := link.New(rw, lc, sess)
	if err != nil {
		port.Close()
		return nil, fmt.Errorf("hostlink: %w", err)
	}
	return &Host{port: port, link: l, sess: sess}, nil
}

// Session returns the mux session: Dial, OpenService, Info and the rest.
func (h *Host) Session() *mux.Session { return h.sess }

// Link returns the link, for its Stats.
func (h *Host) Link() *link.Link { return h.link }

// Port returns the serial port, for its path and FlowControl.
func (h *Host) Port() *serialport.Port { return h.port }

// Close fails every stream, stops the link and closes the port. It is
// idempotent and returns nil.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		h.sess.Close()
		h.link.Close() // closes the port
	})
	return nil
}

// Done is closed when the link has stopped: after Close, or when the port
// failed (the adapter was unplugged).
func (h *Host) Done() <-chan struct{} { return h.link.Done() }

// Err returns why the link stopped, or nil while it runs: link.ErrClosed
// after Close, serialport.ErrDisconnected (wrapped) when the device went
// away.
func (h *Host) Err() error { return h.link.Err() }

// SetLine switches the local UART to baud and RTS/CTS and tells the link:
// the Apply step of a mux.BaudSwitch (docs/protocol.md §5.7).
func (h *Host) SetLine(baud int, flow bool) error {
	if err := h.port.SetBaud(baud); err != nil {
		return err
	}
	got, err := h.port.SetFlowControl(flow)
	if err != nil {
		return err
	}
	h.link.SetBaud(baud)
	h.link.SetFlowControl(got)
	return nil
}
