package mux_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/emulator"
	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/mux"
	"github.com/uartproxy/uartproxy/internal/testbed"
	"github.com/uartproxy/uartproxy/internal/uartemu"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestUDPBothWays(t *testing.T) {
	b := newBed(t, testbed.Clean(3000000))
	// A real UDP echo server that prefixes its answers.
	srv, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			srv.WriteTo(append([]byte("re:"), buf[:n]...), from)
		}
	}()
	pc, err := b.Host.ListenPacket(ctxT(t, 5*time.Second), "udp", "")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if la := pc.LocalAddr().(mux.Addr); la.Port == 0 {
		t.Fatalf("device bound no port: %v", la)
	}
	sa := srv.LocalAddr().(*net.UDPAddr)
	for i := 0; i < 20; i++ {
		msg := []byte(fmt.Sprintf("datagram %d", i))
		if _, err := pc.WriteTo(msg, sa); err != nil {
			t.Fatal(err)
		}
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2048)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		if string(buf[:n]) != "re:"+string(msg) {
			t.Fatalf("got %q", buf[:n])
		}
		if fa := from.(mux.Addr); fa.Port != uint16(sa.Port) || fa.Host != "127.0.0.1" {
			t.Fatalf("from %v, want %v", from, sa)
		}
	}
	// Names are resolved on the device when sending.
	if _, err := pc.WriteTo([]byte("by name"), mux.Addr{Net: "udp", Host: "localhost", Port: uint16(sa.Port)}); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.WriteTo(make([]byte, 5000), sa); !errors.Is(err, mux.ErrTooLarge) {
		t.Fatalf("oversized datagram: %v", err)
	}
}

func TestListenerOnDevice(t *testing.T) {
	b := newBed(t, testbed.Clean(3000000))
	ln, err := b.Host.Listen(ctxT(t, 5*time.Second), "tcp", "127.0.0.1:0", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	for i := 0; i < 3; i++ {
		go func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "hello %d\n", i)
			c.(*net.TCPConn).CloseWrite()
			io.Copy(io.Discard, c)
		}()
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		if err != nil || string(got) != fmt.Sprintf("hello %d\n", i) {
			t.Fatalf("accepted stream read %q, %v", got, err)
		}
		if ra := c.RemoteAddr().(mux.Addr); ra.Host != "127.0.0.1" || ra.Port == 0 {
			t.Fatalf("remote addr %v", ra)
		}
		c.Close()
	}
	ln.Close()
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		// The device closes the socket asynchronously; give it a moment.
		time.Sleep(200 * time.Millisecond)
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Fatal("device still listening after Close")
		}
	}
}

func TestRequests(t *testing.T) {
	b := newBed(t, testbed.Clean(3000000))
	ctx := ctxT(t, 5*time.Second)
	addrs, err := b.Host.Resolve(ctx, "localhost", 4)
	if err != nil || len(addrs) == 0 || !addrs[0].IsLoopback() {
		t.Fatalf("Resolve(localhost) = %v, %v", addrs, err)
	}
	if _, err := b.Host.Resolve(ctx, "no-such-host.invalid", 0); mux.CodeOf(err) != message.CodeDNS {
		t.Fatalf("unknown name: %v", err)
	}
	info, err := b.Host.Info(ctx)
	if err != nil || info.Model == "" || info.FreeMem == nil || info.WiFi == nil || *info.WiFi != message.WiFiUp {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	echo, err := b.Host.Echo(ctx, []byte("ping"))
	if err != nil || string(echo) != "ping" {
		t.Fatalf("Echo = %q, %v", echo, err)
	}
	if _, err := b.Host.Request(ctx, message.Op(99), nil); mux.CodeOf(err) != message.CodeUnsupported {
		t.Fatalf("unknown op: %v", err)
	}
}

func TestTLSOnDevice(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secret over tls")
	}))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	o := testbed.Clean(3000000)
	o.Device.RootCAs = pool
	b := newBed(t, o)
	addr := srv.Listener.Addr().String()
	get := func(opts *mux.TLSOptions) (string, error) {
		st, err := b.Host.DialStream(ctxT(t, 5*time.Second), "tcp", addr, mux.DialOptions{TLS: opts})
		if err != nil {
			return "", err
		}
		defer st.Close()
		fmt.Fprintf(st, "GET / HTTP/1.0\r\nHost: example.com\r\n\r\n")
		st.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := io.ReadAll(st)
		return string(resp), err
	}
	// The test certificate is for "example.com" and 127.0.0.1.
	for _, c := range []struct {
		name string
		opts *mux.TLSOptions
		code message.Code
	}{
		{"verified", &mux.TLSOptions{ServerName: "example.com", Verify: true}, message.CodeOK},
		{"unverified", &mux.TLSOptions{ServerName: "wrong.name", Verify: false}, message.CodeOK},
		{"wrong name", &mux.TLSOptions{ServerName: "wrong.name", Verify: true}, message.CodeTLS},
	} {
		resp, err := get(c.opts)
		if got := mux.CodeOf(err); got != c.code {
			t.Fatalf("%s: code %v (%v), want %v", c.name, got, err, c.code)
		}
		if err == nil && !bytes.Contains([]byte(resp), []byte("secret over tls")) {
			t.Fatalf("%s: response %q", c.name, resp)
		}
	}
	// Without the CA the device must refuse to trust the server.
	b2 := newBed(t, testbed.Clean(3000000))
	st, err := b2.Host.DialStream(ctxT(t, 5*time.Second), "tcp", addr, mux.DialOptions{TLS: &mux.TLSOptions{ServerName: "example.com", Verify: true}})
	if mux.CodeOf(err) != message.CodeTLS {
		if st != nil {
			st.Close()
		}
		t.Fatalf("unknown CA: %v", err)
	}
}

