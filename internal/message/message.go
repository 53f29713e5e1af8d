package message

import (
	"errors"
	"fmt"
	"math"

	"github.com/fxamacker/cbor/v2"
)

// Message is one decoded message. Only the fields its Type uses are set;
// the layout of each type is in docs/protocol.md §7.
type Message struct {
	Type Type
	SID  uint32 // every stream message

	Kind   Kind    // OPEN
	Host   string  // OPEN, OPEN_OK, DGRAM, ACCEPT
	Port   uint16  // OPEN, OPEN_OK, DGRAM, ACCEPT
	Window uint32  // OPEN, OPEN_OK, ACCEPT
	Opts   Options // OPEN

	Code   Code   // RESET, RESPONSE
	Reason string // RESET

	Data      []byte // DATA, DGRAM
	Listener  uint32 // ACCEPT
	Increment uint32 // CREDIT

	ID     uint32          // REQUEST, RESPONSE
	Op     Op              // REQUEST
	Args   cbor.RawMessage // REQUEST (nil encodes as null)
	Result cbor.RawMessage // RESPONSE (nil encodes as null)

	Event EventKind       // EVENT
	Value cbor.RawMessage // EVENT
}

// Options are the OPEN options map (docs/protocol.md §7).
type Options struct {
	TLS       bool   `cbor:"1,keyasint,omitempty"`
	SNI       string `cbor:"2,keyasint,omitempty"`
	Verify    *bool  `cbor:"3,keyasint,omitempty"` // absent with TLS means verify
	Backlog   uint16 `cbor:"4,keyasint,omitempty"`
	TimeoutMS uint32 `cbor:"5,keyasint,omitempty"`
}

// VerifyCert reports whether the device must verify the server certificate.
// Verification is the default when the host did not say.
func (o Options) VerifyCert() bool { return o.Verify == nil || *o.Verify }

// fieldCount is the number of array elements each type carries, type first.
var fieldCount = [typeMax]int{
	TypeOpen:     7,
	TypeOpenOK:   5,
	TypeReset:    4,
	TypeData:     3,
	TypeFin:      2,
	TypeCredit:   3,
	TypeDgram:    5,
	TypeAccept:   6,
	TypeRequest:  4,
	TypeResponse: 4,
	TypeEvent:    3,
}

// AppendData appends a DATA message; it is the hot path and allocates nothing
// when dst has room.
func AppendData(dst []byte, sid uint32, p []byte) []byte {
	dst = append(dst, 0x83, byte(TypeData))
	dst = appendUint(dst, uint64(sid))
	return appendBytes(dst, p)
}

// DataFit is the largest payload a DATA message for sid can carry in room
// bytes (0 if none fits).
func DataFit(sid uint32, room int) int {
	n := room - 2 - headLen(uint64(sid)) - headLen(uint64(max(room, 0)))
	if n <= 0 {
		return 0
	}
	// The head for n may be shorter than the one for room.
	for DataLen(sid, n+1) <= room {
		n++
	}
	return n
}

// DataLen is the encoded size of a DATA message for sid carrying n bytes.
func DataLen(sid uint32, n int) int {
	return 2 + headLen(uint64(sid)) + headLen(uint64(n)) + n
}

