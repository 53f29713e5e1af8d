package forward

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
)

// fakeDevice listens with real listeners on 127.0.0.1; the next fail
// Listen calls fail as mux does while no device is connected.
type fakeDevice struct {
	mu    sync.Mutex
	fail  int
	calls int
	addrs []string
	lns   chan net.Listener
}

func newFakeDevice(fail int) *fakeDevice {
	return &fakeDevice{fail: fail, lns: make(chan net.Listener, 10)}
}

func (d *fakeDevice) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	d.addrs = append(d.addrs, address)
	if d.fail > 0 {
		d.fail--
		return nil, &net.OpError{Op: "listen", Net: network, Err: errnoLike{syscall.ENETDOWN}}
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	d.lns <- ln
	return ln, nil
}

func (d *fakeDevice) failNext(n int) {
	d.mu.Lock()
	d.fail = n
	d.mu.Unlock()
}

func (d *fakeDevice) listener(t *testing.T) net.Listener {
	t.Helper()
	select {
	case ln := <-d.lns:
		return ln
	case <-time.After(10 * time.Second):
		t.Fatal("the forward did not listen on the device")
		return nil
	}
}

// roundTrip connects to addr, sends msg, half-closes and returns the
// answer.
func roundTrip(t *testing.T, addr, msg string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte(msg))
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRemoteRelistens: the loop retries while the device is away, serves
// once it listens, and listens again after the listener is lost; it logs
// each change once, not each retry.
func TestRemoteRelistens(t *testing.T) {
	srv := tcpServer(t, answerAfterEOF)
	dev := newFakeDevice(2)
	var logs syncBuffer
	f := start(t, Config{
		Spec:   mustSpec(t, fmt.Sprintf("2222:127.0.0.1:%d", srv.Port), true),
		Listen: dev.Listen,
		Logger: zerolog.New(&logs).Level(zerolog.InfoLevel),
	})
	if f.Addr() != nil {
		t.Fatalf("Addr of a remote forward: %v", f.Addr())
	}
	ln := dev.listener(t)
	eventually(t, "listening", func() bool { return f.Stats().Listening })
	if got := roundTrip(t, ln.Addr().String(), "one"); got != "got: one" {
		t.Fatalf("got %q", got)
	}

	dev.failNext(1)
	ln.Close() // the link is lost: Accept fails
	ln = dev.listener(t)
	if got := roundTrip(t, ln.Addr().String(), "two"); got != "got: two" {
		t.Fatalf("got %q", got)
	}
	eventually(t, "connections done", func() bool { return f.Stats().Active == 0 })
	st := f.Stats()
	if st.Accepted != 2 || st.Direction != "remote" || !st.Listening || st.BytesUp != uint64(2*len("got: one")) || st.BytesDown != 6 {
		t.Fatalf("stats %+v", st)
	}
	for r, n := range st.Failed {
		if n != 0 {
			t.Errorf("Failed[%s] = %d", r, n)
		}
	}
	dev.mu.Lock()
	calls, addrs := dev.calls, dev.addrs
	dev.mu.Unlock()
	if calls != 5 || addrs[0] != ":2222" {
		t.Fatalf("%d Listen calls, addresses %q", calls, addrs)
	}
	// Shutdown closes the listener on purpose: not a loss.
	if err := f.Shutdown(ctxT(t, 10*time.Second)); err != nil || f.Stats().Listening {
		t.Fatalf("Shutdown: %v, %+v", err, f.Stats())
	}
	out := logs.String()
	for msg, want := range map[string]int{
		"waiting for the ESP32 to listen": 1,
		"listening on the ESP32":          2,
		"lost the listener on the ESP32":  1,
		"cannot listen":                   0,
	} {
		if n := strings.Count(out, msg); n != want {
			t.Errorf("%q logged %d times, want %d:\n%s", msg, n, want, out)
		}
	}
}

