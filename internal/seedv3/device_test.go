package seedv3

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/frame"
	"github.com/uartproxy/uartproxy/internal/uartemu"
)

// rawDevice is a Device driven frame by frame from the host end.
type rawDevice struct {
	dev *Device
	w   *wire
	seq uint16
}

func newRawDevice(t *testing.T) *rawDevice {
	t.Helper()
	hp, dp := uartemu.New(uartemu.Symmetric(uartemu.Line{FlowControl: true}))
	dev, err := NewDevice(dp, DeviceConfig{BootTime: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w := newWire(hp)
	t.Cleanup(func() {
		dev.Close()
		hp.Close()
		dp.Close()
		w.wg.Wait()
	})
	return &rawDevice{dev: dev, w: w}
}

// req sends REQ(seq) and returns the RESP's payload, decoded; it checks
// that the device ACKs the REQ first.
func (r *rawDevice) req(t *testing.T, seq uint16, op string, args map[string]any) map[string]any {
	t.Helper()
	b, err := Append(nil, map[string]any{"op": op, "args": args})
	if err != nil {
		t.Fatal(err)
	}
	return r.reqRaw(t, seq, b)
}

func (r *rawDevice) reqRaw(t *testing.T, seq uint16, payload []byte) map[string]any {
	t.Helper()
	r.w.send(frame.V3Req, seq, payload)
	acked := false
	for {
		select {
		case f := <-r.w.frames:
			switch {
			case f.h.Type == frame.V3Ack && f.h.Seq == seq:
				acked = true
			case f.h.Type == frame.V3Resp && f.h.Seq == seq:
				if !acked {
					t.Errorf("RESP %d before its ACK", seq)
				}
				v, err := Decode(f.payload)
				if err != nil {
					t.Fatalf("RESP %d: %v", seq, err)
				}
				return v.(map[string]any)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no RESP to seq %d", seq)
		}
	}
}

func (r *rawDevice) ack(seq uint16) { r.w.send(frame.V3Ack, seq, nil) }

// call sends a REQ with the next seq and ACKs the RESP.
func (r *rawDevice) call(t *testing.T, op string, args map[string]any) map[string]any {
	t.Helper()
	r.seq = nextSeq(r.seq)
	m := r.req(t, r.seq, op, args)
	r.ack(r.seq)
	return m
}

func errCode(m map[string]any) string {
	if m["ok"] == true {
		return ""
	}
	s, _ := m["error"].(string)
	return s
}

func TestDeviceErrors(t *testing.T) {
	r := newRawDevice(t)
	tests := []struct {
		op   string
		args map[string]any
		code string
	}{
		{"no_such_op", nil, CodeUnknownOp},
		{OpSockSend, map[string]any{"data": []byte("x")}, CodeMissingSID},
		{OpSockSend, map[string]any{"sid": 7, "data": []byte("x")}, CodeInvalidSID},
		{OpSockSend, map[string]any{"sid": "seven"}, CodeInvalidParameter},
		{OpSockClose, map[string]any{"sid": 99}, CodeInvalidSID},
		{OpDNS, map[string]any{}, CodeMissingHost},
		{OpSockOpen, map[string]any{"type": 9}, CodeSockOpen},
		{OpSockRecv, map[string]any{"sid": 1, "n": -1}, CodeInvalidSID},
	}
	for _, tt := range tests {
		if got := errCode(r.call(t, tt.op, tt.args)); got != tt.code {
			t.Errorf("%s %v: error %q, want %q", tt.op, tt.args, got, tt.code)
		}
	}
	sid := r.call(t, OpSockOpen, map[string]any{"type": 2})["result"].(map[string]any)["sid"]
	if got := errCode(r.call(t, OpSockSend, map[string]any{"sid": sid})); got != CodeMissingData {
		t.Errorf("sock_send without data: %q", got)
	}
	if got := errCode(r.call(t, OpSockSend, map[string]any{"sid": sid, "data": []byte("x")})); got != CodeInvalidSIDType {
		t.Errorf("sock_send on a UDP socket: %q", got)
	}
	if got := errCode(r.call(t, OpSockSendTo, map[string]any{"sid": sid, "data": []byte("x")})); got != CodeMissingHostOrPort {
		t.Errorf("sock_sendto without host: %q", got)
	}
	m := r.call(t, OpPing, map[string]any{"echo": "hi"})
	res := m["result"].(map[string]any)
	if res["pong"] != true || res["echo"] != "hi" {
		t.Errorf("ping = %v", m)
	}
	// A payload that is not CBOR, or not a request map.
	for i, p := range [][]byte{{0xff}, {0x01}, []byte("\xa1\x62op\x01")} {
		r.seq = nextSeq(r.seq)
		m := r.reqRaw(t, r.seq, p)
		if code := errCode(m); code != CodeException && code != CodeUnknownOp {
			t.Errorf("payload %d: %v", i, m)
		}
	}
}

func TestDeviceSIDs(t *testing.T) {
	r := newRawDevice(t)
	open := func() (int64, string) {
		m := r.call(t, OpSockOpen, nil)
		if code := errCode(m); code != "" {
			return 0, code
		}
		sid, _ := asInt(m["result"].(map[string]any)["sid"])
		return sid, ""
	}
	for want := int64(1); want <= maxSID; want++ {
		if sid, code := open(); sid != want {
			t.Fatalf("sock_open %d: sid %d %q", want, sid, code)
		}
	}
	if _, code := open(); code != CodeSockOpen {
		t.Fatalf("sock_open beyond 1024: %q, want %s", code, CodeSockOpen)
	}
	r.call(t, OpSockClose, map[string]any{"sid": 5})
	if sid, _ := open(); sid != 5 {
		t.Errorf("after closing 5, sock_open gave %d", sid)
	}
	r.call(t, OpSockReset, nil)
	if n := r.dev.Stats().Open; n != 0 {
		t.Errorf("%d sockets after sock_reset", n)
	}
	// Numbering goes on from the last sid, wrapping past 1024.
	if sid, _ := open(); sid != 6 {
		t.Errorf("after sock_reset, sid %d, want 6", sid)
	}
}

func TestDeviceCache(t *testing.T) {
	r := newRawDevice(t)
	// 17 REQs, none ACKed: the first falls out of the 16-entry cache.
	for seq := uint16(1); seq <= respCacheLen+1; seq++ {
		r.req(t, seq, OpPing, nil)
	}
	runs := func() uint64 { return r.dev.Stats().Executed[OpPing] }
	r.req(t, 2, OpPing, nil) // cached
	if runs() != respCacheLen+1 {
		t.Errorf("a repeated REQ ran again: %d runs", runs())
	}
	r.req(t, 1, OpPing, nil) // evicted: runs again
	if runs() != respCacheLen+2 {
		t.Errorf("an evicted seq was not run again: %d runs", runs())
	}
	// An ACK drops the cached RESP: the same seq runs again.
	r.ack(3)
	r.req(t, 30, OpPing, nil) // the ACK has been handled by now
	r.req(t, 3, OpPing, nil)
	if runs() != respCacheLen+4 {
		t.Errorf("a REQ after the ACK of its seq was answered from the cache: %d runs", runs())
	}
	if s := r.dev.Stats(); s.CacheHits != 1 {
		t.Errorf("CacheHits %d, want 1", s.CacheHits)
	}
	// The cached RESP is the same frame, not a new answer.
	a := r.req(t, 40, OpPing, nil)
	time.Sleep(5 * time.Millisecond)
	b := r.req(t, 40, OpPing, nil)
	if a["result"].(map[string]any)["t_ms"] != b["result"].(map[string]any)["t_ms"] {
		t.Errorf("cached RESP differs: %v, %v", a, b)
	}
}

func TestDeviceRebootSilent(t *testing.T) {
	r := newRawDevice(t)
	r.call(t, OpSockOpen, nil)
	r.req(t, 100, OpPing, nil) // cached, not ACKed
	if err := r.dev.Reboot(); err != nil {
		t.Fatal(err)
	}
	r.w.send(frame.V3Req, 101, mustAppend(t, map[string]any{"op": OpPing, "args": map[string]any{}}))
	select {
	case f := <-r.w.frames:
		t.Fatalf("a booting device sent %v", f.h)
	case <-time.After(30 * time.Millisecond):
	}
	time.Sleep(50 * time.Millisecond)
	// The cache is gone: seq 100 runs again; sockets are gone.
	r.req(t, 100, OpPing, nil)
	if s := r.dev.Stats(); s.Executed[OpPing] != 2 || s.Open != 0 || s.Reboots != 1 {
		t.Errorf("after reboot: %+v", s)
	}
	if up, _ := asInt(r.call(t, OpPing, nil)["result"].(map[string]any)["t_ms"]); up > 5000 {
		t.Errorf("uptime %d ms after a reboot", up)
	}
}

func mustAppend(t *testing.T, v any) []byte {
	t.Helper()
	b, err := Append(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Garbage on the line, and random REQ payloads, never stop the device.
func TestDeviceHostile(t *testing.T) {
	r := newRawDevice(t)
	rng := rand.New(rand.NewPCG(1, 2))
	junk := make([]byte, 20000)
	for i := range junk {
		junk[i] = byte(rng.UintN(256))
	}
	r.w.port.Write(junk)
	for i := range 200 {
		p := make([]byte, rng.IntN(64))
		for j := range p {
			p[j] = byte(rng.UintN(256))
		}
		if i%2 == 0 && len(p) > 0 {
			p[0] = 0xa2 // a map, to get further into the decoder
		}
		r.seq = nextSeq(r.seq)
		r.reqRaw(t, r.seq, p)
	}
	if m := r.call(t, OpPing, nil); m["ok"] != true {
		t.Fatalf("ping after hostile input: %v", m)
	}
	if !bytes.Contains(junk, []byte{0xc0}) || r.dev.Stats().BadFrames == 0 {
		t.Logf("BadFrames %d", r.dev.Stats().BadFrames)
	}
}