// Append appends m's encoding to dst.
func Append(dst []byte, m *Message) ([]byte, error) {
	if int(m.Type) >= typeMax || m.Type == 0 {
		return dst, fmt.Errorf("%w: %d", ErrUnknown, m.Type)
	}
	dst = appendHead(dst, majorArray, uint64(fieldCount[m.Type]))
	dst = append(dst, byte(m.Type))
	switch m.Type {
	case TypeOpen:
		dst = appendUint(dst, uint64(m.SID))
		dst = appendUint(dst, uint64(m.Kind))
		dst = appendText(dst, m.Host)
		dst = appendUint(dst, uint64(m.Port))
		dst = appendUint(dst, uint64(m.Window))
		opts, err := encMode.Marshal(m.Opts)
		if err != nil {
			return dst, err
		}
		dst = append(dst, opts...)
	case TypeOpenOK:
		dst = appendUint(dst, uint64(m.SID))
		dst = appendUint(dst, uint64(m.Window))
		dst = appendText(dst, m.Host)
		dst = appendUint(dst, uint64(m.Port))
	case TypeReset:
		dst = appendUint(dst, uint64(m.SID))
		dst = appendUint(dst, uint64(m.Code))
		dst = appendText(dst, m.Reason)
	case TypeData:
		dst = appendUint(dst, uint64(m.SID))
		dst = appendBytes(dst, m.Data)
	case TypeFin:
		dst = appendUint(dst, uint64(m.SID))
	case TypeCredit:
		dst = appendUint(dst, uint64(m.SID))
		dst = appendUint(dst, uint64(m.Increment))
	case TypeDgram:
		dst = appendUint(dst, uint64(m.SID))
		dst = appendText(dst, m.Host)
		dst = appendUint(dst, uint64(m.Port))
		dst = appendBytes(dst, m.Data)
	case TypeAccept:
		dst = appendUint(dst, uint64(m.SID))
		dst = appendUint(dst, uint64(m.Listener))
		dst = appendText(dst, m.Host)
		dst = appendUint(dst, uint64(m.Port))
		dst = appendUint(dst, uint64(m.Window))
	case TypeRequest:
		dst = appendUint(dst, uint64(m.ID))
		dst = appendUint(dst, uint64(m.Op))
		dst = appendRaw(dst, m.Args)
	case TypeResponse:
		dst = appendUint(dst, uint64(m.ID))
		dst = appendUint(dst, uint64(m.Code))
		dst = appendRaw(dst, m.Result)
	case TypeEvent:
		dst = appendUint(dst, uint64(m.Event))
		dst = appendRaw(dst, m.Value)
	}
	return dst, nil
}

