package benchrun

import (
	"context"
	"net"

	"github.com/uartproxy/uartproxy/internal/hostlink"
	"github.com/uartproxy/uartproxy/internal/link"
	"github.com/uartproxy/uartproxy/internal/mux"
	"github.com/uartproxy/uartproxy/internal/testbed"
)

// Target is the host's end of a link to a device that serves the test
// endpoints of docs/protocol.md §7.14 and the ECHO request of §7.12.
type Target interface {
	// OpenService opens the device's "echo", "discard" or "source"
	// endpoint.
	OpenService(ctx context.Context, name string) (net.Conn, error)
	// Echo performs one ECHO request and returns what came back.
	Echo(ctx context.Context, p []byte) ([]byte, error)
	// LinkStats returns the host link's counters.
	LinkStats() link.Stats
	// BytesSent counts the stream payload the host's mux has put into DATA
	// frames; an upload is measured with it when the device's own count
	// cannot be seen.
	BytesSent() uint64
	// Baud is the line rate in bit/s; the ceiling is Baud/10 bytes/s.
	Baud() int
}

// DeviceCounters is a Target whose device can be watched from here (an
// emulated ESP32 in this process). With it, uploads are counted where the
// data lands and the report has the device link's figures too.
type DeviceCounters interface {
	// DeviceLinkStats returns the device link's counters.
	DeviceLinkStats() link.Stats
	// DeviceBytesReceived counts the stream payload the device's mux
	// received.
	DeviceBytesReceived() uint64
}

// HostTarget is a Target over a serial port.
func HostTarget(h *hostlink.Host, baud int) Switcher {
	return &hostTarget{h: h, baud: baud, flow: h.Port().FlowControl()}
}

type hostTarget struct {
	h    *hostlink.Host
	baud int
	flow bool
}

func (t *hostTarget) OpenService(ctx context.Context, name string) (net.Conn, error) {
	st, err := t.h.Session().OpenService(ctx, name)
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (t *hostTarget) Echo(ctx context.Context, p []byte) ([]byte, error) {
	return t.h.Session().Echo(ctx, p)
}

func (t *hostTarget) LinkStats() link.Stats { return t.h.Link().Stats() }
func (t *hostTarget) BytesSent() uint64     { return t.h.Session().Stats().BytesOut }
func (t *hostTarget) Baud() int             { return t.baud }
func (t *hostTarget) FlowControl() bool     { return t.flow }

func (t *hostTarget) SwitchLine(ctx context.Context, baud int, flow bool) error {
	err := t.h.Session().SwitchBaud(ctx, mux.BaudSwitch{
		From: t.baud, To: baud, FromFlow: t.flow, ToFlow: flow,
		Apply: func(b int, f bool) error {
			if err := t.h.SetLine(b, f); err != nil {
				return err
			}
			t.baud, t.flow = b, t.h.Port().FlowControl()
			return nil
		},
	})
	return err
}

// BedTarget is a Target over an in-process stack with an emulated device;
// it also implements DeviceCounters.
func BedTarget(b *testbed.Bed) Switcher { return bedTarget{b} }

type bedTarget struct{ b *testbed.Bed }

func (t bedTarget) OpenService(ctx context.Context, name string) (net.Conn, error) {
	st, err := t.b.Host.OpenService(ctx, name)
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (t bedTarget) Echo(ctx context.Context, p []byte) ([]byte, error) {
	return t.b.Host.Echo(ctx, p)
}

func (t bedTarget) LinkStats() link.Stats { return t.b.HostLink.Stats() }
func (t bedTarget) BytesSent() uint64     { return t.b.Host.Stats().BytesOut }
func (t bedTarget) Baud() int             { return t.b.HostPort.Baud() }
func (t bedTarget) FlowControl() bool     { return t.b.HostPort.FlowControl() }

func (t bedTarget) SwitchLine(ctx context.Context, baud int, flow bool) error {
	return t.b.Host.SwitchBaud(ctx, mux.BaudSwitch{
		From: t.Baud(), To: baud, FromFlow: t.FlowControl(), ToFlow: flow, Apply: t.b.SetHostLine,
	})
}
func (t bedTarget) DeviceLinkStats() link.Stats { return t.b.Device.Link().Stats() }
func (t bedTarget) DeviceBytesReceived() uint64 { return t.b.Device.Session().Stats().BytesIn }
