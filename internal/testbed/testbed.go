// Package testbed wires a host mux session to an emulated ESP32 through an
// emulated UART: the whole protocol stack, in-process, for tests and
// benchmarks of the packages above the link.
//
// Concurrency: a Bed's fields are set once by New; Close stops everything
// and may be called more than once.
package testbed

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/uartproxy/uartproxy/internal/emulator"
	"github.com/uartproxy/uartproxy/internal/link"
	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/mux"
	"github.com/uartproxy/uartproxy/internal/uartemu"
)

// Options configures a Bed. Zero values give a clean 921600-baud link with
// RTS/CTS and an ESP32-C3.
type Options struct {
	Line   uartemu.Config // both directions; Baud 0 gets 921600
	Device emulator.Config
	Host   mux.Config
	Link   link.Config // host link; Hello limits default to the host defaults
	// SlowDevice makes the device service its UART late: each read waits
	// this long and takes at most 256 bytes, as a MicroPython board does
	// during garbage collection. With RTS/CTS off, its receive buffer
	// overflows whenever the line outruns it.
	SlowDevice time.Duration
}

// slowPort is a device UART read by a busy MCU.
type slowPort struct {
	*uartemu.Port
	delay time.Duration
}

func (p slowPort) Read(b []byte) (int, error) {
	time.Sleep(p.delay)
	return p.Port.Read(b[:min(len(b), 256)])
}

// Bed is a running stack.
type Bed struct {
	Host       *mux.Session
	HostLink   *link.Link
	Device     *emulator.Device
	HostPort   *uartemu.Port
	DevicePort *uartemu.Port
	Baud       int

	once sync.Once
}

// Clean returns the options of a clean link at baud with RTS/CTS.
func Clean(baud int) Options {
	l := uartemu.Line{Baud: baud, FlowControl: true}
	return Options{Line: uartemu.Symmetric(l)}
}

// New starts a stack and waits (up to 5 s) for the handshake.
func New(o Options) (*Bed, error) {
	if o.Line.HostToDevice.Baud == 0 && o.Line.DeviceToHost.Baud == 0 {
		o.Line.HostToDevice.Baud, o.Line.DeviceToHost.Baud = 921600, 921600
	}
	// A USB-serial adapter buffers a few hundred bytes on its way out
	// (FT232R 256, CP2102 640) besides the kernel's tty buffer; 512 keeps
	// the wire busy across a scheduling hiccup without letting the writer
	// run more than a quarter frame ahead of the scheduler.
	for _, l := range []*uartemu.Line{&o.Line.HostToDevice, &o.Line.DeviceToHost} {
		if l.TxBuffer == 0 {
			l.TxBuffer = 512
		}
	}
	hp, dp := uartemu.New(o.Line)
	if !o.Line.HostToDevice.FlowControl {
		o.Link.NoFlowControl = true
		o.Device.Link.NoFlowControl = true
	}
	var devPort emulator.Port = dp
	if o.SlowDevice > 0 {
		devPort = slowPort{Port: dp, delay: o.SlowDevice}
	}
	dev, err := emulator.New(devPort, o.Device)
	if err != nil {
		hp.Close()
		dp.Close()
		return nil, err
	}
	hc := o.Host
	if hc.Role != message.RoleHost {
		hc.Role = message.RoleHost
	}
	host := mux.New(hc)
	lc := o.Link
	if lc.Hello.MaxStreams == 0 {
		lc.Hello.MaxStreams = uint(max(hc.MaxStreams, 0))
	}
	if lc.Hello.StreamWindow == 0 {
		lc.Hello.StreamWindow = uint(hc.StreamWindow)
	}
	lc.Hello.Baud = uint(o.Line.HostToDevice.Baud)
	hl, err := link.New(hp, lc, host)
	if err != nil {
		dev.Close()
		hp.Close()
		return nil, err
	}
	b := &Bed{Host: host, HostLink: hl, Device: dev, HostPort: hp, DevicePort: dp, Baud: o.Line.HostToDevice.Baud}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := host.WaitUp(ctx); err != nil {
		b.Close()
		return nil, fmt.Errorf("testbed: no handshake: %w (host link %+v)", err, hl.Stats())
	}
	return b, nil
}

// Close stops the host and the device.
func (b *Bed) Close() {
	b.once.Do(func() {
		b.Host.Close()
		b.HostLink.Close()
		b.Device.Close()
	})
}

// LineRate is the wire ceiling in payload bytes per second (8N1).
func (b *Bed) LineRate() float64 { return float64(b.Baud) / 10 }

// SetHostLine switches the host's end of the line to baud and RTS/CTS and
// tells the host link: the Apply step of a mux.BaudSwitch.
func (b *Bed) SetHostLine(baud int, flow bool) error {
	if err := b.HostPort.SetBaud(baud); err != nil {
		return err
	}
	b.HostPort.SetFlowControl(flow)
	b.HostLink.SetBaud(baud)
	b.HostLink.SetFlowControl(flow)
	return nil
}