func TestRefusedAndHalfClose(t *testing.T) {
	b := newBed(t, testbed.Clean(3000000))
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	_, err := b.Host.Dial(ctxT(t, 5*time.Second), "tcp", closed)
	var re *mux.ResetError
	if !errors.As(err, &re) || re.Code != message.CodeRefused || !re.Remote {
		t.Fatalf("dial to closed port: %v", err)
	}
	if _, err := b.Host.Dial(ctxT(t, 5*time.Second), "tcp", "no-such-host.invalid:80"); mux.CodeOf(err) != message.CodeDNS {
		t.Fatalf("dial to unknown name: %v", err)
	}
	// Half-close: the server answers only after reading EOF.
	srv, _ := net.Listen("tcp", "127.0.0.1:0")
	defer srv.Close()
	go func() {
		c, err := srv.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req, _ := io.ReadAll(c)
		fmt.Fprintf(c, "you sent %d bytes", len(req))
	}()
	c, err := b.Host.Dial(ctxT(t, 5*time.Second), "tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(make([]byte, 10000))
	c.(*mux.Stream).CloseWrite()
	if _, err := c.Write([]byte("x")); !errors.Is(err, mux.ErrWriteClosed) {
		t.Fatalf("write after CloseWrite: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "you sent 10000 bytes" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestDeadlines(t *testing.T) {
	b := newBed(t, testbed.Clean(3000000))
	st, err := b.Host.OpenService(ctxT(t, 5*time.Second), "discard")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err = st.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past deadline: %v", err)
	}
	// A deadline set while Read blocks wakes it.
	st.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := st.Read(make([]byte, 10))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	st.SetReadDeadline(time.Now())
	select {
	case err := <-done:
		if !errors.Is(err, mux.ErrTimeout) {
			t.Fatalf("woken read: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("SetReadDeadline did not wake a blocked Read")
	}
	// Write deadlines: fill the send buffer of a stream nobody drains.
	src, err := b.Host.OpenService(ctxT(t, 5*time.Second), "source")
	if err != nil {
		t.Fatal(err)
	}
	src.Close()
	echo, _ := b.Host.OpenService(ctxT(t, 5*time.Second), "echo")
	defer echo.Close()
	echo.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	_, err = echo.Write(make([]byte, 8<<20)) // echo stalls: we never read
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("write past deadline: %v", err)
	}
}

// TestSlowReaderDoesNotStallOthers: a stream nobody reads fills its window
// and stops; another stream still runs at full speed.
func TestSlowReaderDoesNotStallOthers(t *testing.T) {
	b := newBed(t, testbed.Clean(3000000))
	stuck, err := b.Host.OpenService(ctxT(t, 5*time.Second), "source")
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	time.Sleep(300 * time.Millisecond) // its window fills
	st, err := b.Host.OpenService(ctxT(t, 5*time.Second), "source")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	buf := make([]byte, 512<<10)
	if _, err := io.ReadFull(st, buf); err != nil {
		t.Fatal(err)
	}
	for i, c := range buf {
		if c != message.SourceByte(uint64(i)) {
			t.Fatalf("byte %d = %d", i, c)
		}
	}
	t.Logf("512 KiB beside a stalled stream in %v (line: %.0f B/s)", time.Since(start), b.LineRate())
	if s := b.Host.Stats(); s.StreamsOpen != 2 {
		t.Fatalf("streams open: %d", s.StreamsOpen)
	}
}

// TestStreamLimit: many more dials than the device allows; each either
// succeeds or fails clearly within its deadline, and none hangs.
func TestStreamLimit(t *testing.T) {
	o := testbed.Clean(3000000)
	o.Device.MaxStreams = 4
	b := newBed(t, o)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			st, err := b.Host.OpenService(ctx, "echo")
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if mux.CodeOf(err) != message.CodeLimit && mux.CodeOf(err) != message.CodeTimeout {
					t.Errorf("unexpected error: %v", err)
				}
				refused++
				return
			}
			ok++
			go func() { time.Sleep(100 * time.Millisecond); st.Close() }()
		}()
	}
	wg.Wait()
	t.Logf("%d opened, %d refused", ok, refused)
	if ok < 4 || ok+refused != 40 {
		t.Fatalf("%d ok, %d refused", ok, refused)
	}
}

