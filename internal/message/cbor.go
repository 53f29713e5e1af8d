package message

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// decMode decodes everything that comes off the wire: definite lengths
// only, no tags, no duplicate map keys, bounded nesting and sizes.
var decMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		MaxNestedLevels:  maxNested,
		MaxArrayElements: maxContainer,
		MaxMapPairs:      maxContainer,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		UTF8:             cbor.UTF8RejectInvalid,
		IntDec:           cbor.IntDecConvertNone,
	}.DecMode()
	if err != nil {
		panic(err) // static options; cannot fail at run time
	}
	return dm
}()

// encMode encodes free-form values canonically (RFC 8949 §4.2.1), so the
// same value always yields the same bytes and golden vectors stay stable.
var encMode = func() cbor.EncMode {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return em
}()

// Marshal encodes v canonically. Use it for request arguments, results and
// event values.
func Marshal(v any) ([]byte, error) { return encMode.Marshal(v) }

// Unmarshal decodes b into v with the wire limits.
func Unmarshal(b []byte, v any) error { return decMode.Unmarshal(b, v) }

// CBOR major types.
const (
	majorUint  = 0
	majorNeg   = 1
	majorBytes = 2
	majorText  = 3
	majorArray = 4
	majorMap   = 5
)

// appendHead appends a CBOR head with the shortest argument encoding.
func appendHead(dst []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(dst, m|byte(n))
	case n <= 0xff:
		return append(dst, m|24, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, m|25), uint16(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(dst, m|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, m|27), n)
}

func appendUint(dst []byte, n uint64) []byte { return appendHead(dst, majorUint, n) }

func appendText(dst []byte, s string) []byte {
	return append(appendHead(dst, majorText, uint64(len(s))), s...)
}

func appendBytes(dst, p []byte) []byte {
	return append(appendHead(dst, majorBytes, uint64(len(p))), p...)
}

// appendRaw appends an already-encoded CBOR item, or null when it is empty.
func appendRaw(dst []byte, raw []byte) []byte {
	if len(raw) == 0 {
		return append(dst, 0xf6)
	}
	return append(dst, raw...)
}

// headLen is the size of a CBOR head whose argument is n.
func headLen(n uint64) int {
	switch {
	case n < 24:
		return 1
	case n <= 0xff:
		return 2
	case n <= 0xffff:
		return 3
	case n <= 0xffffffff:
		return 5
	}
	return 9
}

// readHead decodes the head at the start of b. It only accepts definite
// lengths and never reads past b.
func readHead(b []byte) (major byte, arg uint64, n int, err error) {
	if len(b) == 0 {
		return 0, 0, 0, ErrTruncated
	}
	major = b[0] >> 5
	info := b[0] & 0x1f
	switch {
	case info < 24:
		return major, uint64(info), 1, nil
	case info == 24:
		if len(b) < 2 {
			return 0, 0, 0, ErrTruncated
		}
		return major, uint64(b[1]), 2, nil
	case info == 25:
		if len(b) < 3 {
			return 0, 0, 0, ErrTruncated
		}
		return major, uint64(binary.BigEndian.Uint16(b[1:])), 3, nil
	case info == 26:
		if len(b) < 5 {
			return 0, 0, 0, ErrTruncated
		}
		return major, uint64(binary.BigEndian.Uint32(b[1:])), 5, nil
	case info == 27:
		if len(b) < 9 {
			return 0, 0, 0, ErrTruncated
		}
		return major, binary.BigEndian.Uint64(b[1:]), 9, nil
	}
	return 0, 0, 0, ErrMalformed
}

// field readers: each takes one complete encoded item.

func fieldUint(raw []byte, max uint64, name string) (uint64, error) {
	major, v, n, err := readHead(raw)
	if err != nil || major != majorUint || n != len(raw) {
		return 0, fmt.Errorf("%w: %s is not an unsigned integer", ErrMalformed, name)
	}
	if v > max {
		return 0, fmt.Errorf("%w: %s %d out of range", ErrMalformed, name, v)
	}
	return v, nil
}

func fieldString(raw []byte, major byte, limit int, name string) ([]byte, error) {
	m, l, n, err := readHead(raw)
	if err != nil || m != major || uint64(len(raw)-n) != l {
		return nil, fmt.Errorf("%w: %s has the wrong type", ErrMalformed, name)
	}
	if l > uint64(limit) {
		return nil, fmt.Errorf("%w: %s too long (%d bytes)", ErrMalformed, name, l)
	}
	return raw[n:], nil
}

func fieldText(raw []byte, name string) (string, error) {
	b, err := fieldString(raw, majorText, maxText, name)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("%w: %s is not valid UTF-8", ErrMalformed, name)
	}
	return string(b), nil
}

func fieldBytes(raw []byte, name string) ([]byte, error) {
	b, err := fieldString(raw, majorBytes, maxMessageSize, name)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), b...), nil
}
