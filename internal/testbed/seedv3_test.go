package testbed_test

// The seed's "UART v3" stop-and-wait exchange (docs/protocol.md §3.5, §4.4
// and §14), driven over the same emulated line as our protocol so the two
// can be compared. Both ends are written here from the wire format; the
// device answers only sock_recv, with the "source" service's bytes, and
// answers at once (a MicroPython device spends time in its interpreter
// too, so the seed figure is an upper bound).

import (
	"errors"
	"fmt"
	"github.com/uartproxy/uartproxy/internal/meter"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/uartproxy/uartproxy/internal/frame"
	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/slip"
	"github.com/uartproxy/uartproxy/internal/uartemu"
)

// Seed client defaults (docs/protocol.md §14).
const (
	v3Resend   = 200 * time.Millisecond // REQ resend period
	v3Deadline = 8 * time.Second        // bridge_timeout
	v3RecvN    = 512                    // sock_recv's default n
	v3Cache    = 16                     // RESP frames the device keeps
)

// v3Request is a REQ payload: {"op": text, "args": {...}}.
type v3Request struct {
	Op   string         `cbor:"op"`
	Args map[string]any `cbor:"args"`
}

// v3RecvArgs are the args of sock_recv as the device reads them.
type v3RecvArgs struct {
	SID int `cbor:"sid"`
	N   int `cbor:"n"`
}

// v3Response is a RESP payload.
type v3Response struct {
	OK     bool            `cbor:"ok"`
	Result cbor.RawMessage `cbor:"result,omitempty"`
	Error  string          `cbor:"error,omitempty"`
}

// v3RecvResult is sock_recv's result.
type v3RecvResult struct {
	Data []byte `cbor:"data"`
	N    int    `cbor:"n"`
	EOF  bool   `cbor:"eof"`
}

// v3Frame is one parsed frame, its payload copied.
type v3Frame struct {
	h       frame.V3Header
	payload []byte
}

// appendV3Wire appends the SLIP encoding of one v3 frame to dst.
func appendV3Wire(dst []byte, t frame.V3Type, seq uint16, payload []byte) []byte {
	return slip.AppendEncode(dst, frame.AppendV3(nil, frame.V3Header{Type: t, Seq: seq}, payload))
}

// readV3 decodes frames from port until it fails, calling f for each valid
// one; invalid frames are dropped silently, as the seed does.
func readV3(port *uartemu.Port, f func(v3Frame)) error {
	dec := slip.NewDecoder(frame.V3MaxFrameLen)
	buf := make([]byte, 4096)
	for {
		n, err := port.Read(buf)
		dec.Feed(buf[:n], func(b []byte) {
			h, p, err := frame.ParseV3(b)
			if err != nil {
				return
			}
			f(v3Frame{h: h, payload: append([]byte(nil), p...)})
		}, nil)
		if err != nil {
			return err
		}
	}
}

// v3Device is a minimal seed device: it ACKs every REQ, serves sock_recv
// from the source pattern, keeps the last v3Cache RESP frames so a
// repeated REQ gets the same answer, and forgets a RESP when it is ACKed.
type v3Device struct {
	port  *uartemu.Port
	off   uint64
	cache map[uint16][]byte // seq → SLIP-encoded RESP
	order []uint16
	out   []byte
}

func (d *v3Device) serve() error {
	d.cache = make(map[uint16][]byte)
	return readV3(d.port, d.handle)
}

func (d *v3Device) handle(f v3Frame) {
	switch f.h.Type {
	case frame.V3Ack:
		delete(d.cache, f.h.Seq)
		return
	case frame.V3Resp:
		return // a device never asked anything
	}
	d.out = appendV3Wire(d.out[:0], frame.V3Ack, f.h.Seq, nil)
	resp, ok := d.cache[f.h.Seq]
	if !ok {
		resp = appendV3Wire(nil, frame.V3Resp, f.h.Seq, d.execute(f.payload))
		d.cache[f.h.Seq] = resp
		d.order = append(d.order, f.h.Seq)
		if len(d.order) > v3Cache {
			delete(d.cache, d.order[0])
			d.order = d.order[1:]
		}
	}
	d.out = append(d.out, resp...)
	d.port.Write(d.out)
}

