package seedv3

import (
	"context"
	"errors"
	"io"
	"net"
	"reflect"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/frame"
)

func TestCallPing(t *testing.T) {
	c, w := fakePair(t, Config{})
	go func() {
		for f := range w.frames {
			if f.h.Type != frame.V3Req {
				continue
			}
			w.send(frame.V3Ack, f.h.Seq, nil)
			req, err := Decode(f.payload)
			m, _ := req.(map[string]any)
			if err != nil || m["op"] != "ping" || !reflect.DeepEqual(m["args"], map[string]any{}) {
				t.Errorf("REQ %#v, %v; want {op: ping, args: {}}", req, err)
			}
			w.send(frame.V3Resp, f.h.Seq, okResp(t, map[string]any{"pong": true, "t_ms": 4242, "echo": ""}))
		}
	}()
	up, err := c.Ping(ctxT(t, 5*time.Second))
	if err != nil || up != 4242 {
		t.Fatalf("Ping = %d, %v; want 4242", up, err)
	}
	s := c.Stats()
	if s.Requests != 1 || s.Responses != 1 || s.AcksReceived != 1 || s.Resends != 0 {
		t.Errorf("Stats = %+v", s)
	}
	eventually(t, "ACK sent", func() bool { return c.Stats().AcksSent == 1 })
}

func TestSeqWrapSkipsZero(t *testing.T) {
	c, w := fakePair(t, Config{FirstSeq: 0xFFFE})
	seqs := make(chan uint16, 8)
	go func() {
		for f := range w.frames {
			if f.h.Type == frame.V3Req {
				seqs <- f.h.Seq
				w.send(frame.V3Resp, f.h.Seq, okResp(t, true))
			}
		}
	}()
	ctx := ctxT(t, 5*time.Second)
	for range 4 {
		if _, err := c.Call(ctx, OpSockReset, nil); err != nil {
			t.Fatal(err)
		}
	}
	var got []uint16
	for range 4 {
		got = append(got, <-seqs)
	}
	if want := []uint16{0xFFFE, 0xFFFF, 1, 2}; !reflect.DeepEqual(got, want) {
		t.Fatalf("seqs %x, want %x", got, want)
	}
}

func TestRandomFirstSeq(t *testing.T) {
	c, w := fakePair(t, Config{})
	go func() {
		for f := range w.frames {
			if f.h.Type == frame.V3Req {
				if f.h.Seq == 0 {
					t.Errorf("seq 0 used")
				}
				w.send(frame.V3Resp, f.h.Seq, okResp(t, true))
			}
		}
	}()
	if _, err := c.Call(ctxT(t, 5*time.Second), OpSockReset, nil); err != nil {
		t.Fatal(err)
	}
}

func TestResendUntilResp(t *testing.T) {
	for _, ignore := range []int{1, 3} {
		t.Run("ignore="+itoa(ignore), func(t *testing.T) {
			c, w := fakePair(t, Config{})
			var mu sync.Mutex
			var at []time.Time
			go func() {
				for f := range w.frames {
					if f.h.Type != frame.V3Req {
						continue
					}
					mu.Lock()
					at = append(at, time.Now())
					n := len(at)
					mu.Unlock()
					if n <= ignore {
						continue // the device never heard it
					}
					w.send(frame.V3Ack, f.h.Seq, nil)
					w.send(frame.V3Resp, f.h.Seq, okResp(t, true))
				}
			}()
			if _, err := c.Call(ctxT(t, 5*time.Second), OpSockReset, nil); err != nil {
				t.Fatal(err)
			}
			if s := c.Stats(); s.Resends != uint64(ignore) || s.Requests != 1 {
				t.Fatalf("Requests %d, Resends %d; want 1, %d", s.Requests, s.Resends, ignore)
			}
			mu.Lock()
			defer mu.Unlock()
			for i := 1; i < len(at); i++ {
				// Not a speed figure: resending sooner than the period
				// would break the v3 rule.
				if gap := at[i].Sub(at[i-1]); gap < DefaultResend-20*time.Millisecond {
					t.Errorf("copy %d came %v after the previous; the period is %v", i, gap, DefaultResend)
				}
			}
		})
	}
}

