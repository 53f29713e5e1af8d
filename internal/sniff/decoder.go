package sniff

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"time"

	"github.com/uartproxy/uartproxy/internal/capture"
	"github.com/uartproxy/uartproxy/internal/frame"
	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/slip"
)

// maxPending bounds the requests a Requests table remembers.
const maxPending = 1024

// Requests remembers the op of each pending REQUEST and seed REQ, so that a
// RESPONSE (RESP) is shown with the op it answers and, for INFO, with named
// fields. The Decoders of both directions share one. It forgets everything
// when it holds maxPending requests that were never answered.
type Requests struct {
	native map[uint32]message.Op
	seed   map[uint16]string
}

// NewRequests returns an empty table.
func NewRequests() *Requests {
	return &Requests{native: make(map[uint32]message.Op), seed: make(map[uint16]string)}
}

func (r *Requests) put(id uint32, op message.Op) {
	if len(r.native) >= maxPending {
		clear(r.native)
	}
	r.native[id] = op
}

func (r *Requests) take(id uint32) (message.Op, bool) {
	op, ok := r.native[id]
	delete(r.native, id)
	return op, ok
}

// putSeed remembers a seed REQ. A seed RESP may be sent again (from the
// device's cache), so it is not forgotten when answered.
func (r *Requests) putSeed(seq uint16, op string) {
	if len(r.seed) >= maxPending {
		clear(r.seed)
	}
	r.seed[seq] = op
}

// Decoder turns the line bytes of one direction into Events. It splits them
// with the SLIP decoder of package slip (limit frame.MaxFrameLen, the larger
// of the native and seed limits, §2.3) and checks each frame with package
// frame.
type Decoder struct {
	dir  capture.Direction
	slip *slip.Decoder
	reqs *Requests

	// The SLIP frame being read.
	off     int64 // line bytes fed so far
	start   int64 // offset of the current frame's first byte
	wire    int   // its line bytes so far
	bad     int   // its bad escapes so far
	tooLong bool  // the SLIP decoder discarded it
	sawEnd  bool  // an END has been seen: later frames are whole
	got     bool  // the SLIP decoder emitted a frame during the last Feed
	cur     []byte

	// Retransmission detection.
	haveSeq bool
	highSeq uint16   // highest native DATA seq since the last HELLO
	v3Last  [4]int32 // last seq of each seed frame type, -1 for none
}

// NewDecoder returns a Decoder for direction dir. reqs is the table shared
// with the other direction's Decoder; nil gives this one its own.
func NewDecoder(dir capture.Direction, reqs *Requests) *Decoder {
	if reqs == nil {
		reqs = NewRequests()
	}
	return &Decoder{
		dir: dir, slip: slip.NewDecoder(frame.MaxFrameLen), reqs: reqs,
		v3Last: [4]int32{-1, -1, -1, -1},
	}
}

// Feed decodes line bytes read at t, which continue those of earlier calls,
// and calls emit for each event. The Event and its slices belong to emit.
func (d *Decoder) Feed(t time.Time, p []byte, emit func(*Event)) {
	for len(p) > 0 {
		seg := p
		e := bytes.IndexByte(p, slip.End)
		if e >= 0 {
			seg = p[:e+1]
		}
		p = p[len(seg):]

		before := d.slip.Stats().BadEscape
		d.got = false
		d.slip.Feed(seg, d.keep, d.drop)
		d.bad += int(d.slip.Stats().BadEscape - before)
		d.wire += len(seg)
		d.off += int64(len(seg))
		if e >= 0 {
			d.end(t, false, emit)
		}
	}
}

// keep copies a frame the SLIP decoder emits.
func (d *Decoder) keep(f []byte) {
	d.cur = append(d.cur[:0], f...)
	d.got = true
}

func (d *Decoder) drop(string) { d.tooLong = true }

// end finishes the current SLIP frame at an END (or at the end of the
// capture, when last is set). An empty frame (the END that starts every
// frame) makes no event: its bytes count as the next event's, so that the
// wire lengths of the events add up to the line bytes.
func (d *Decoder) end(t time.Time, last bool, emit func(*Event)) {
	first := !d.sawEnd
	d.sawEnd = true
	switch {
	case d.got:
		ev := d.classify(t, d.cur)
		ev.Offset, ev.WireLen, ev.BadEscapes = d.start, d.wire, d.bad
		if ev.Kind != KindFrame && (first || last) {
			ev.Kind, ev.Reason = KindNoise, ReasonPartial
			if last {
				ev.Reason = ReasonTruncated
			}
			ev.Version, ev.Type, ev.CRC = 0, "", ""
		}
		emit(ev)
	case d.tooLong:
		emit(&Event{Time: t, Dir: d.dir, Offset: d.start, Kind: KindTooLong, Reason: "slip_too_long",
			WireLen: d.wire, BadEscapes: d.bad})
	default:
		return
	}
	d.start, d.wire, d.bad, d.tooLong = d.off, 0, 0, false
}

// Flush ends the capture: bytes after the last END are reported as a
// truncated frame (or as a frame, if they make one).
func (d *Decoder) Flush(t time.Time, emit func(*Event)) {
	if d.wire == 0 {
		return
	}
	d.got = false
	d.slip.Feed([]byte{slip.End}, d.keep, d.drop)
	d.end(t, true, emit)
}