func (d *v3Device) execute(payload []byte) []byte {
	var req struct {
		Op   string          `cbor:"op"`
		Args cbor.RawMessage `cbor:"args"`
	}
	fail := func(code string) []byte {
		b, _ := cbor.Marshal(v3Response{OK: false, Error: code})
		return b
	}
	if cbor.Unmarshal(payload, &req) != nil {
		return fail("exception")
	}
	if req.Op != "sock_recv" {
		return fail("unknown_op")
	}
	args := v3RecvArgs{N: v3RecvN}
	if len(req.Args) > 0 && cbor.Unmarshal(req.Args, &args) != nil {
		return fail("invalid_parameter")
	}
	if args.SID == 0 {
		return fail("missing_sid")
	}
	data := make([]byte, max(args.N, 0))
	for i := range data {
		data[i] = message.SourceByte(d.off + uint64(i))
	}
	d.off += uint64(len(data))
	result, _ := cbor.Marshal(v3RecvResult{Data: data, N: len(data)})
	b, _ := cbor.Marshal(v3Response{OK: true, Result: result})
	return b
}

// v3Client is the seed's host side: one REQ in flight, resent every
// resend period until its RESP comes, each RESP ACKed before the next REQ.
type v3Client struct {
	port    *uartemu.Port
	frames  chan v3Frame
	done    chan struct{} // closed to stop read
	resend  time.Duration
	seq     uint16
	resends int
	off     uint64 // source bytes received and checked
	out     []byte
}

func newV3Client(port *uartemu.Port, resend time.Duration) *v3Client {
	return &v3Client{port: port, frames: make(chan v3Frame, 64), done: make(chan struct{}), resend: resend}
}

// read feeds c.frames until port fails.
func (c *v3Client) read() error {
	defer close(c.frames)
	return readV3(c.port, func(f v3Frame) {
		select {
		case c.frames <- f:
		case <-c.done:
		}
	})
}

// recv runs one sock_recv exchange and returns the data bytes received.
func (c *v3Client) recv() (int, error) {
	c.seq++
	if c.seq == 0 {
		c.seq = 1 // the seed never uses seq 0
	}
	payload, err := cbor.Marshal(v3Request{Op: "sock_recv", Args: map[string]any{"sid": 1, "n": v3RecvN}})
	if err != nil {
		return 0, err
	}
	req := appendV3Wire(nil, frame.V3Req, c.seq, payload)
	if _, err := c.port.Write(req); err != nil {
		return 0, err
	}
	deadline := time.NewTimer(v3Deadline)
	defer deadline.Stop()
	tick := time.NewTicker(c.resend)
	defer tick.Stop()
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				return 0, errors.New("seed v3: port closed")
			}
			if f.h.Type != frame.V3Resp || f.h.Seq != c.seq {
				continue // the device's ACK of our REQ, or a stale RESP
			}
			c.out = appendV3Wire(c.out[:0], frame.V3Ack, f.h.Seq, nil)
			if _, err := c.port.Write(c.out); err != nil {
				return 0, err
			}
			return c.check(f.payload)
		case <-tick.C:
			c.resends++
			if _, err := c.port.Write(req); err != nil {
				return 0, err
			}
		case <-deadline.C:
			return 0, fmt.Errorf("seed v3: bridge_timeout on seq %d", c.seq)
		}
	}
}

