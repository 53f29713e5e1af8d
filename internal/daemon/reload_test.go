package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/config"
	"github.com/uartproxy/uartproxy/internal/daemon"
)

// TestReloadWhileBusy reloads over and over (a forward coming and going,
// the DNS forwarder's TTL, the metrics address, the client limit) while
// clients echo through a forward that stays and through SOCKS5, and
// /metrics and Snapshot are read: every echo is exact, and the race
// detector watches the rest.
func TestReloadWhileBusy(t *testing.T) {
	t.Parallel()
	srv := tcpServer(t, echo)
	extra := tcpServer(t, echo)
	dnsPort := freePort(t)

	var mu sync.Mutex
	cfg := emulated()
	cfg.DNS.Listen = "127.0.0.1:" + strconv.Itoa(dnsPort)
	cfg.Forwards = []string{fwd(srv, false)}
	load := func() (config.Config, *config.Credentials, error) {
		mu.Lock()
		defer mu.Unlock()
		c := cfg
		c.Forwards = append([]string(nil), cfg.Forwards...)
		return c, nil, nil
	}
	initial, _, _ := load()
	d := start(t, daemon.Options{Config: initial, Load: load})
	a := d.Addrs()
	stay := a.Forwards[initial.Forwards[0]].String()
	proxy := a.SOCKS5.String()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	var echoes [2]int
	for i, dial := range []func() (net.Conn, error){
		func() (net.Conn, error) { return net.DialTimeout("tcp", stay, 5*time.Second) },
		func() (net.Conn, error) {
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer ccancel()
			return socksConnect(cctx, proxy, "127.0.0.1", srv.Port)
		},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				c, err := dial()
				if err != nil {
					report(err)
					return
				}
				msg := []byte("echo " + strconv.Itoa(n))
				c.Write(msg)
				c.(*net.TCPConn).CloseWrite()
				got, err := readAll(c, 10*time.Second)
				c.Close()
				if err != nil || !bytes.Equal(got, msg) {
					report(errors.Join(errors.New("echo "+string(got)), err))
					return
				}
				echoes[i]++
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			d.Snapshot()
			if m := d.Addrs().Metrics; m != nil {
				c := &httpClient
				if resp, err := c.Get("http://" + m.String() + "/metrics"); err == nil {
					resp.Body.Close()
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	extraSpec := fwd(extra, false)
	for i := range 20 {
		mu.Lock()
		if i%2 == 0 {
			cfg.Forwards = append(cfg.Forwards, extraSpec)
		} else {
			cfg.Forwards = cfg.Forwards[:1]
		}
		cfg.DNS.TTL = config.Duration(time.Duration(30+i) * time.Second)
		cfg.Limits.MaxClients = 100 + i
		cfg.Metrics.Listen = []string{"127.0.0.1:0", "localhost:0"}[i%2]
		mu.Unlock()
		if err := d.Reload(); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		a := d.Addrs()
		if a.DNS == nil || portOf(a.DNS) != dnsPort {
			t.Fatalf("reload %d: DNS on %v, want port %d", i, a.DNS, dnsPort)
		}
		if i%2 == 0 {
			if got := echoVia(t, a.Forwards[extraSpec].String()); got != "ping" {
				t.Fatalf("reload %d: added forward echoed %q", i, got)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("echoes during 20 reloads: %d through the forward, %d through SOCKS5", echoes[0], echoes[1])
	if echoes[0] == 0 || echoes[1] == 0 {
		t.Fatalf("no echo during the reloads: %v", echoes)
	}
	if out := dig(t, "@127.0.0.1", "-p", strconv.Itoa(dnsPort), "+short", "localhost", "A"); strings.TrimSpace(out) != "127.0.0.1" {
		t.Fatalf("DNS after the reloads: %q", out)
	}
}

// TestStartAddressInUse starts a daemon whose SOCKS5 port is taken: Start
// fails naming the address, and stops what it had started (TestMain's
// goleak checks that).
func TestStartAddressInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := tcpServer(t, echo)
	for _, tc := range []struct {
		name string
		set  func(*config.Config)
	}{
		{"socks5", func(c *config.Config) { c.SOCKS5.Listen = ln.Addr().String() }},
		{"forward", func(c *config.Config) {
			c.Forwards = []string{fwd(srv, false), ln.Addr().String() + ":127.0.0.1:" + strconv.Itoa(srv.Port)}
		}},
		{"metrics", func(c *config.Config) { c.Metrics.Listen = ln.Addr().String() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := emulated()
			tc.set(&cfg)
			d, err := daemon.New(daemon.Options{Config: cfg, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			err = d.Start()
			if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), ln.Addr().String()) {
				t.Fatalf("Start: %v, want address in use naming %s", err, ln.Addr())
			}
			t.Logf("Start: %v", err)
			if err := d.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}
