package emulator

import (
	"errors"
	"io"
	"sync"
	"time"

	"github.com/uartproxy/uartproxy/internal/link"
	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/mux"
)

// Port is the device's UART. Reading must be interruptible by a read
// deadline so a reboot can take the port back from the old link.
type Port interface {
	io.ReadWriteCloser
	SetReadDeadline(t time.Time) error
}

// flusher is implemented by ports that can drop bytes received while the
// device was booting (uartemu.Port).
type flusher interface{ Flush() }

// Device is an emulated ESP32.
type Device struct {
	cfg  Config
	port Port
	boot time.Time

	mu      sync.Mutex
	link    *link.Link
	sess    *mux.Session
	att     *attachment
	closed  bool
	reboots int

	baudMu      sync.Mutex
	pendingBaud *baudSwitch
}

// New starts a device on port. Close stops it and closes port.
func New(port Port, cfg Config) (*Device, error) {
	d := &Device{cfg: cfg.withDefaults(), port: port}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.start(); err != nil {
		return nil, err
	}
	return d, nil
}

// start boots the firmware; d.mu must be held.
func (d *Device) start() error {
	d.boot = time.Now()
	lc := d.cfg.Link
	lc.Logger = d.cfg.Logger.With().Str("layer", "link").Logger()
	lc.Hello = message.Hello{
		Role:         message.RoleDevice,
		MaxPayload:   uint(d.cfg.MaxPayload),
		Window:       uint(d.cfg.Window),
		MaxStreams:   uint(d.cfg.MaxStreams),
		StreamWindow: uint(d.cfg.StreamWindow),
		Features:     message.FeaturesAll,
		Firmware:     d.cfg.Firmware,
		Model:        d.cfg.Model,
		Baud:         uint(max(d.cfg.Baud, 0)),
	}
	h := &handler{d: d}
	sess := mux.New(mux.Config{
		Role:         message.RoleDevice,
		MaxStreams:   d.cfg.MaxStreams,
		StreamWindow: d.cfg.StreamWindow,
		SendBuffer:   int(d.cfg.StreamWindow), // a C3 has no room for more per stream
		Handler:      h,
		Logger:       d.cfg.Logger,
	})
	h.sess = sess
	att := &attachment{port: d.port}
	_ = d.port.SetReadDeadline(time.Time{})
	l, err := link.New(att, lc, sess)
	if err != nil {
		return err
	}
	d.link, d.sess, d.att = l, sess, att
	return nil
}

// Reboot emulates a reset of the ESP32: every socket closes, the UART goes
// silent for BootTime and loses what arrives meanwhile, then the device
// comes back with a new session id.
func (d *Device) Reboot() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errClosed
	}
	d.stopLocked()
	time.Sleep(d.cfg.BootTime)
	if f, ok := d.port.(flusher); ok {
		f.Flush()
	}
	d.reboots++
	return d.start()
}

func (d *Device) stopLocked() {
	d.sess.Close()
	d.link.Close() // closes the attachment, not the port
}

// Close stops the device and closes its port.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.stopLocked()
	return d.port.Close()
}

// Link returns the current link, for stats.
func (d *Device) Link() *link.Link {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.link
}

// Session returns the current mux session.
func (d *Device) Session() *mux.Session {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sess
}

var errClosed = errors.New("emulator: device closed")

// attachment lends the port to one link: closing it interrupts the link's
// pending Read without closing the port, so the next boot can use it.
type attachment struct {
	port   Port
	mu     sync.Mutex
	closed bool
}

func (a *attachment) Read(p []byte) (int, error) {
	n, err := a.port.Read(p)
	a.mu.Lock()
	closed := a.closed
	a.mu.Unlock()
	if closed {
		return 0, errClosed
	}
	var ne interface{ Timeout() bool }
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		return n, nil // a deadline left over from a previous boot
	}
	return n, err
}

func (a *attachment) Write(p []byte) (int, error) {
	a.mu.Lock()
	closed := a.closed
	a.mu.Unlock()
	if closed {
		return 0, errClosed
	}
	return a.port.Write(p)
}

func (a *attachment) Close() error {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	return a.port.SetReadDeadline(time.Now())
}
