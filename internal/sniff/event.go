// Package sniff decodes the bytes of a uartproxy serial line into events for
// `uartproxy sniff`: native frames (docs/protocol.md §3) and seed v3 frames
// (§3.5) with their messages, frames that fail a check and why, line noise
// between frames and SLIP frames over the limit. It also keeps the figures of
// a capture (Stats) and selects events (Filter). It prints nothing.
//
// A Decoder handles one direction of the line. It never panics on input, and
// its memory is bounded by the SLIP limit (frame.MaxFrameLen) whatever it is
// fed.
//
// Concurrency: a Decoder, a Stats and a Requests table are not safe for
// concurrent use; one goroutine feeds all of them.
package sniff

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/uartproxy/uartproxy/internal/capture"
	"github.com/uartproxy/uartproxy/internal/frame"
)

// Kind says what an Event is.
type Kind uint8

// Event kinds.
const (
	KindFrame    Kind = iota + 1 // a frame that passed the checks of §3.4 or §3.5
	KindRejected                 // a native or seed frame that failed one: Reason says which
	KindNoise                    // bytes between frames that are no frame: byte 0 is neither 3 nor 4
	KindTooLong                  // a SLIP frame over the limit, discarded (§2.3)
	kindMax
)

var kindNames = [kindMax]string{"kind0", "frame", "rejected", "noise", "slip_too_long"}

// String returns "frame", "rejected", "noise" or "slip_too_long".
func (k Kind) String() string {
	if k < kindMax {
		return kindNames[k]
	}
	return "kind" + strconv.Itoa(int(k))
}

// Status returns the capture status a frame capture stores for k.
func (k Kind) Status() capture.Status {
	switch k {
	case KindTooLong:
		return capture.StatusTooLong
	case KindNoise:
		return capture.StatusNoise
	}
	return capture.StatusFrame
}

// Reasons of noise events, besides the frame reason tokens of rejected
// frames (frame.Reason).
const (
	ReasonNoise     = "noise"     // bytes between two ENDs that are no frame
	ReasonPartial   = "partial"   // bytes before the first END: the capture began inside a frame
	ReasonTruncated = "truncated" // bytes after the last END: the capture ended inside a frame
)

// CRC states of a frame.
const (
	CRCOK  = "ok"
	CRCBad = "bad"
)

// Event is one thing seen on the line: a frame, a rejected frame, noise or
// an over-long SLIP frame. Its JSON form (MarshalJSON) is the output of
// `uartproxy sniff --json`.
type Event struct {
	Time time.Time         // when the frame's END was read; zero when the capture has no times
	Dir  capture.Direction // which way it went
	// Offset is the position of the frame's first byte among the line
	// bytes of its direction, or -1 when unknown (a frame capture).
	Offset int64
	Kind   Kind
	// Reason says why a frame was rejected (a frame.Reason token such as
	// "crc") or what noise is (ReasonNoise, ReasonPartial,
	// ReasonTruncated).
	Reason string

	FrameLen   int // unescaped length of the SLIP frame
	WireLen    int // line bytes of it: escapes and the closing END included
	BadEscapes int // ESC bytes followed by neither ESC_END nor ESC_ESC (§2.3)
	// Raw is the unescaped SLIP frame (a copy); nil for KindTooLong.
	Raw []byte

	Version int    // 4 (native), 3 (seed) or 0 (noise)
	Type    string // frame type: HELLO, DATA, ACK; seed REQ, RESP, ACK
	// Header is the native header, also for rejected frames long enough
	// to have one (untrusted then: CRC says whether it passed).
	Header frame.Header
	// Seq is a seed frame's sequence number.
	Seq uint16
	// CRC is CRCOK, CRCBad or "" when the frame is too short to have one.
	CRC        string
	PayloadLen int
	// Retransmit marks a DATA frame whose seq is at or behind the highest
	// seen in this direction since its last HELLO, or a seed REQ or RESP
	// that repeats the seq of the previous one of its type.
	Retransmit bool

	Hello    Fields // a native HELLO's map (§5.1)
	Messages []Msg  // a native DATA frame's messages (§7)
	Body     any    // a seed frame's CBOR payload, decoded
	// Op is the op of a seed REQ, or of the REQ that a seed RESP answers.
	Op string
	// PayloadErr says why the payload could not be decoded entirely.
	PayloadErr string
}

// Flags returns the names of the flags set in a native frame.
func (e *Event) Flags() []string {
	var f []string
	if e.Version == frame.Version && e.Header.Flags&frame.FlagAckReq != 0 {
		f = append(f, "ACKREQ")
	}
	if e.Version == frame.Version && e.Header.Flags&^frame.FlagAckReq != 0 {
		f = append(f, "0x"+strconv.FormatUint(uint64(e.Header.Flags&^frame.FlagAckReq), 16))
	}
	return f
}

