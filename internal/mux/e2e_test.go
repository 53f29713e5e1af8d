package mux_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/testbed"
	"github.com/uartproxy/uartproxy/internal/uartemu"
)

func newBed(t testing.TB, o testbed.Options) *testbed.Bed {
	t.Helper()
	b, err := testbed.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// transports are the links every stream test runs over, like yamux runs
// its tests over several transports.
func transports() map[string]testbed.Options {
	lossy := uartemu.Line{Baud: 3000000, FlowControl: true, BER: 1e-5, DropRate: 1e-5, Seed: 7}
	return map[string]testbed.Options{
		"clean":   testbed.Clean(3000000),
		"lossy":   {Line: uartemu.Symmetric(lossy)},
		"unpaced": {Line: uartemu.Symmetric(uartemu.Line{FlowControl: true})},
	}
}

func TestEchoService(t *testing.T) {
	for name, o := range transports() {
		t.Run(name, func(t *testing.T) {
			b := newBed(t, o)
			st, err := b.Host.OpenService(ctxT(t, 5*time.Second), "echo")
			if err != nil {
				t.Fatal(err)
			}
			data := make([]byte, 200<<10)
			rand.Read(data)
			go func() {
				st.Write(data)
				st.CloseWrite()
			}()
			st.SetReadDeadline(time.Now().Add(20 * time.Second))
			got, err := io.ReadAll(st)
			if err != nil {
				t.Fatal(err)
			}
			if sha256.Sum256(got) != sha256.Sum256(data) {
				t.Fatalf("echo mismatch: %d bytes back of %d", len(got), len(data))
			}
			st.Close()
		})
	}
}

// tcpServer answers every connection with its own input, reversed in
// direction: it sends `reply` and records what it read.
func tcpServer(t testing.TB, reply []byte) (addr string, got chan []byte) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got = make(chan []byte, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				go func() {
					c.Write(reply)
					c.(*net.TCPConn).CloseWrite()
				}()
				b, _ := io.ReadAll(c)
				got <- b
			}()
		}
	}()
	return ln.Addr().String(), got
}

func TestDialBothWays(t *testing.T) {
	for name, o := range transports() {
		t.Run(name, func(t *testing.T) {
			b := newBed(t, o)
			up := make([]byte, 300<<10)
			down := make([]byte, 500<<10)
			rand.Read(up)
			rand.Read(down)
			addr, got := tcpServer(t, down)
			c, err := b.Host.Dial(ctxT(t, 5*time.Second), "tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			go func() {
				c.Write(up)
				c.(interface{ CloseWrite() error }).CloseWrite()
			}()
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			rx, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rx, down) {
				t.Fatalf("download: got %d bytes, want %d (equal prefix %v)", len(rx), len(down), bytes.HasPrefix(down, rx))
			}
			select {
			case srv := <-got:
				if !bytes.Equal(srv, up) {
					t.Fatalf("upload: server got %d bytes, want %d", len(srv), len(up))
				}
			case <-time.After(30 * time.Second):
				t.Fatal("server never saw EOF")
			}
		})
	}
}
