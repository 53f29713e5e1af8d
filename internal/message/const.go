// Package message encodes and decodes the messages that travel inside DATA
// frames of the uartproxy link protocol (docs/protocol.md §7), and the HELLO
// map (docs/protocol.md §5).
//
// A DATA payload is a CBOR sequence (RFC 8742) of arrays whose first element
// is the message type. Encoding is hand-rolled for the hot path (DATA) and
// for the fixed layouts; free-form values (OPEN options, request arguments
// and results, HELLO) go through fxamacker/cbor with strict decode limits.
//
// Functions in this package are pure: they never panic on input and are safe
// for concurrent use.
package message

import "errors"

// protocol: must match firmware and docs/protocol.md §7.
const (
	// Revision is the protocol revision this implementation speaks.
	Revision = 1
)

// Type is the first element of every message array.
type Type uint8

// protocol: must match firmware and docs/protocol.md §7.
const (
	TypeOpen     Type = 1
	TypeOpenOK   Type = 2
	TypeReset    Type = 3
	TypeData     Type = 4
	TypeFin      Type = 5
	TypeCredit   Type = 6
	TypeDgram    Type = 7
	TypeAccept   Type = 8
	TypeRequest  Type = 9
	TypeResponse Type = 10
	TypeEvent    Type = 11
	typeMax           = 12
)

var typeNames = [typeMax]string{"type0", "OPEN", "OPEN_OK", "RESET", "DATA", "FIN", "CREDIT", "DGRAM", "ACCEPT", "REQUEST", "RESPONSE", "EVENT"}

// String returns the message type name used in docs/protocol.md.
func (t Type) String() string {
	if t > 0 && int(t) < typeMax {
		return typeNames[t]
	}
	return "type" + itoa(uint64(t))
}

// Kind says what an OPEN creates on the device.
type Kind uint8

// protocol: must match firmware and docs/protocol.md §7.
const (
	KindTCP     Kind = 1
	KindUDP     Kind = 2
	KindListen  Kind = 3
	KindService Kind = 4
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case KindTCP:
		return "tcp"
	case KindUDP:
		return "udp"
	case KindListen:
		return "listen"
	case KindService:
		return "service"
	}
	return "kind" + itoa(uint64(k))
}

// Code is an error code carried by RESET and RESPONSE.
type Code uint16

// protocol: must match firmware and docs/protocol.md §10.
const (
	CodeOK          Code = 0 // normal close; "ok" in RESPONSE
	CodeRefused     Code = 1
	CodeUnreachable Code = 2
	CodeDNS         Code = 3
	CodeTimeout     Code = 4
	CodeTLS         Code = 5
	CodeLimit       Code = 6
	CodeProtocol    Code = 7
	CodeUnsupported Code = 8
	CodeInUse       Code = 9
	CodeDenied      Code = 10
	CodeReset       Code = 11
	CodeInternal    Code = 12
	CodeNoMemory    Code = 13
	codeMax              = 14
)

var codeNames = [codeMax]string{"closed", "refused", "unreachable", "dns", "timeout", "tls", "limit", "protocol", "unsupported", "in_use", "denied", "reset", "internal", "no_memory"}

// String returns the code's short name, also used as a metric label.
func (c Code) String() string {
	if int(c) < codeMax {
		return codeNames[c]
	}
	return "internal"
}

// Normalize maps codes this revision does not know to CodeInternal
// (docs/protocol.md §10).
func (c Code) Normalize() Code {
	if int(c) < codeMax {
		return c
	}
	return CodeInternal
}

// Op names a REQUEST operation.
type Op uint16

// protocol: must match firmware and docs/protocol.md §7.
const (
	OpResolve    Op = 1
	OpInfo       Op = 2
	OpEcho       Op = 3
	OpSetBaud    Op = 4
	OpBaudCommit Op = 5
)

// String returns the op name.
func (o Op) String() string {
	switch o {
	case OpResolve:
		return "resolve"
	case OpInfo:
		return "info"
	case OpEcho:
		return "echo"
	case OpSetBaud:
		return "set_baud"
	case OpBaudCommit:
		return "baud_commit"
	}
	return "op" + itoa(uint64(o))
}

// EventKind names an EVENT.
type EventKind uint16

// protocol: must match firmware and docs/protocol.md §7.
const (
	EventInfo EventKind = 1
)

// Service endpoint names for KindService (docs/protocol.md §7).
const (
	ServiceEcho    = "echo"
	ServiceDiscard = "discard"
	ServiceSource  = "source"
)

// SourceByte is the byte the "source" service sends at offset i.
func SourceByte(i uint64) byte { return byte(i % 251) }

// Limits on decoded input (tuning, not protocol).
const (
	maxText        = 1024 // host names, reasons
	maxNested      = 8
	maxContainer   = 256
	maxMessageSize = 1 << 16
)

// Sentinel errors. Each has a short reason token via Reason.
var (
	ErrTruncated = errors.New("message: truncated")
	ErrMalformed = errors.New("message: malformed")
	ErrUnknown   = errors.New("message: unknown type")
)

func itoa(v uint64) string {
	if v == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}
