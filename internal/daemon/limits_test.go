package daemon_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/config"
	"github.com/uartproxy/uartproxy/internal/daemon"
)

// TestMaxClients opens 8 clients at once, half through a forward and half
// through SOCKS5, against max_clients 4: four are served and held open,
// the other four are closed at once, and the refusals are counted.
func TestMaxClients(t *testing.T) {
	t.Parallel()
	srv := tcpServer(t, echo)
	cfg := emulated()
	cfg.Limits.MaxClients = 4
	cfg.Forwards = []string{fwd(srv, false)}
	d := start(t, daemon.Options{Config: cfg})
	a := d.Addrs()

	const clients = 8
	var served, closed atomic.Int32
	// reported counts clients that know their outcome; served ones keep
	// their connection open until every client has reported.
	var reported, finished sync.WaitGroup
	hold := make(chan struct{})
	errs := make(chan error, clients)
	for i := range clients {
		reported.Add(1)
		finished.Add(1)
		go func() {
			defer finished.Done()
			var once sync.Once
			report := func() { once.Do(reported.Done) }
			defer report()
			var c net.Conn
			var err error
			if i%2 == 0 {
				c, err = net.DialTimeout("tcp", a.Forwards[cfg.Forwards[0]].String(), 5*time.Second)
			} else {
				c, err = socksConnect(ctxFor(t, 10*time.Second), a.SOCKS5.String(), "127.0.0.1", srv.Port)
				if err != nil && !isTimeout(err) && replyOf(err) < 0 {
					closed.Add(1) // closed before the SOCKS5 reply
					return
				}
			}
			if err != nil {
				errs <- fmt.Errorf("client %d: %v", i, err)
				return
			}
			defer c.Close()
			msg := fmt.Appendf(nil, "client %d", i)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.Write(msg)
			got := make([]byte, len(msg))
			n, err := io.ReadFull(c, got)
			switch {
			case err == nil && bytes.Equal(got, msg):
				served.Add(1)
				report()
				<-hold
			case isTimeout(err):
				errs <- fmt.Errorf("client %d hung: %v", i, err)
			case err != nil:
				closed.Add(1)
			default:
				errs <- fmt.Errorf("client %d: echo %q", i, got[:n])
			}
		}()
	}
	reported.Wait()
	close(hold)
	finished.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if served.Load() != 4 || closed.Load() != 4 {
		t.Fatalf("%d served, %d closed; want 4 and 4", served.Load(), closed.Load())
	}
	if s := d.Snapshot(); s.Clients.Rejected != 4 || s.Clients.Limit != 4 {
		t.Fatalf("clients %+v, want 4 rejected", s.Clients)
	}
}