// Parse decodes the first message of a CBOR sequence and returns the rest.
// Unknown trailing array elements are ignored (forward compatibility);
// missing ones are an error. The returned Message does not alias b.
func Parse(b []byte) (Message, []byte, error) {
	var m Message
	var fields []cbor.RawMessage
	rest, err := decMode.UnmarshalFirst(b, &fields)
	if err != nil {
		return m, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(fields) == 0 {
		return m, rest, fmt.Errorf("%w: empty array", ErrMalformed)
	}
	t, err := fieldUint(fields[0], math.MaxUint8, "type")
	if err != nil {
		return m, rest, err
	}
	m.Type = Type(t)
	if int(m.Type) >= typeMax || m.Type == 0 {
		return m, rest, fmt.Errorf("%w: %d", ErrUnknown, t)
	}
	if len(fields) < fieldCount[m.Type] {
		return m, rest, fmt.Errorf("%w: %v has %d fields, want %d", ErrMalformed, m.Type, len(fields), fieldCount[m.Type])
	}
	p := parser{f: fields}
	switch m.Type {
	case TypeOpen:
		m.SID = p.u32(1, "sid")
		m.Kind = Kind(p.uint(2, math.MaxUint8, "kind"))
		m.Host = p.text(3, "host")
		m.Port = uint16(p.uint(4, math.MaxUint16, "port"))
		m.Window = p.u32(5, "window")
		if p.err == nil {
			if err := decMode.Unmarshal(fields[6], &m.Opts); err != nil {
				p.err = fmt.Errorf("%w: opts: %v", ErrMalformed, err)
			}
		}
	case TypeOpenOK:
		m.SID = p.u32(1, "sid")
		m.Window = p.u32(2, "window")
		m.Host = p.text(3, "host")
		m.Port = uint16(p.uint(4, math.MaxUint16, "port"))
	case TypeReset:
		m.SID = p.u32(1, "sid")
		m.Code = Code(p.uint(2, math.MaxUint16, "code"))
		m.Reason = p.text(3, "reason")
	case TypeData:
		m.SID = p.u32(1, "sid")
		m.Data = p.bytes(2, "data")
		if p.err == nil && len(m.Data) == 0 {
			p.err = fmt.Errorf("%w: empty DATA", ErrMalformed)
		}
	case TypeFin:
		m.SID = p.u32(1, "sid")
	case TypeCredit:
		m.SID = p.u32(1, "sid")
		m.Increment = p.u32(2, "increment")
	case TypeDgram:
		m.SID = p.u32(1, "sid")
		m.Host = p.text(2, "host")
		m.Port = uint16(p.uint(3, math.MaxUint16, "port"))
		m.Data = p.bytes(4, "data")
	case TypeAccept:
		m.SID = p.u32(1, "sid")
		m.Listener = p.u32(2, "listener")
		m.Host = p.text(3, "host")
		m.Port = uint16(p.uint(4, math.MaxUint16, "port"))
		m.Window = p.u32(5, "window")
	case TypeRequest:
		m.ID = p.u32(1, "id")
		m.Op = Op(p.uint(2, math.MaxUint16, "op"))
		m.Args = rawOrNil(fields[3])
	case TypeResponse:
		m.ID = p.u32(1, "id")
		m.Code = Code(p.uint(2, math.MaxUint16, "code"))
		m.Result = rawOrNil(fields[3])
	case TypeEvent:
		m.Event = EventKind(p.uint(1, math.MaxUint16, "event"))
		m.Value = rawOrNil(fields[2])
	}
	return m, rest, p.err
}

// rawOrNil turns CBOR null into nil so callers test one thing.
func rawOrNil(r cbor.RawMessage) cbor.RawMessage {
	if len(r) == 1 && r[0] == 0xf6 {
		return nil
	}
	return r
}

// parser reads typed fields and keeps the first error.
type parser struct {
	f   []cbor.RawMessage
	err error
}

func (p *parser) uint(i int, max uint64, name string) uint64 {
	if p.err != nil {
		return 0
	}
	v, err := fieldUint(p.f[i], max, name)
	p.err = err
	return v
}

func (p *parser) u32(i int, name string) uint32 { return uint32(p.uint(i, math.MaxUint32, name)) }

func (p *parser) text(i int, name string) string {
	if p.err != nil {
		return ""
	}
	v, err := fieldText(p.f[i], name)
	p.err = err
	return v
}

func (p *parser) bytes(i int, name string) []byte {
	if p.err != nil {
		return nil
	}
	v, err := fieldBytes(p.f[i], name)
	p.err = err
	return v
}

// String renders m for logs and sniff output, with data as a length.
func (m Message) String() string {
	switch m.Type {
	case TypeOpen:
		return fmt.Sprintf("OPEN sid=%d kind=%v %s:%d window=%d tls=%v", m.SID, m.Kind, m.Host, m.Port, m.Window, m.Opts.TLS)
	case TypeOpenOK:
		return fmt.Sprintf("OPEN_OK sid=%d window=%d local=%s:%d", m.SID, m.Window, m.Host, m.Port)
	case TypeReset:
		return fmt.Sprintf("RESET sid=%d code=%v reason=%q", m.SID, m.Code, m.Reason)
	case TypeData:
		return fmt.Sprintf("DATA sid=%d len=%d", m.SID, len(m.Data))
	case TypeFin:
		return fmt.Sprintf("FIN sid=%d", m.SID)
	case TypeCredit:
		return fmt.Sprintf("CREDIT sid=%d +%d", m.SID, m.Increment)
	case TypeDgram:
		return fmt.Sprintf("DGRAM sid=%d %s:%d len=%d", m.SID, m.Host, m.Port, len(m.Data))
	case TypeAccept:
		return fmt.Sprintf("ACCEPT sid=%d listener=%d from=%s:%d window=%d", m.SID, m.Listener, m.Host, m.Port, m.Window)
	case TypeRequest:
		return fmt.Sprintf("REQUEST id=%d op=%v", m.ID, m.Op)
	case TypeResponse:
		return fmt.Sprintf("RESPONSE id=%d code=%v", m.ID, m.Code)
	case TypeEvent:
		return fmt.Sprintf("EVENT kind=%d", m.Event)
	}
	return m.Type.String()
}

// Reason maps a Parse error to a short token for logs and metrics.
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrUnknown):
		return "unknown_message"
	case errors.Is(err, ErrTruncated):
		return "truncated"
	}
	return "malformed_message"
}
