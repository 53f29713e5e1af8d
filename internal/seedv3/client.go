package seedv3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/uartproxy/uartproxy/internal/frame"
	"github.com/uartproxy/uartproxy/internal/slip"
)

// Client is the host side of the seed's stop-and-wait RPC over a serial
// port. It runs one call at a time, as the device does; concurrent Calls
// wait their turn in arrival order.
type Client struct {
	rw  io.ReadWriteCloser
	cfg Config
	log zerolog.Logger

	calls  chan *call   // Call → loop; the loop receives only when idle
	frames chan rxFrame // reader → loop
	out    chan []byte  // loop → writer, SLIP-encoded frames

	epoch  time.Time    // origin of lastRx and lastTx
	lastRx atomic.Int64 // ns since epoch of the last byte read
	lastTx atomic.Int64 // ns since epoch of the end of the last write
	txBusy atomic.Int32 // frames queued for or inside the writer

	done    chan struct{} // closed by fail
	errOnce sync.Once
	err     error // the first fatal error; read after done is closed
	wg      sync.WaitGroup

	statsMu sync.Mutex
	stats   Stats
}

// call is one Call waiting for its RESP.
type call struct {
	ctx     context.Context
	op      string
	payload []byte        // the REQ's CBOR
	extra   time.Duration // the op's own timeout_ms, added to the deadline
	res     chan callResult
}

type callResult struct {
	payload []byte
	err     error
}

type rxFrame struct {
	h       frame.V3Header
	payload []byte
}

// ErrClientClosed is returned by calls on a closed Client. It wraps
// net.ErrClosed.
var ErrClientClosed = fmt.Errorf("seedv3: client closed: %w", net.ErrClosed)

// NewClient starts a client on rw, a serial port (or one end of an
// emulated one), with its reader, writer and protocol loop goroutines.
// Close stops them and closes rw.
func NewClient(rw io.ReadWriteCloser, cfg Config) *Client {
	cfg = cfg.withDefaults()
	c := &Client{
		rw:     rw,
		cfg:    cfg,
		log:    cfg.Logger,
		calls:  make(chan *call),
		frames: make(chan rxFrame, 64),
		out:    make(chan []byte, 64),
		epoch:  time.Now(),
		done:   make(chan struct{}),
	}
	c.stats.BadFrames = map[string]uint64{}
	c.wg.Add(3)
	go c.read()
	go c.write()
	go c.loop()
	return c
}

// Close stops the client, fails the call in flight with ErrClientClosed and
// closes the port. It is idempotent.
func (c *Client) Close() error {
	c.fail(ErrClientClosed)
	c.wg.Wait()
	return nil
}

// fail records the first fatal error, stops everything and closes the port.
func (c *Client) fail(err error) {
	c.errOnce.Do(func() {
		c.err = err
		close(c.done)
		c.rw.Close()
	})
}

// Err returns the error that stopped the client, or nil while it runs.
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Stats returns a snapshot of the counters.
func (c *Client) Stats() Stats {
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	return c.stats.clone()
}

func (c *Client) count(f func(s *Stats)) {
	c.statsMu.Lock()
	f(&c.stats)
	c.statsMu.Unlock()
}

// MaxFrame returns the largest frame the client sends and accepts.
func (c *Client) MaxFrame() int { return c.cfg.MaxFrame }

// Call runs op on the device with args and returns the RESP's result.
//
// It sends REQ(seq) with {"op": op, "args": args}, sends it again every
// Resend until the RESP with the same seq arrives, and ACKs every RESP it
// receives. A RESP with ok false becomes a *RemoteError; no RESP within
// Deadline (plus args["timeout_ms"]) a *DownError, as does a failed port.
// When ctx ends first, Call returns ctx.Err() and the call is abandoned:
// the device may still run it, and its late RESP is ACKed and ignored.
//
// Values in args must be of the types Append accepts.
func (c *Client) Call(ctx context.Context, op string, args map[string]any) (any, error) {
	if args == nil {
		args = map[string]any{}
	}
	payload, err := Append(nil, map[string]any{"op": op, "args": args})
	if err != nil {
		return nil, fmt.Errorf("seedv3: %s: %w", op, err)
	}
	if frame.V3HeaderLen+len(payload) > c.cfg.MaxFrame {
		return nil, fmt.Errorf("seedv3: %s: %w (%d bytes)", op, ErrTooLarge, frame.V3HeaderLen+len(payload))
	}
	cl := &call{ctx: ctx, op: op, payload: payload, res: make(chan callResult, 1)}
	if ms, ok := asInt(args["timeout_ms"]); ok && ms > 0 {
		cl.extra = time.Duration(ms) * time.Millisecond
	}
	select {
	case c.calls <- cl:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, c.downErr(op)
	}
	r := <-cl.res
	if r.err != nil {
		return nil, r.err
	}
	result, err := parseResponse(op, r.payload)
	if err != nil {
		var re *RemoteError
		if errors.As(err, &re) {
			c.count(func(s *Stats) { s.RemoteErrors++ })
		} else {
			c.count(func(s *Stats) { s.BadFrames["bad_resp"]++ })
			c.log.Debug().Err(err).Str("op", op).Msg("seedv3: malformed RESP")
		}
	}
	return result, err
}

