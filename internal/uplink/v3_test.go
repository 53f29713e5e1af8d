package uplink

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/emulator"
	"github.com/uartproxy/uartproxy/internal/seedv3"
	"github.com/uartproxy/uartproxy/internal/serialport"
	"github.com/uartproxy/uartproxy/internal/uartemu"
)

func TestEmulatedV3(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Emulate = true
	cfg.Protocol = ProtocolV3
	cfg.Port.Baud = 1400000
	u, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if err := roundTrip(t, u, echoServer(t)); err != nil {
		t.Fatal(err)
	}
	waitState(t, u, StateUp, 5*time.Second)
	st := u.Status()
	if st.Protocol != ProtocolV3 || st.Peer.Firmware != v3Firmware {
		t.Fatalf("status %+v: want protocol v3", st)
	}
	addrs, err := u.LookupNetIP(context.Background(), "ip4", "localhost")
	if err != nil || len(addrs) == 0 || !addrs[0].IsLoopback() {
		t.Fatalf("LookupNetIP(localhost) = %v, %v", addrs, err)
	}
	info, err := u.Info(context.Background())
	if err != nil || info.WiFi == nil {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	if _, err := u.DialContext(context.Background(), "tcp", closed); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial a closed port: %v, want ECONNREFUSED", err)
	}
	ls, ms := u.Stats()
	if ls.TxFrames == 0 || ms.BytesOut == 0 {
		t.Fatalf("stats not counting: %+v %+v", ls, ms)
	}
	// A reboot: the board loses its sockets; new dials work afterwards.
	if err := u.RebootEmulated(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for roundTrip(t, u, echoServer(t)) != nil {
		if time.Now().After(deadline) {
			t.Fatal("no working dial 10 s after the reboot")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestProbe: with the default protocol auto, the uplink tells a v3 board
// from a native device on the same path, each time the port is opened.
func TestProbe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ttyESP32")
	const baud = 1400000
	line := uartemu.Symmetric(uartemu.Line{Baud: baud, FlowControl: true})

	p, err := uartemu.NewPTY(line, path)
	if err != nil {
		t.Fatal(err)
	}
	v3, err := seedv3.NewDevice(p.Device(), seedv3.DefaultDeviceConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Port = serialport.Config{Path: path, Baud: baud, FlowControl: true}
	cfg.MinBackoff, cfg.MaxBackoff = 20*time.Millisecond, 100*time.Millisecond
	u, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	waitState(t, u, StateUp, 10*time.Second)
	if st := u.Status(); st.Protocol != ProtocolV3 {
		t.Fatalf("protocol %q, want v3", st.Protocol)
	}
	if err := roundTrip(t, u, echoServer(t)); err != nil {
		t.Fatal(err)
	}

	// The board is reflashed with uartproxy's firmware.
	v3.Close()
	p.Close()
	waitState(t, u, StateAbsent, 10*time.Second)
	p, err = uartemu.NewPTY(line, path)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dc := emulator.DefaultConfig()
	dc.Baud = baud
	dev, err := emulator.New(p.Device(), dc)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	_ = dev.Session()
	waitState(t, u, StateUp, 10*time.Second)
	if st := u.Status(); st.Protocol != ProtocolNative {
		t.Fatalf("protocol %q after reflashing, want native", st.Protocol)
	}
	if err := roundTrip(t, u, echoServer(t)); err != nil {
		t.Fatal(err)
	}
}