func TestDuplicateRespAckedAndIgnored(t *testing.T) {
	c, w := fakePair(t, Config{})
	acks := make(chan uint16, 16)
	go func() {
		for f := range w.frames {
			switch f.h.Type {
			case frame.V3Ack:
				acks <- f.h.Seq
			case frame.V3Req:
				m, _ := Decode(f.payload)
				op := m.(map[string]any)["op"].(string)
				// Each RESP twice, as a device answering a resent REQ
				// from its cache would.
				w.send(frame.V3Resp, f.h.Seq, okResp(t, op))
				w.send(frame.V3Resp, f.h.Seq, okResp(t, op))
			}
		}
	}()
	ctx := ctxT(t, 5*time.Second)
	for _, op := range []string{"first", "second"} {
		r, err := c.Call(ctx, op, nil)
		if err != nil || r != op {
			t.Fatalf("Call(%s) = %v, %v", op, r, err)
		}
	}
	// Every RESP is ACKed, the duplicates too: 2 per call.
	counts := map[uint16]int{}
	for range 4 {
		select {
		case s := <-acks:
			counts[s]++
		case <-time.After(5 * time.Second):
			t.Fatalf("ACKs so far %v, want 2 per seq", counts)
		}
	}
	for s, n := range counts {
		if n != 2 {
			t.Errorf("seq %d ACKed %d times, want 2", s, n)
		}
	}
	eventually(t, "duplicates counted", func() bool { return c.Stats().DupResponses == 2 })
	if s := c.Stats(); s.Responses != 2 || s.AcksSent != 4 {
		t.Errorf("Stats %+v", s)
	}
}