// check decodes a sock_recv RESP and checks its data against the source
// pattern.
func (c *v3Client) check(payload []byte) (int, error) {
	var resp v3Response
	if err := cbor.Unmarshal(payload, &resp); err != nil {
		return 0, fmt.Errorf("seed v3: RESP %d: %w", c.seq, err)
	}
	if !resp.OK {
		return 0, fmt.Errorf("seed v3: RESP %d: error %q", c.seq, resp.Error)
	}
	var r v3RecvResult
	if err := cbor.Unmarshal(resp.Result, &r); err != nil {
		return 0, fmt.Errorf("seed v3: RESP %d result: %w", c.seq, err)
	}
	if r.N != len(r.Data) {
		return 0, fmt.Errorf("seed v3: RESP %d: n %d for %d bytes", c.seq, r.N, len(r.Data))
	}
	for i, v := range r.Data {
		if v != message.SourceByte(c.off+uint64(i)) {
			return 0, fmt.Errorf("seed v3: %w at offset %d", errPattern, c.off+uint64(i))
		}
	}
	c.off += uint64(len(r.Data))
	return len(r.Data), nil
}

// v3Pair is a seed client and device on the two ends of an emulated line.
type v3Pair struct {
	client *v3Client
	wg     sync.WaitGroup
	hp, dp *uartemu.Port
}

func startV3(line uartemu.Line, resend time.Duration) *v3Pair {
	hp, dp := uartemu.New(uartemu.Symmetric(line))
	p := &v3Pair{client: newV3Client(hp, resend), hp: hp, dp: dp}
	dev := &v3Device{port: dp}
	p.wg.Go(func() { dev.serve() })
	p.wg.Go(func() { p.client.read() })
	return p
}

func (p *v3Pair) close() {
	close(p.client.done)
	p.hp.Close()
	p.dp.Close()
	p.wg.Wait()
}

// measureSeed runs the seed exchange at baud on a clean line with RTS/CTS
// for the benchmarks' plan and returns its goodput as a ratio of the line
// rate, and how many REQs were resent.
func measureSeed(b *testing.B, baud int) (ratio float64, resends int) {
	warmup, dur := plan(baud)
	p := startV3(uartemu.Line{Baud: baud, FlowControl: true}, v3Resend)
	defer p.close()
	var m meter.Meter
	start := time.Now()
	end := start.Add(warmup + dur)
	for time.Now().Before(end) {
		n, err := p.client.recv()
		if err != nil {
			b.Fatal(err)
		}
		m.Add(n)
	}
	from := start.Add(warmup)
	return steadyRate(&m, from, end) / (float64(baud) / 10), p.client.resends
}

// BenchmarkSeedV3 measures the seed's stop-and-wait sock_recv loop (512
// bytes per request) on a clean line with RTS/CTS.
func BenchmarkSeedV3(b *testing.B) {
	bauds(b, []int{921600, 1400000}, func(b *testing.B, baud int) {
		ratio, resends := measureSeed(b, baud)
		b.ReportMetric(ratio, "line-ratio")
		b.ReportMetric(float64(resends), "retx")
		b.ReportMetric(float64(resends), "timeouts")
	})
}

// TestSeedV3Exchange checks the in-test seed client and device against
// each other, on a clean line and on one whose errors force resends.
func TestSeedV3Exchange(t *testing.T) {
	for _, tc := range []struct {
		name string
		line uartemu.Line
		n    int
	}{
		{"clean", uartemu.Line{FlowControl: true}, 300},
		{"noisy", uartemu.Line{Baud: 3000000, FlowControl: true, BER: 5e-5, Seed: 3}, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startV3(tc.line, 20*time.Millisecond)
			defer p.close()
			total := 0
			for i := range tc.n {
				n, err := p.client.recv()
				if err != nil {
					t.Fatalf("exchange %d: %v", i, err)
				}
				total += n
			}
			if total != tc.n*v3RecvN {
				t.Fatalf("got %d bytes in %d exchanges, want %d", total, tc.n, tc.n*v3RecvN)
			}
			if tc.line.BER > 0 && p.client.resends == 0 {
				t.Errorf("no resends at BER %g: the noisy case tests nothing", tc.line.BER)
			}
			t.Logf("%d exchanges, %d resends, seq %d", tc.n, p.client.resends, p.client.seq)
		})
	}
}