// TestSOCKSStorm runs 500 SOCKS5 clients at once, each echoing a little
// through a server on this host, against the emulated ESP32's 16
// streams: every client gets its data back or a clear refusal, none
// hangs, the goroutines and the heap come back down, and the daemon still
// serves a new client.
func TestSOCKSStorm(t *testing.T) {
	// Not parallel: it counts goroutines.
	srv := tcpServer(t, echo)
	cfg := emulated()
	cfg.Limits.MaxClients = 1000 // the device's streams are the limit here, not the client gate
	d := start(t, daemon.Options{Config: cfg})
	proxy := d.Addrs().SOCKS5.String()
	if n := d.Uplink().Status().Peer.MaxStreams; n != 16 {
		t.Logf("the emulated ESP32 holds %d streams", n)
	}
	baseline := runtime.NumGoroutine()

	const clients = 500
	var ok, refused, closedEarly atomic.Int32
	replies := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := socksConnect(ctxFor(t, 60*time.Second), proxy, "127.0.0.1", srv.Port)
			switch {
			case isTimeout(err):
				errs <- fmt.Errorf("client %d hung in CONNECT: %v", i, err)
				return
			case replyOf(err) >= 0:
				refused.Add(1)
				mu.Lock()
				replies[replyOf(err)]++
				mu.Unlock()
				return
			case err != nil:
				closedEarly.Add(1)
				return
			}
			defer c.Close()
			msg := fmt.Appendf(nil, "storm client %03d", i)
			c.Write(msg)
			c.(*net.TCPConn).CloseWrite()
			got, err := readAll(c, 60*time.Second)
			switch {
			case isTimeout(err):
				errs <- fmt.Errorf("client %d hung in the echo: %v", i, err)
			case err == nil && bytes.Equal(got, msg):
				ok.Add(1)
			case err == nil && len(got) == 0 || err != nil:
				closedEarly.Add(1) // the connection ended: clear, if not useful
			default:
				errs <- fmt.Errorf("client %d: echo %q, want %q", i, got, msg)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d clients: %d echoed, %d refused with a reply %v, %d closed before or during the echo",
		clients, ok.Load(), refused.Load(), replies, closedEarly.Load())
	if ok.Load() == 0 {
		t.Fatal("no client got its echo")
	}
	if got := ok.Load() + refused.Load() + closedEarly.Load(); got != clients {
		t.Fatalf("%d outcomes for %d clients", got, clients)
	}

	eventually(t, 20*time.Second, fmt.Sprintf("goroutines back near the %d before the storm", baseline), func() bool {
		return runtime.NumGoroutine() <= baseline+20
	})
	eventually(t, 10*time.Second, "no SOCKS5 client active", func() bool {
		s := d.Snapshot()
		return s.SOCKS5.Active == 0 && s.Clients.Active == 0 && s.Mux.StreamsOpen == 0
	})
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("after the storm: %d goroutines (%d before), heap in use %.1f MB", runtime.NumGoroutine(), baseline, float64(ms.HeapInuse)/(1<<20))
	if ms.HeapInuse > 200<<20 {
		t.Errorf("heap in use %d MB after the storm", ms.HeapInuse>>20)
	}

	c, err := socksConnect(ctxFor(t, 10*time.Second), proxy, "127.0.0.1", srv.Port)
	if err != nil {
		t.Fatalf("a client after the storm: %v", err)
	}
	defer c.Close()
	c.Write([]byte("after"))
	c.(*net.TCPConn).CloseWrite()
	if got, err := readAll(c, 10*time.Second); err != nil || string(got) != "after" {
		t.Fatalf("a client after the storm: %q, %v", got, err)
	}
}

// TestStreamsExhausted holds more SOCKS5 connections open than the
// emulated ESP32 has streams, with a 1 s connect_timeout: as many as it
// has streams connect, the rest get a failure reply (0x01: no free
// stream) when the timeout passes, and once the holders leave a new
// client connects.
func TestStreamsExhausted(t *testing.T) {
	t.Parallel()
	srv := tcpServer(t, echo)
	cfg := emulated()
	cfg.Limits.ConnectTimeout = config.Duration(time.Second)
	d := start(t, daemon.Options{Config: cfg})
	proxy := d.Addrs().SOCKS5.String()
	streams := int(d.Uplink().Status().Peer.MaxStreams)

	clients := streams + 24
	var mu sync.Mutex
	replies := map[int]int{}
	var held []net.Conn
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := socksConnect(ctxFor(t, 20*time.Second), proxy, "127.0.0.1", srv.Port)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				held = append(held, c)
			case replyOf(err) >= 0:
				replies[replyOf(err)]++
			default:
				t.Errorf("CONNECT with every stream busy: %v, want a reply", err)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d clients, %d streams: %d connected, refused by reply code %v", clients, streams, len(held), replies)
	if len(held) != streams || replies[0x01] != clients-streams {
		t.Errorf("%d connected and replies %v; want %d connected and %d refused with 0x01", len(held), replies, streams, clients-streams)
	}
	for _, c := range held {
		c.Close()
	}
	eventually(t, 10*time.Second, "every stream free", func() bool { return d.Snapshot().Mux.StreamsOpen == 0 })
	c, err := socksConnect(ctxFor(t, 10*time.Second), proxy, "127.0.0.1", srv.Port)
	if err != nil {
		t.Fatalf("CONNECT once the streams are free: %v", err)
	}
	c.Close()
}
