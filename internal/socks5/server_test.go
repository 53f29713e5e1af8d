package socks5_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/uartproxy/uartproxy/internal/socks5"
)

// semConn holds one of the "device's" stream slots until it is closed.
type semConn struct {
	*net.TCPConn
	release func()
}

func (c *semConn) Close() error {
	c.release()
	return c.TCPConn.Close()
}

// TestManyClients: 500 clients at once against a device that has 16
// streams; a Dial waits for a free one until ConnectTimeout. Every client
// gets its data echoed or a clear failure reply, nobody hangs, the
// counters add up and the goroutines go away.
func TestManyClients(t *testing.T) {
	const clients = 500
	const streams = 16
	baseline := goleak.IgnoreCurrent()
	var ok, failed atomic.Int64
	var maxInUse atomic.Int64
	t.Run("load", func(t *testing.T) {
		echoAddr := tcpServer(t, echo)
		sem := make(chan struct{}, streams)
		var inUse atomic.Int64
		limited := func(ctx context.Context, network, address string) (net.Conn, error) {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			n := inUse.Add(1)
			for m := maxInUse.Load(); n > m && !maxInUse.CompareAndSwap(m, n); m = maxInUse.Load() {
			}
			c, err := dial(ctx, network, address)
			if err != nil {
				inUse.Add(-1)
				<-sem
				return nil, err
			}
			return &semConn{TCPConn: c.(*net.TCPConn), release: sync.OnceFunc(func() { inUse.Add(-1); <-sem })}, nil
		}
		srv, addr := startServer(t, socks5.Config{Dial: limited, ConnectTimeout: time.Second})
		host, port := splitHostPort(t, echoAddr)
		deadline := time.Now().Add(60 * time.Second)
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for i := 0; i < clients; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := oneClient(addr, host, port, deadline, &ok, &failed); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		idle(t, srv)
		st := srv.Stats()
		var requests uint64
		for _, n := range st.Requests[socks5.CmdConnect] {
			requests += n
		}
		t.Logf("%d echoed, %d refused with a reply; at most %d streams in use; requests %v", ok.Load(), failed.Load(), maxInUse.Load(), st.Requests)
		if ok.Load()+failed.Load() != clients || requests != clients || st.Accepted != clients {
			t.Fatalf("%d ok + %d failed, %d requests, %d accepted; want %d each", ok.Load(), failed.Load(), requests, st.Accepted, clients)
		}
		if st.Requests[socks5.CmdConnect][socks5.ResultSucceeded] != uint64(ok.Load()) {
			t.Fatalf("succeeded %d, clients echoed %d", st.Requests[socks5.CmdConnect][socks5.ResultSucceeded], ok.Load())
		}
		if maxInUse.Load() > streams {
			t.Fatalf("%d streams in use", maxInUse.Load())
		}
	})
	goleak.VerifyNone(t, baseline)
}

// oneClient connects through the proxy, echoes 4 KiB and holds the
// connection a little; a failure reply counts as failed, anything else is
// an error.
func oneClient(proxyAddr, host string, port int, deadline time.Time, ok, failed *atomic.Int64) error {
	c, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(deadline)
	msg := append([]byte("\x05\x01\x00"), requestBytes(1, host, port)...)
	if _, err := c.Write(msg); err != nil {
		return err
	}
	head := make([]byte, 2+10)
	if _, err := io.ReadFull(c, head); err != nil {
		return err
	}
	if head[0] != 5 || head[1] != 0 || head[2] != 5 {
		return errors.New("bad reply")
	}
	if head[3] != 0 {
		failed.Add(1)
		return nil
	}
	data := make([]byte, 4096)
	rand.Read(data)
	if _, err := c.Write(data); err != nil {
		return err
	}
	got := make([]byte, len(data))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, data) {
		return errors.New("echo differs")
	}
	time.Sleep(40 * time.Millisecond) // hold the stream: later clients wait, some in vain
	ok.Add(1)
	return nil
}