// Frame decodes one SLIP frame taken from a frame capture
// (capture.FormatFrames), where the line bytes are gone: Offset is -1 and
// WireLen the length of the frame's SLIP encoding (§2.2). origLen is the frame's
// length on the line for a StatusTooLong record.
func (d *Decoder) Frame(t time.Time, status capture.Status, p []byte, origLen int, emit func(*Event)) {
	var ev *Event
	switch status {
	case capture.StatusTooLong:
		ev = &Event{Time: t, Dir: d.dir, Kind: KindTooLong, Reason: "slip_too_long", WireLen: max(origLen, len(p))}
	case capture.StatusNoise:
		ev = &Event{Time: t, Dir: d.dir, Kind: KindNoise, Reason: ReasonNoise, Raw: bytes.Clone(p), FrameLen: len(p)}
		ev.WireLen = slip.EncodedLen(p) - 1 // noise has no END of its own before it
	default:
		if len(p) > frame.MaxFrameLen {
			p = p[:frame.MaxFrameLen]
		}
		ev = d.classify(t, p)
		ev.WireLen = slip.EncodedLen(p) // both ENDs, as Feed counts a frame sent by §2.2
	}
	ev.Offset = -1
	emit(ev)
}

// classify checks one SLIP frame (docs/protocol.md §3.4, §3.5).
func (d *Decoder) classify(t time.Time, b []byte) *Event {
	ev := &Event{Time: t, Dir: d.dir, FrameLen: len(b), Raw: bytes.Clone(b)}
	switch frame.Peek(b) {
	case frame.Version:
		d.native(ev, b)
	case frame.V3Version:
		d.seed(ev, b)
	default:
		ev.Kind, ev.Reason = KindNoise, ReasonNoise
	}
	return ev
}

// native decodes a frame whose byte 0 is 4 (§3).
func (d *Decoder) native(ev *Event, b []byte) {
	ev.Version = frame.Version
	h, payload, err := frame.Parse(b, frame.MaxPayloadLimit)
	if err != nil {
		ev.Kind, ev.Reason = KindRejected, frame.Reason(err)
		if len(b) >= frame.HeaderLen { // show what the header claims
			ev.Header = frame.Header{
				Type: frame.Type(b[1] & 0x0f), Flags: b[1] & 0xf0,
				Seq: binary.LittleEndian.Uint16(b[2:]), Ack: binary.LittleEndian.Uint16(b[4:]),
				Sack: binary.LittleEndian.Uint32(b[6:]),
			}
			ev.Type = ev.Header.Type.String()
		}
		if len(b) >= frame.MinLen {
			ev.PayloadLen = len(b) - frame.MinLen
			ev.CRC = CRCOK
			body := len(b) - frame.CRCLen
			if crc32.ChecksumIEEE(b[:body]) != binary.LittleEndian.Uint32(b[body:]) {
				ev.CRC = CRCBad
			}
		}
		return
	}
	ev.Kind, ev.Header, ev.Type, ev.CRC, ev.PayloadLen = KindFrame, h, h.Type.String(), CRCOK, len(payload)
	switch h.Type {
	case frame.Hello:
		d.haveSeq = false // a new session numbers its DATA from 0 (§5.4)
		hello, err := message.ParseHello(payload)
		if err != nil {
			ev.PayloadErr = "bad_hello: " + err.Error()
			v, _, verr := decodeValue(payload, false)
			if verr == nil {
				ev.Body = nameKeys(v, helloKeys)
			}
			return
		}
		ev.Hello = helloFields(hello)
	case frame.Data:
		// A sender numbers new DATA frames in order (§6.1), so one at or
		// behind the highest seq seen is a retransmission, also when its
		// first copy was lost to noise.
		if d.haveSeq && (d.highSeq-h.Seq)&0xffff < 0x8000 {
			ev.Retransmit = true
		} else {
			d.haveSeq, d.highSeq = true, h.Seq
		}
		ev.Messages, ev.PayloadErr = d.decodeMessages(payload)
	}
}

// seed decodes a frame whose byte 0 is 3 (§3.5, §14).
func (d *Decoder) seed(ev *Event, b []byte) {
	ev.Version = frame.V3Version
	h, payload, err := frame.ParseV3(b)
	if err != nil {
		ev.Kind, ev.Reason = KindRejected, frame.Reason(err)
		if len(b) >= frame.V3HeaderLen {
			ev.Type = frame.V3Type(b[1]).String()
			ev.Seq = binary.LittleEndian.Uint16(b[2:])
			ev.PayloadLen = len(b) - frame.V3HeaderLen
			switch ev.Reason {
			case "crc":
				ev.CRC = CRCBad
			case "bad_type": // checked after the CRC
				ev.CRC = CRCOK
			}
		}
		return
	}
	ev.Kind, ev.Type, ev.Seq, ev.CRC, ev.PayloadLen = KindFrame, h.Type.String(), h.Seq, CRCOK, len(payload)
	if h.Type != frame.V3Ack {
		if d.v3Last[h.Type] == int32(h.Seq) {
			ev.Retransmit = true
		}
		d.v3Last[h.Type] = int32(h.Seq)
	}
	if len(payload) > 0 {
		v, n, err := decodeValue(payload, true)
		ev.Body = v
		switch {
		case err != nil:
			ev.PayloadErr = "malformed_payload: " + errReason(err)
		case n < len(payload):
			ev.PayloadErr = "trailing_bytes"
		}
	}
	m, _ := ev.Body.(Map)
	switch h.Type {
	case frame.V3Req:
		if op, ok := m.Get("op"); ok {
			if s, ok := op.(string); ok {
				ev.Op = s
				d.reqs.putSeed(h.Seq, s)
			}
		}
	case frame.V3Resp:
		ev.Op = d.reqs.seed[h.Seq]
	}
}
