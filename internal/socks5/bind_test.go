package socks5_test

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/socks5"
)

// deviceListen is the "device" for BIND: a real listener on 127.0.0.1,
// recording the address it was asked for.
func deviceListen(asked *[]string, mu *sync.Mutex) func(ctx context.Context, network, address string) (net.Listener, error) {
	return func(ctx context.Context, network, address string) (net.Listener, error) {
		mu.Lock()
		*asked = append(*asked, network+" "+address)
		mu.Unlock()
		var lc net.ListenConfig
		return lc.Listen(ctx, network, "127.0.0.1:0")
	}
}

// TestBind runs BIND end to end: first reply with the device listener's
// address, a peer connects, second reply with the peer's address, data
// both ways with half-close.
func TestBind(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	srv, addr := startServer(t, socks5.Config{Dial: dial, Listen: deviceListen(&asked, &mu)})
	c := dialClient(t, addr)
	c.greet()
	c.request(2, "ftp-peer.example", 20) // only a hint
	first := c.reply()
	if first.Response != 0 || first.BndAddr.Port == 0 {
		t.Fatalf("first reply %+v", first)
	}
	// The client may send early; the bytes wait for the peer.
	c.send("early ")

	peer, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(first.BndAddr.Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	peer.SetDeadline(time.Now().Add(20 * time.Second))
	second := c.reply()
	if second.Response != 0 || second.BndAddr.String() != peer.LocalAddr().String() {
		t.Fatalf("second reply %+v, want the peer's address %s", second, peer.LocalAddr())
	}
	c.send("from client")
	c.Conn.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(peer)
	if err != nil || string(got) != "early from client" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	io.WriteString(peer, "from peer")
	peer.Close()
	if got := c.expectEOF(); string(got) != "from peer" {
		t.Fatalf("client read %q", got)
	}
	idle(t, srv)
	mu.Lock()
	if len(asked) != 1 || asked[0] != "tcp :0" {
		t.Fatalf("Listen calls %q, want [tcp :0]", asked)
	}
	mu.Unlock()
	// The listener was closed after the first connection.
	if c2, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(first.BndAddr.Port))); err == nil {
		c2.Close()
		t.Fatal("the BIND listener still accepts")
	}
	if st := srv.Stats(); st.Requests[socks5.CmdBind][socks5.ResultSucceeded] != 1 {
		t.Fatalf("Requests = %v", st.Requests)
	}
}

// TestBindFailures: no peer within BindTimeout gives a second reply 0x06,
// a client hanging up stops the wait, a nil Listen refuses BIND.
func TestBindFailures(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		var mu sync.Mutex
		var asked []string
		srv, addr := startServer(t, socks5.Config{Listen: deviceListen(&asked, &mu), BindTimeout: 200 * time.Millisecond})
		c := dialClient(t, addr)
		c.greet()
		c.request(2, "0.0.0.0", 0)
		if rep := c.reply(); rep.Response != 0 {
			t.Fatalf("first reply %d", rep.Response)
		}
		if rep := c.reply(); rep.Response != 6 {
			t.Fatalf("second reply %d, want 6", rep.Response)
		}
		c.expectEOF()
		idle(t, srv)
		if st := srv.Stats(); st.Requests[socks5.CmdBind][socks5.ResultTTLExpired] != 1 {
			t.Fatalf("Requests = %v", st.Requests)
		}
	})
	t.Run("client leaves", func(t *testing.T) {
		var mu sync.Mutex
		var asked []string
		srv, addr := startServer(t, socks5.Config{Listen: deviceListen(&asked, &mu)}) // BindTimeout 60 s
		c := dialClient(t, addr)
		c.greet()
		c.request(2, "0.0.0.0", 0)
		first := c.reply()
		c.Close()
		idle(t, srv) // long before BindTimeout
		if c2, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(first.BndAddr.Port))); err == nil {
			c2.Close()
			t.Fatal("the BIND listener outlived its client")
		}
		if st := srv.Stats(); st.Requests[socks5.CmdBind][socks5.ResultGeneralFailure] != 1 {
			t.Fatalf("Requests = %v", st.Requests)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		srv, addr := startServer(t, socks5.Config{Dial: dial})
		c := dialClient(t, addr)
		c.greet()
		c.request(2, "0.0.0.0", 0)
		if rep := c.reply(); rep.Response != 7 {
			t.Fatalf("reply %d, want 7", rep.Response)
		}
		c.expectEOF()
		idle(t, srv)
	})
}
