package mux_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/mux"
	"github.com/uartproxy/uartproxy/internal/testbed"
)

func TestSwitchBaudDuringTransfer(t *testing.T) {
	b := newBed(t, testbed.Clean(921600))
	st, err := b.Host.OpenService(ctxT(t, 5*time.Second), "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	data := make([]byte, 400<<10)
	rand.Read(data)
	go func() {
		st.Write(data)
		st.CloseWrite()
	}()
	got := make(chan []byte, 1)
	go func() {
		st.SetReadDeadline(time.Now().Add(30 * time.Second))
		b, _ := io.ReadAll(st)
		got <- b
	}()
	time.Sleep(200 * time.Millisecond) // mid-transfer
	err = b.Host.SwitchBaud(ctxT(t, 5*time.Second), mux.BaudSwitch{From: 921600, To: 3000000, FromFlow: true, ToFlow: true, Apply: b.SetHostLine})
	if err != nil {
		t.Fatal(err)
	}
	if b.HostPort.Baud() != 3000000 || b.DevicePort.Baud() != 3000000 {
		t.Fatalf("bauds after switch: host %d device %d", b.HostPort.Baud(), b.DevicePort.Baud())
	}
	if r := <-got; !bytes.Equal(r, data) {
		t.Fatalf("echo across the switch: %d bytes back of %d, equal %v", len(r), len(data), bytes.Equal(r, data))
	}
	// The device does not fall back after a committed switch.
	time.Sleep(1200 * time.Millisecond)
	if b.DevicePort.Baud() != 3000000 {
		t.Fatalf("device fell back to %d after commit", b.DevicePort.Baud())
	}
	if _, err := b.Host.Echo(ctxT(t, 2*time.Second), []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if s := b.HostLink.Stats(); s.Sessions != 1 {
		t.Fatalf("the switch cost the session: %+v", s)
	}
}

func TestSwitchBaudRefused(t *testing.T) {
	b := newBed(t, testbed.Clean(921600))
	err := b.Host.SwitchBaud(ctxT(t, 5*time.Second), mux.BaudSwitch{From: 921600, To: 50, FromFlow: true, ToFlow: true, Apply: b.SetHostLine})
	if mux.CodeOf(err) != message.CodeUnsupported {
		t.Fatalf("switch to 50 baud: %v", err)
	}
	if b.HostPort.Baud() != 921600 || b.DevicePort.Baud() != 921600 {
		t.Fatal("a refused switch changed a baud rate")
	}
}

func TestSwitchBaudFallsBack(t *testing.T) {
	b := newBed(t, testbed.Clean(921600))
	// A host adapter that cannot really do the new rate: it ends up at a
	// third one, so nothing gets through at the new rate.
	broken := func(baud int, flow bool) error {
		if baud == 3000000 {
			return b.SetHostLine(2000000, flow)
		}
		return b.SetHostLine(baud, flow)
	}
	start := time.Now()
	err := b.Host.SwitchBaud(ctxT(t, 5*time.Second), mux.BaudSwitch{From: 921600, To: 3000000, FromFlow: true, ToFlow: true, Apply: broken})
	if err == nil || !strings.Contains(err.Error(), "back at 921600") {
		t.Fatalf("broken switch: %v", err)
	}
	// The device falls back by itself; the link carries on at the old rate.
	deadline := time.Now().Add(3 * time.Second)
	for b.DevicePort.Baud() != 921600 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if b.DevicePort.Baud() != 921600 {
		t.Fatal("device did not fall back")
	}
	if _, err := b.Host.Echo(ctxT(t, 3*time.Second), []byte("old rate")); err != nil {
		var le *mux.LinkError
		if !errors.As(err, &le) {
			t.Fatal(err)
		}
		// Re-handshake is acceptable, but then it must work.
		if _, err := b.Host.Echo(ctxT(t, 3*time.Second), []byte("old rate")); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("fell back in %v; host link %d sessions", time.Since(start), b.HostLink.Stats().Sessions)
}

func TestSwitchFlowControlOff(t *testing.T) {
	b := newBed(t, testbed.Clean(921600))
	err := b.Host.SwitchBaud(ctxT(t, 5*time.Second), mux.BaudSwitch{From: 921600, To: 921600, FromFlow: true, ToFlow: false, Apply: b.SetHostLine})
	if err != nil {
		t.Fatal(err)
	}
	if b.HostPort.FlowControl() || b.DevicePort.FlowControl() {
		t.Fatal("RTS/CTS still on after switching it off")
	}
	st, err := b.Host.OpenService(ctxT(t, 5*time.Second), "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	data := make([]byte, 100<<10)
	rand.Read(data)
	go func() {
		st.Write(data)
		st.CloseWrite()
	}()
	st.SetReadDeadline(time.Now().Add(20 * time.Second))
	if got, err := io.ReadAll(st); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("echo without RTS/CTS: %d bytes, %v", len(got), err)
	}
}
