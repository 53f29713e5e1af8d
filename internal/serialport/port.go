// Package serialport opens a serial device for the link: 8N1 at any baud rate,
// optionally with RTS/CTS hardware flow control, behind an io.ReadWriteCloser.
//
// go.bug.st/serial does the opening but has no flow-control option and clears
// CRTSCTS when it opens (bugst/go-serial#54), so on Linux Open also opens a
// second descriptor of the device before the library takes it with TIOCEXCL,
// and sets CRTSCTS through it afterwards: termios belong to the device, not
// to the descriptor.
//
// Concurrency: one Read and one Write may run at the same time. Close may be
// called from any goroutine; it unblocks a pending Read, which then returns
// ErrClosed. A Write that the peer holds back with CTS is not guaranteed to
// return on Close.
package serialport

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.bug.st/serial"
)

// Config says which device to open and how.
type Config struct {
	// Path is the device, e.g. /dev/ttyUSB0.
	Path string
	// Baud is the line rate in bit/s; the line is always 8N1.
	Baud int
	// FlowControl asks for RTS/CTS hardware flow control. Devices that cannot
	// do it (a pty, some adapters) are opened without it: see Port.FlowControl.
	FlowControl bool
	// ReadTimeout bounds how long Read waits for the first byte. Zero means
	// Read blocks until data arrives or the port is closed.
	ReadTimeout time.Duration
}

// Port is an open serial device.
type Port struct {
	path   string
	ctl    control // kept open: flow control can change later (SetFlowControl)
	flowMu sync.Mutex
	flow   bool
	port   serial.Port
	closed atomic.Bool
}

var _ io.ReadWriteCloser = (*Port)(nil)

// Open opens the device described by cfg. Its errors name the device and say
// what the user can do about them.
func Open(cfg Config) (*Port, error) {
	if cfg.Path == "" {
		return nil, errors.New("serialport: no device path")
	}
	if cfg.Baud <= 0 {
		return nil, fmt.Errorf("serialport: baud rate %d: must be positive", cfg.Baud)
	}
	if cfg.ReadTimeout < 0 {
		return nil, fmt.Errorf("serialport: read timeout %v: must not be negative", cfg.ReadTimeout)
	}

	// The control descriptor must exist before serial.Open sets TIOCEXCL.
	ctl, err := openControl(cfg.Path)
	if err != nil {
		return nil, openError(cfg.Path, err)
	}

	sp, err := serial.Open(cfg.Path, &serial.Mode{
		BaudRate: cfg.Baud,
		DataBits: 8,
		Parity:   serial.NoParity,
		StopBits: serial.OneStopBit,
	})
	if err != nil {
		ctl.close()
		return nil, openError(cfg.Path, err)
	}
	p := &Port{path: cfg.Path, ctl: ctl, port: sp}
	if cfg.ReadTimeout > 0 {
		if err := sp.SetReadTimeout(cfg.ReadTimeout); err != nil {
			sp.Close()
			ctl.close()
			return nil, fmt.Errorf("%s: set read timeout: %w", cfg.Path, err)
		}
	}
	if cfg.FlowControl {
		// After serial.Open, which clears CRTSCTS.
		if p.flow, err = ctl.setRTSCTS(true); err != nil {
			sp.Close()
			ctl.close()
			return nil, fmt.Errorf("%s: enable RTS/CTS flow control: %w", cfg.Path, err)
		}
	}
	return p, nil
}

// SetBaud changes the line rate (8N1 kept). RTS/CTS, set through termios
// at Open, survives: go.bug.st/serial's SetMode leaves CRTSCTS alone.
func (p *Port) SetBaud(baud int) error {
	if baud <= 0 {
		return fmt.Errorf("serialport: baud rate %d: must be positive", baud)
	}
	if err := p.port.SetMode(&serial.Mode{BaudRate: baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit}); err != nil {
		return fmt.Errorf("%s: set %d baud: %w", p.path, baud, err)
	}
	return nil
}

// Path returns the device path given to Open.
func (p *Port) Path() string { return p.path }

// FlowControl reports whether RTS/CTS flow control is on: it was asked for,
// and the device took the CRTSCTS flag and kept it.
func (p *Port) FlowControl() bool {
	p.flowMu.Lock()
	defer p.flowMu.Unlock()
	return p.flow
}

// SetFlowControl turns RTS/CTS on or off (docs/protocol.md §5.7) and
// reports whether it is on afterwards.
func (p *Port) SetFlowControl(on bool) (bool, error) {
	p.flowMu.Lock()
	defer p.flowMu.Unlock()
	ok, err := p.ctl.setRTSCTS(on)
	if err != nil {
		return p.flow, fmt.Errorf("%s: set RTS/CTS %v: %w", p.path, on, err)
	}
	p.flow = ok
	return ok, nil
}

// Read reads at least one byte. It blocks until data arrives, the port is
// closed (ErrClosed), the device goes away (ErrDisconnected), or
// Config.ReadTimeout passes (an error matching os.ErrDeadlineExceeded, after
// which the port is still usable). It never returns 0, nil for a non-empty b.
func (p *Port) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, err := p.port.Read(b)
	if err != nil {
		return n, p.ioError("read", err)
	}
	if n == 0 {
		// go.bug.st/serial reports an elapsed read timeout as (0, nil).
		return 0, &os.PathError{Op: "read", Path: p.path, Err: os.ErrDeadlineExceeded}
	}
	return n, nil
}

// Write writes all of b, unless an error stops it.
func (p *Port) Write(b []byte) (int, error) {
	total := 0
	for len(b) > 0 {
		if p.closed.Load() {
			return total, ErrClosed
		}
		n, err := p.port.Write(b)
		total += n
		b = b[n:]
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil:
			return total, p.ioError("write", err)
		case n == 0:
			return total, &os.PathError{Op: "write", Path: p.path, Err: io.ErrShortWrite}
		}
	}
	return total, nil
}

// Close closes the port and unblocks a pending Read. Closing twice returns
// ErrClosed.
func (p *Port) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	defer p.ctl.close()
	if err := p.port.Close(); err != nil {
		return &os.PathError{Op: "close", Path: p.path, Err: err}
	}
	return nil
}