// TestRemoteDialLocalFails: a connection whose local target refuses is
// closed and counted.
func TestRemoteDialLocalFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dev := newFakeDevice(0)
	f := start(t, Config{
		Spec:   mustSpec(t, fmt.Sprintf("2222:127.0.0.1:%d", port), true),
		Listen: dev.Listen,
	})
	devLn := dev.listener(t)
	c, err := net.Dial("tcp", devLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read from a connection whose target refused")
	}
	eventually(t, "failure counted", func() bool { return f.Stats().Failed[ReasonRefused] == 1 })
}

// TestRemoteStopsWhileRetrying: Shutdown and Close end the loop while it
// waits for the device.
func TestRemoteStopsWhileRetrying(t *testing.T) {
	for _, how := range []string{"shutdown", "close"} {
		dev := newFakeDevice(1 << 30)
		f := start(t, Config{Spec: mustSpec(t, "2222:127.0.0.1:1", true), Listen: dev.Listen})
		eventually(t, "a Listen attempt", func() bool {
			dev.mu.Lock()
			defer dev.mu.Unlock()
			return dev.calls > 0
		})
		var err error
		if how == "shutdown" {
			err = f.Shutdown(ctxT(t, 10*time.Second))
		} else {
			err = f.Close()
		}
		if err != nil || f.Stats().Listening {
			t.Fatalf("%s: %v, %+v", how, err, f.Stats())
		}
	}
}

// chanListener is an in-memory device listener whose Accept blocks
// durably, for synctest.
type chanListener struct {
	once   sync.Once
	closed chan struct{}
}

func (l *chanListener) Accept() (net.Conn, error) {
	<-l.closed
	return nil, net.ErrClosed
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{Port: 2222} }

// TestRemoteBackoff checks the retry schedule on a fake clock: 250 ms
// doubling to 5 s while Listen fails, and 250 ms again after a loss.
func TestRemoteBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var mu sync.Mutex
		var at []time.Duration
		down := fmt.Errorf("device: %w", syscall.ENETDOWN)
		timeout := &net.OpError{Op: "listen", Net: "tcp", Err: os.ErrDeadlineExceeded}
		denied := fmt.Errorf("device: %w", syscall.EACCES)
		fails := []error{down, timeout, down, denied, denied, down, timeout, down}
		lns := make(chan *chanListener, 2)
		listen := func(ctx context.Context, network, address string) (net.Listener, error) {
			mu.Lock()
			defer mu.Unlock()
			at = append(at, time.Since(start))
			if len(fails) > 0 {
				err := fails[0]
				fails = fails[1:]
				return nil, err
			}
			ln := &chanListener{closed: make(chan struct{})}
			lns <- ln
			return ln, nil
		}
		var logs syncBuffer
		f, err := New(Config{Spec: mustSpec(t, "2222:127.0.0.1:22", true), Listen: listen,
			Logger: zerolog.New(&logs).Level(zerolog.InfoLevel)})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Start(); err != nil {
			t.Fatal(err)
		}
		ln := <-lns
		synctest.Wait()
		if !f.Stats().Listening {
			t.Fatal("not listening")
		}
		lost := time.Since(start)
		ln.Close()
		<-lns
		f.Close()

		ms := func(d ...int) (out []time.Duration) {
			for _, x := range d {
				out = append(out, time.Duration(x)*time.Millisecond)
			}
			return out
		}
		var gaps []time.Duration
		for i := 1; i < len(at); i++ {
			gaps = append(gaps, at[i]-at[i-1])
		}
		want := ms(250, 500, 1000, 2000, 4000, 5000, 5000, 5000)
		want = append(want, lost+250*time.Millisecond-at[len(at)-2])
		if fmt.Sprint(gaps) != fmt.Sprint(want) {
			t.Fatalf("Listen every %v, want %v", gaps, want)
		}
		// Timeouts while the device is away are no news; a denial is,
		// and so is waiting again after it.
		out := logs.String()
		for msg, want := range map[string]int{
			"waiting for the ESP32 to listen":      2,
			"cannot listen on the ESP32; retrying": 1,
			`"reason":"denied"`:                    1,
			"listening on the ESP32":               2,
			"lost the listener on the ESP32":       1,
		} {
			if n := strings.Count(out, msg); n != want {
				t.Errorf("%q logged %d times, want %d:\n%s", msg, n, want, out)
			}
		}
	})
}