// HasHeader reports whether the event carries a frame header worth showing.
func (e *Event) HasHeader() bool {
	return e.Version == frame.Version && e.FrameLen >= frame.HeaderLen ||
		e.Version == frame.V3Version && e.FrameLen >= frame.V3HeaderLen
}

// IsError reports whether the event shows a fault: anything but a clean
// frame whose payload decoded.
func (e *Event) IsError() bool {
	if e.Kind != KindFrame || e.BadEscapes > 0 || e.PayloadErr != "" {
		return true
	}
	for _, m := range e.Messages {
		if m.Err != "" {
			return true
		}
	}
	return false
}

// MarshalJSON writes the event as one JSON object with the fields that
// apply to its kind and type.
func (e Event) MarshalJSON() ([]byte, error) {
	type header struct {
		Seq  *uint16 `json:"seq,omitempty"`
		Ack  *uint16 `json:"ack,omitempty"`
		Sack *uint32 `json:"sack,omitempty"`
	}
	j := struct {
		Time    string `json:"time,omitempty"`
		Dir     string `json:"dir"`
		Offset  *int64 `json:"offset,omitempty"`
		Kind    string `json:"kind"`
		Reason  string `json:"reason,omitempty"`
		Version int    `json:"version,omitempty"`
		Type    string `json:"type,omitempty"`
		Op      string `json:"op,omitempty"`
		header
		Flags      []string `json:"flags,omitempty"`
		FrameLen   int      `json:"frame_len"`
		PayloadLen *int     `json:"payload_len,omitempty"`
		WireLen    int      `json:"wire_len,omitempty"`
		CRC        string   `json:"crc,omitempty"`
		BadEscapes int      `json:"bad_escapes,omitempty"`
		Retransmit bool     `json:"retransmit,omitempty"`
		Hello      Fields   `json:"hello,omitempty"`
		Messages   []Msg    `json:"messages,omitempty"`
		Body       any      `json:"body,omitempty"`
		Data       Bytes    `json:"data,omitempty"`
		PayloadErr string   `json:"payload_error,omitempty"`
	}{
		Dir: e.Dir.String(), Kind: e.Kind.String(), Reason: e.Reason,
		Version: e.Version, Type: e.Type, Op: e.Op, Flags: e.Flags(),
		FrameLen: e.FrameLen, WireLen: e.WireLen, CRC: e.CRC, BadEscapes: e.BadEscapes,
		Retransmit: e.Retransmit, Hello: e.Hello, Messages: e.Messages, Body: e.Body,
		PayloadErr: e.PayloadErr,
	}
	if !e.Time.IsZero() {
		j.Time = e.Time.UTC().Format(time.RFC3339Nano)
	}
	if e.Offset >= 0 {
		j.Offset = &e.Offset
	}
	if e.HasHeader() {
		j.PayloadLen = &e.PayloadLen
		if e.Version == frame.V3Version {
			j.Seq = &e.Seq
		} else {
			h := e.Header
			if h.Type == frame.Data {
				j.Seq = &h.Seq
			}
			if h.Type != frame.Hello {
				j.Ack, j.Sack = &h.Ack, &h.Sack
			}
		}
	}
	if e.Kind == KindNoise {
		j.Data = Bytes(e.Raw)
	}
	return json.Marshal(j)
}

// Field is one named value of a message or a HELLO.
type Field struct {
	Key   string
	Value any
}

// Fields are the named values of a message, in protocol order.
type Fields []Field

// Get returns the value of the field named key.
func (f Fields) Get(key string) (any, bool) {
	for _, x := range f {
		if x.Key == key {
			return x.Value, true
		}
	}
	return nil, false
}

// MarshalJSON writes the fields as one object, in order.
func (f Fields) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, x := range f {
		if i > 0 {
			b = append(b, ',')
		}
		v, err := json.Marshal(x.Value)
		if err != nil {
			return nil, err
		}
		b = append(strconv.AppendQuote(b, x.Key), ':')
		b = append(b, v...)
	}
	return append(b, '}'), nil
}

// Msg is one message of a DATA frame (docs/protocol.md §7).
type Msg struct {
	// Type is the message type name (OPEN, DATA, …), "typeN" for an
	// unknown type, or "?" when the item is not a message at all.
	Type string
	// SID is the stream id of stream messages (types 1–8); HasSID says
	// whether there is one.
	SID    uint32
	HasSID bool
	// Fields are the decoded fields, the stream id first.
	Fields Fields
	// Err says why the message is malformed; Raw is then the item as
	// decoded by a generic CBOR decoder.
	Err string
	Raw any
}

// MarshalJSON writes {"type": …, fields…, "error": …, "raw": …}.
func (m Msg) MarshalJSON() ([]byte, error) {
	f := append(Fields{{"type", m.Type}}, m.Fields...)
	if m.Err != "" {
		f = append(f, Field{"error", m.Err}, Field{"raw", m.Raw})
	}
	return f.MarshalJSON()
}