// TestAdmit: over the limit, a connection is closed before anything is
// read and counted in Rejected; release is called once per admitted
// connection when it ends.
func TestAdmit(t *testing.T) {
	echoAddr := tcpServer(t, echo)
	var admitted, released atomic.Int64
	var inUse atomic.Int64
	srv, addr := startServer(t, socks5.Config{
		Dial: dial,
		Admit: func() (func(), bool) {
			if inUse.Add(1) > 1 {
				inUse.Add(-1)
				return nil, false
			}
			admitted.Add(1)
			return sync.OnceFunc(func() { released.Add(1); inUse.Add(-1) }), true
		},
	})
	first := dialClient(t, addr)
	first.connect(echoAddr)

	second := dialClient(t, addr)
	if got := second.expectEOF(); len(got) != 0 {
		t.Fatalf("a rejected client got %q", got)
	}
	st := srv.Stats()
	if st.Rejected != 1 || st.Accepted != 2 || st.Active != 1 {
		t.Fatalf("stats %+v", st)
	}

	first.Close()
	idle(t, srv)
	third := dialClient(t, addr)
	third.connect(echoAddr)
	third.send("ping")
	third.expect("ping")
	third.Close()
	idle(t, srv)
	if admitted.Load() != 2 || released.Load() != 2 {
		t.Fatalf("admitted %d, released %d", admitted.Load(), released.Load())
	}
}

// source sends n chunks with a pause between them (n < 0: forever).
func source(n int, pause time.Duration) func(net.Conn) {
	return func(c net.Conn) {
		chunk := bytes.Repeat([]byte("x"), 1024)
		for i := 0; n < 0 || i < n; i++ {
			if _, err := c.Write(chunk); err != nil {
				return
			}
			time.Sleep(pause)
		}
	}
}

// TestShutdown: Shutdown stops accepting and lets an active transfer
// finish; when its context ends first it cuts the transfer; Close cuts at
// once.
func TestShutdown(t *testing.T) {
	t.Run("drains", func(t *testing.T) {
		src := tcpServer(t, source(20, 25*time.Millisecond))
		srv, addr := startServer(t, socks5.Config{Dial: dial})
		c := dialClient(t, addr)
		c.connect(src)
		c.expect(string(bytes.Repeat([]byte("x"), 1024))) // the transfer is under way
		shut := make(chan error, 1)
		go func() { shut <- srv.Shutdown(ctxT(t, 20*time.Second)) }()
		waitFor(t, "the listener to close", func() bool {
			n, err := net.Dial("tcp", addr)
			if err == nil {
				n.Close()
			}
			return err != nil
		})
		rest := c.expectEOF()
		if len(rest) != 19*1024 {
			t.Fatalf("got %d more bytes, want %d", len(rest), 19*1024)
		}
		c.Close() // the client is done too; the relay is over
		if err := <-shut; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	})
	t.Run("runs out of time", func(t *testing.T) {
		src := tcpServer(t, source(-1, 10*time.Millisecond))
		srv, addr := startServer(t, socks5.Config{Dial: dial})
		c := dialClient(t, addr)
		c.connect(src)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown: %v", err)
		}
		c.expectEOF()
		if st := srv.Stats(); st.Active != 0 {
			t.Fatalf("%d connections after Shutdown", st.Active)
		}
	})
	t.Run("close", func(t *testing.T) {
		src := tcpServer(t, source(-1, 10*time.Millisecond))
		srv, addr := startServer(t, socks5.Config{Dial: dial})
		c := dialClient(t, addr)
		c.connect(src)
		handshaking := dialClient(t, addr) // says nothing
		handshaking.send("\x05")
		waitFor(t, "two connections", func() bool { return srv.Stats().Active == 2 })
		srv.Close()
		if st := srv.Stats(); st.Active != 0 {
			t.Fatalf("%d connections after Close", st.Active)
		}
		c.expectEOF()
		handshaking.expectEOF()
		if st := srv.Stats(); st.HandshakeErrors[socks5.ReasonClosed] != 1 {
			t.Fatalf("HandshakeErrors %v", st.HandshakeErrors)
		}
	})
}