func TestRemoteErrorResp(t *testing.T) {
	c, w := fakePair(t, Config{})
	go func() {
		for f := range w.frames {
			if f.h.Type == frame.V3Req {
				b, _ := Append(nil, map[string]any{"ok": false, "error": CodeSockConnect, "detail": "[Errno 111] ECONNREFUSED"})
				w.send(frame.V3Resp, f.h.Seq, b)
			}
		}
	}()
	_, err := c.Call(ctxT(t, 5*time.Second), OpSockConnect, map[string]any{"sid": 1, "host": "x", "port": 1})
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != CodeSockConnect || re.Op != OpSockConnect {
		t.Fatalf("err %v, want a *RemoteError sock_connect_error", err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("%v does not match ECONNREFUSED", err)
	}
}

func TestDeadlineIsDown(t *testing.T) {
	c, w := fakePair(t, Config{Deadline: 400 * time.Millisecond, Resend: 50 * time.Millisecond})
	go func() {
		for range w.frames { // a device that never answers
		}
	}()
	_, err := c.Call(ctxT(t, 5*time.Second), OpPing, nil)
	var de *DownError
	if !errors.As(err, &de) || !errors.Is(err, syscall.ENETDOWN) {
		t.Fatalf("err %v, want a *DownError matching ENETDOWN", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || ne.Timeout() {
		t.Errorf("a DownError is a net.Error that is not a timeout")
	}
	if s := c.Stats(); s.Timeouts != 1 || s.Resends == 0 {
		t.Errorf("Stats %+v, want 1 timeout and resends", s)
	}
	// The op's own timeout_ms extends the deadline.
	start := time.Now()
	_, err = c.Call(ctxT(t, 5*time.Second), OpSockRecv, map[string]any{"sid": 1, "timeout_ms": 300})
	if !errors.Is(err, syscall.ENETDOWN) || time.Since(start) < 700*time.Millisecond-20*time.Millisecond {
		t.Errorf("recv with timeout_ms 300: %v after %v; want ENETDOWN after 700 ms", err, time.Since(start))
	}
}

func TestCallCanceled(t *testing.T) {
	c, w := fakePair(t, Config{})
	release := make(chan struct{})
	go func() {
		for f := range w.frames {
			if f.h.Type == frame.V3Req {
				m, _ := Decode(f.payload)
				if m.(map[string]any)["op"] == "slow" {
					<-release
				}
				w.send(frame.V3Resp, f.h.Seq, okResp(t, true))
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Call(ctx, "slow", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want DeadlineExceeded", err)
	}
	close(release)
	// The late RESP is ACKed and ignored; the next call works.
	if _, err := c.Call(ctxT(t, 5*time.Second), OpPing, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "late RESP counted", func() bool { return c.Stats().DupResponses >= 1 })
	if s := c.Stats(); s.Canceled != 1 {
		t.Errorf("Canceled %d, want 1", s.Canceled)
	}
}

func TestClientPortLost(t *testing.T) {
	c, w := fakePair(t, Config{})
	w.port.Close()
	c.rw.Close() // the serial port goes away under the client
	_, err := c.Call(ctxT(t, 5*time.Second), OpPing, nil)
	if !errors.Is(err, syscall.ENETDOWN) && !errors.Is(err, net.ErrClosed) {
		t.Fatalf("err %v, want ENETDOWN", err)
	}
	c.Close()
	if _, err := c.Call(ctxT(t, time.Second), OpPing, nil); !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.ENETDOWN) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestCallTooLarge(t *testing.T) {
	c, _ := fakePair(t, Config{MaxFrame: 1024})
	_, err := c.Call(ctxT(t, time.Second), OpSockSend, map[string]any{"sid": 1, "data": make([]byte, 2000)})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v, want ErrTooLarge", err)
	}
}

// The device's cache answers a resent REQ: a sock_send whose RESP is lost
// runs once, and its bytes reach the peer once.
func TestCacheAnswersResentReq(t *testing.T) {
	got := make(chan []byte, 1)
	addr := tcpServer(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		got <- b
	})
	var mu sync.Mutex
	drop := 0 // RESPs to drop
	host, device := newRelay(t, func(f []byte) []byte {
		mu.Lock()
		defer mu.Unlock()
		if drop > 0 && isType(f, frame.V3Resp) {
			drop--
			return nil
		}
		return f
	})
	dev, err := NewDevice(device, DeviceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	c := NewClient(host, Config{})
	defer c.Close()
	ctx := ctxT(t, 10*time.Second)

	r, err := c.Call(ctx, OpSockOpen, map[string]any{"type": 1})
	if err != nil {
		t.Fatal(err)
	}
	sid := r.(map[string]any)["sid"]
	if _, err := c.Call(ctx, OpSockConnect, map[string]any{"sid": sid, "host": "127.0.0.1", "port": addr.Port}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	drop = 2 // the first RESP and the first cached copy
	mu.Unlock()
	r, err = c.Call(ctx, OpSockSend, map[string]any{"sid": sid, "data": []byte("exactly once")})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := asInt(r.(map[string]any)["n"]); n != 12 {
		t.Fatalf("sock_send n = %v", r)
	}
	if _, err := c.Call(ctx, OpSockClose, map[string]any{"sid": sid}); err != nil {
		t.Fatal(err)
	}
	if b := <-got; string(b) != "exactly once" {
		t.Fatalf("peer got %q, want %q", b, "exactly once")
	}
	ds, cs := dev.Stats(), c.Stats()
	if ds.Executed[OpSockSend] != 1 || ds.CacheHits < 2 {
		t.Errorf("device: %d sock_send runs, %d cache hits; want 1 and >= 2", ds.Executed[OpSockSend], ds.CacheHits)
	}
	if cs.Resends < 2 {
		t.Errorf("client resent %d times, want >= 2", cs.Resends)
	}
}

// A RESP with a bad CRC is dropped and recovered by the resend.
func TestCorruptRespRecovered(t *testing.T) {
	var mu sync.Mutex
	corrupt := 1
	host, device := newRelay(t, func(f []byte) []byte {
		mu.Lock()
		defer mu.Unlock()
		if corrupt > 0 && isType(f, frame.V3Resp) {
			corrupt--
			f[len(f)-1] ^= 0x55
		}
		return f
	})
	dev, err := NewDevice(device, DeviceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	c := NewClient(host, Config{})
	defer c.Close()
	up, err := c.Ping(ctxT(t, 5*time.Second))
	if err != nil || up < 0 {
		t.Fatalf("Ping = %d, %v", up, err)
	}
	s := c.Stats()
	if s.BadFrames["crc"] != 1 || s.Resends < 1 {
		t.Fatalf("BadFrames %v, Resends %d; want crc 1 and a resend", s.BadFrames, s.Resends)
	}
	if dev.Stats().Executed[OpPing] != 1 {
		t.Errorf("ping ran %d times, want 1", dev.Stats().Executed[OpPing])
	}
}

func TestRemoteErrorIs(t *testing.T) {
	tests := []struct {
		op, code, detail string
		want             syscall.Errno
		timeout          bool
	}{
		{OpSockConnect, CodeSockConnect, "[Errno 111] ECONNREFUSED", syscall.ECONNREFUSED, false},
		{OpSockConnect, CodeSockConnect, "[Errno 113] ECONNABORTED", syscall.ECONNREFUSED, false},
		{OpSockConnect, CodeSockConnect, "[Errno 104] ECONNRESET", syscall.ECONNREFUSED, false},
		{OpSockConnect, CodeSockConnect, "[Errno 116] ETIMEDOUT", syscall.ETIMEDOUT, true},
		{OpSockConnect, CodeSockConnect, "111", 0, false},
		{OpSockConnect, CodeSockConnect, "[Errno 110]", syscall.ETIMEDOUT, true},
		{OpSockConnect, CodeSockConnect, "connection refused", syscall.ECONNREFUSED, false},
		{OpSockRecv, CodeSockRecv, "[Errno 104] ECONNRESET", syscall.ECONNRESET, false},
		{OpSockRecv, CodeInvalidSID, "3", syscall.ECONNRESET, false},
		{OpSockConnect, CodeSockConnect, "[Errno 113] EHOSTUNREACH", syscall.EHOSTUNREACH, false},
		{OpSockBind, CodeSockBind, "[Errno 98] EADDRINUSE", syscall.EADDRINUSE, false},
		{OpDNS, CodeDNS, "-202", 0, false},
	}
	for _, tt := range tests {
		err := error(&RemoteError{Op: tt.op, Code: tt.code, Detail: tt.detail})
		if got := err.(*RemoteError).Errno(); got != tt.want {
			t.Errorf("%s %s %q: Errno %v, want %v", tt.op, tt.code, tt.detail, got, tt.want)
		}
		if tt.want != 0 && !errors.Is(err, tt.want) {
			t.Errorf("%v does not match %v", err, tt.want)
		}
		var ne net.Error
		if !errors.As(err, &ne) || ne.Timeout() != tt.timeout {
			t.Errorf("%v: Timeout() want %v", err, tt.timeout)
		}
	}
	if !errors.Is(&ResetError{Reason: "x"}, syscall.ECONNRESET) {
		t.Error("ResetError does not match ECONNRESET")
	}
	e := opErr("dial", "tcp", "nowhere.example:80", &RemoteError{Op: OpSockConnect, Code: CodeDNS, Detail: "-202"})
	var dnsErr *net.DNSError
	if !errors.As(e, &dnsErr) || !dnsErr.IsNotFound || dnsErr.Name != "nowhere.example" {
		t.Errorf("opErr(dns_error) = %v, want a *net.DNSError IsNotFound", e)
	}
}

func TestParseResponseRejects(t *testing.T) {
	for _, in := range [][]byte{
		{0x01},                       // not a map
		[]byte("\xa1\x61x\x01"),      // no ok
		[]byte("\xa1\x01\x02"),       // int keys
		[]byte("\xa1\x62ok\x9f\xff"), // bad cbor
	} {
		if _, err := parseResponse("op", in); !errors.Is(err, ErrBadResponse) {
			t.Errorf("parseResponse(%x) = %v, want ErrBadResponse", in, err)
		}
	}
}