// Ping runs ping and returns the device's uptime in milliseconds.
func (c *Client) Ping(ctx context.Context) (uptimeMS int64, err error) {
	r, err := c.Call(ctx, OpPing, nil)
	if err != nil {
		return 0, err
	}
	m, _ := r.(map[string]any)
	t, ok := asInt(m["t_ms"])
	if !ok {
		return 0, fmt.Errorf("%w: ping: no t_ms in %v", ErrBadResponse, r)
	}
	return t, nil
}

// downErr is the error of a call on a client that stopped.
func (c *Client) downErr(op string) error {
	if errors.Is(c.err, ErrClientClosed) {
		return ErrClientClosed
	}
	return &DownError{Op: op, Reason: "serial port: " + c.err.Error()}
}

// parseResponse decodes a RESP payload.
func parseResponse(op string, payload []byte) (any, error) {
	v, err := Decode(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadResponse, op, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: %s: not a map", ErrBadResponse, op)
	}
	switch m["ok"] {
	case true:
		return m["result"], nil
	case false:
		code, _ := m["error"].(string)
		detail := ""
		switch d := m["detail"].(type) {
		case nil:
		case string:
			detail = d
		default:
			detail = fmt.Sprint(d)
		}
		if code == "" {
			code = CodeException
		}
		return nil, &RemoteError{Op: op, Code: code, Detail: detail}
	}
	return nil, fmt.Errorf("%w: %s: no ok", ErrBadResponse, op)
}

// asInt reads an integer the decoder produced (or a caller passed).
func asInt(v any) (int64, bool) {
	switch v := v.(type) {
	case int64:
		return v, true
	case int:
		return int64(v), true
	case uint64:
		if v <= 1<<62 {
			return int64(v), true
		}
	case int32:
		return int64(v), true
	case uint16:
		return int64(v), true
	}
	return 0, false
}

// nextSeq returns the seq after s; 0 is skipped (the seed client never
// uses it).
func nextSeq(s uint16) uint16 {
	s++
	if s == 0 {
		s = 1
	}
	return s
}

func (c *Client) now() int64 { return int64(time.Since(c.epoch)) }