// TestManyStreamsUnderImpairment: concurrent random transfers under each
// impairment arrive byte-exact, on the right stream.
func TestManyStreamsUnderImpairment(t *testing.T) {
	lines := map[string]uartemu.Line{
		"ber1e-4":   {Baud: 3000000, FlowControl: true, BER: 1e-4, Seed: 11},
		"bursts":    {Baud: 3000000, FlowControl: true, BurstRate: 5e-5, BurstLen: 32, Seed: 12},
		"drops0.1%": {Baud: 3000000, FlowControl: true, DropRate: 1e-3, Seed: 13},
		// No RTS/CTS and a device that drains its UART slower than the
		// line fills it (see testbed.Options.SlowDevice): overflow.
		"overflow-no-flow": {Baud: 3000000, FlowControl: false, RxBuffer: 4096, Seed: 14},
	}
	for name, line := range lines {
		t.Run(name, func(t *testing.T) {
			o := testbed.Options{Line: uartemu.Symmetric(line)}
			if !line.FlowControl {
				o.SlowDevice = 2 * time.Millisecond
			}
			b := newBed(t, o)
			var wg sync.WaitGroup
			for i := 0; i < 4; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st, err := b.Host.OpenService(ctxT(t, 10*time.Second), "echo")
					if err != nil {
						t.Error(err)
						return
					}
					defer st.Close()
					data := make([]byte, 64<<10+i*1000)
					rand.Read(data)
					go func() {
						st.Write(data)
						st.CloseWrite()
					}()
					st.SetReadDeadline(time.Now().Add(60 * time.Second))
					got, err := io.ReadAll(st)
					if err != nil {
						t.Errorf("stream %d: %v", i, err)
						return
					}
					if sha256.Sum256(got) != sha256.Sum256(data) {
						t.Errorf("stream %d: %d bytes back, %d sent, content differs", i, len(got), len(data))
					}
				}()
			}
			wg.Wait()
			hs, up, down := b.HostLink.Stats(), b.HostPort.Stats(), b.DevicePort.Stats()
			t.Logf("host retx %d; line up/down: corrupted %d/%d dropped %d/%d overflow %d/%d", hs.Retransmits,
				up.Corrupted, down.Corrupted, up.Dropped, down.Dropped, up.Overflow, down.Overflow)
			if t.Failed() {
				t.Logf("host link: %+v", hs)
				t.Logf("device link: %+v", b.Device.Link().Stats())
			}
			if up.Corrupted+up.Dropped+up.Overflow+up.BurstBytes+down.Corrupted+down.Dropped+down.Overflow+down.BurstBytes == 0 {
				t.Fatal("the line injected no errors: the test tests nothing")
			}
		})
	}
}

func TestDeviceRebootMidTransfer(t *testing.T) {
	b := newBed(t, testbed.Clean(921600))
	streams := make([]*mux.Stream, 3)
	for i := range streams {
		st, err := b.Host.OpenService(ctxT(t, 5*time.Second), "source")
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		streams[i] = st
	}
	errs := make(chan error, len(streams))
	for _, st := range streams {
		go func() {
			_, err := io.Copy(io.Discard, st)
			errs <- err
		}()
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	go b.Device.Reboot()
	for range streams {
		select {
		case err := <-errs:
			var le *mux.LinkError
			if !errors.As(err, &le) {
				t.Fatalf("stream ended with %v, want a *mux.LinkError", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("a stream did not end within 2 s of the reboot")
		}
	}
	t.Logf("streams failed %v after the reboot", time.Since(start))
	// New streams work right after the device's new HELLO.
	st, err := b.Host.OpenService(ctxT(t, 5*time.Second), "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.Write([]byte("after reboot"))
	st.CloseWrite()
	st.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(st); err != nil || string(got) != "after reboot" {
		t.Fatalf("after reboot: %q, %v", got, err)
	}
	_ = emulator.DefaultConfig
}