// loop owns the protocol state: the seq, the call in flight and its
// timers.
func (c *Client) loop() {
	defer c.wg.Done()
	seq := c.cfg.FirstSeq // the seq of the next REQ
	if seq == 0 {
		seq = uint16(rand.N(0xFFFF)) + 1
	}
	resend := time.NewTimer(time.Hour)
	resend.Stop()
	deadline := time.NewTimer(time.Hour)
	deadline.Stop()
	defer resend.Stop()
	defer deadline.Stop()

	var (
		cur     *call
		curSeq  uint16
		curWire []byte // the REQ, SLIP-encoded, for resends
		sentAt  int64  // when the last copy was queued
	)
	finish := func(r callResult) {
		cur.res <- r
		cur, curWire = nil, nil
		resend.Stop()
		deadline.Stop()
	}
	for {
		var calls chan *call
		var ctxDone <-chan struct{}
		if cur == nil {
			calls = c.calls
		} else {
			ctxDone = cur.ctx.Done()
		}
		select {
		case <-c.done:
			if cur != nil {
				finish(callResult{err: c.downErr(cur.op)})
			}
			return

		case cl := <-calls:
			if err := cl.ctx.Err(); err != nil {
				cl.res <- callResult{err: err}
				continue
			}
			cur, curSeq = cl, seq
			seq = nextSeq(seq)
			curWire = slip.AppendEncode(nil, frame.AppendV3(nil, frame.V3Header{Type: frame.V3Req, Seq: curSeq}, cl.payload))
			sentAt = c.now()
			if !c.enqueue(curWire, true) {
				continue // done is closed; the next round fails the call
			}
			c.count(func(s *Stats) { s.Requests++ })
			resend.Reset(c.cfg.Resend)
			deadline.Reset(c.cfg.Deadline + cl.extra)
			c.log.Trace().Uint16("seq", curSeq).Str("op", cl.op).Msg("seedv3: REQ")

		case f := <-c.frames:
			switch f.h.Type {
			case frame.V3Resp:
				// ACK every RESP, duplicates too: the device keeps a RESP
				// in its cache until it is ACKed.
				c.ack(f.h.Seq)
				if cur != nil && f.h.Seq == curSeq {
					c.count(func(s *Stats) { s.Responses++ })
					finish(callResult{payload: f.payload})
				} else {
					c.count(func(s *Stats) { s.DupResponses++ })
				}
			case frame.V3Ack:
				c.count(func(s *Stats) { s.AcksReceived++ })
			case frame.V3Req:
				c.ack(f.h.Seq) // a device never asks; the rule says ACK it anyway
			}

		case <-resend.C:
			if cur == nil {
				continue
			}
			// Count the period from the last copy's end on the wire or
			// the last byte heard, whichever is later: a RESP still
			// arriving must not be asked for again (the device would
			// send it a second time from its cache).
			now := c.now()
			due := max(sentAt, c.lastTx.Load(), c.lastRx.Load()) + int64(c.cfg.Resend)
			if c.txBusy.Load() > 0 {
				due = now + int64(c.cfg.Resend)
			}
			if now < due {
				resend.Reset(time.Duration(due - now))
				continue
			}
			if !c.enqueue(curWire, true) {
				continue
			}
			sentAt = now
			c.count(func(s *Stats) { s.Resends++ })
			c.log.Debug().Uint16("seq", curSeq).Str("op", cur.op).Msg("seedv3: REQ resent")
			resend.Reset(c.cfg.Resend)

		case <-deadline.C:
			if cur == nil {
				continue
			}
			c.count(func(s *Stats) { s.Timeouts++ })
			c.log.Debug().Uint16("seq", curSeq).Str("op", cur.op).Msg("seedv3: no RESP before the deadline")
			finish(callResult{err: &DownError{Op: cur.op, Reason: fmt.Sprintf("no RESP to seq %d within %v", curSeq, c.cfg.Deadline+cur.extra)}})

		case <-ctxDone:
			c.count(func(s *Stats) { s.Canceled++ })
			finish(callResult{err: cur.ctx.Err()})
		}
	}
}

// ack queues an ACK for seq, or drops it when the writer is far behind.
func (c *Client) ack(seq uint16) {
	b := slip.AppendEncode(nil, frame.AppendV3(nil, frame.V3Header{Type: frame.V3Ack, Seq: seq}, nil))
	if c.enqueue(b, false) {
		c.count(func(s *Stats) { s.AcksSent++ })
	} else {
		c.count(func(s *Stats) { s.AcksDropped++ })
	}
}

// enqueue hands b to the writer. With wait it blocks while the queue is
// full (until the client stops); without, it gives up at once.
func (c *Client) enqueue(b []byte, wait bool) bool {
	c.txBusy.Add(1)
	if wait {
		select {
		case c.out <- b:
			return true
		case <-c.done:
		}
	} else {
		select {
		case c.out <- b:
			return true
		default:
		}
	}
	c.txBusy.Add(-1)
	return false
}

// write writes queued frames to the port.
func (c *Client) write() {
	defer c.wg.Done()
	for {
		select {
		case b := <-c.out:
			_, err := c.rw.Write(b)
			c.lastTx.Store(c.now())
			c.txBusy.Add(-1)
			c.count(func(s *Stats) { s.FramesOut++; s.BytesOut += uint64(len(b)) })
			if err != nil {
				c.fail(fmt.Errorf("write: %w", err))
				return
			}
		case <-c.done:
			return
		}
	}
}

// read decodes frames from the port and hands the valid ones to the loop.
func (c *Client) read() {
	defer c.wg.Done()
	dec := slip.NewDecoder(c.cfg.MaxFrame)
	buf := make([]byte, 16<<10)
	emit := func(b []byte) {
		h, p, err := frame.ParseV3(b)
		if err != nil {
			reason := frame.Reason(err)
			c.count(func(s *Stats) { s.BadFrames[reason]++ })
			c.log.Debug().Str("reason", reason).Int("len", len(b)).Msg("seedv3: frame dropped")
			return
		}
		c.count(func(s *Stats) { s.FramesIn++ })
		select {
		case c.frames <- rxFrame{h: h, payload: append([]byte(nil), p...)}:
		case <-c.done:
		}
	}
	drop := func(reason string) {
		c.count(func(s *Stats) { s.BadFrames[reason]++ })
	}
	for {
		n, err := c.rw.Read(buf)
		if n > 0 {
			c.lastRx.Store(c.now())
			c.count(func(s *Stats) { s.BytesIn += uint64(n) })
			dec.Feed(buf[:n], emit, drop)
		}
		if err != nil {
			c.fail(fmt.Errorf("read: %w", err))
			return
		}
	}
}
