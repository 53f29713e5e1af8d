package seedv3

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// The seed's CBOR dialect (shared/reference/seed-v3-wire-format.md, "CBOR
// dialect"; docs/protocol.md §14.3): RFC 8949 with definite lengths only,
// except that major type 6, which RFC 8949 uses for tags, announces a
// tuple: an array of as many items as its argument says. Floats are 64-bit
// only; half- and single-precision floats, NaN, the infinities, tags,
// undefined and the other simple values do not occur.

// Decoding limits. Every item takes at least one byte of input, so the
// counts never exceed len(p); the limits bound the recursion and what one
// RESP can make us allocate.
const (
	maxDepth = 32      // nesting of arrays, tuples and maps
	maxItems = 1 << 16 // items in one document
)

// ErrCBOR matches (with errors.Is) every error of Decode and Append.
var ErrCBOR = errors.New("seedv3: cbor")

// CBOR error reasons, the tokens of Stats.BadFrames and log lines.
const (
	reasonTruncated   = "truncated"
	reasonIndefinite  = "indefinite_length"
	reasonTooDeep     = "too_deep"
	reasonTooMany     = "too_many_items"
	reasonReserved    = "reserved"
	reasonUnsupported = "unsupported"
	reasonBadFloat    = "bad_float"
	reasonIntRange    = "int_range"
	reasonBadKey      = "bad_key"
	reasonDupKey      = "duplicate_key"
	reasonTrailing    = "trailing_bytes"
)

// cborError is an error of the decoder or encoder with a short reason.
type cborError struct {
	reason string
	detail string
}

func (e *cborError) Error() string {
	if e.detail != "" {
		return "seedv3: cbor: " + e.reason + ": " + e.detail
	}
	return "seedv3: cbor: " + e.reason
}

// Is makes every cborError match ErrCBOR.
func (e *cborError) Is(target error) bool { return target == ErrCBOR }

func cborErr(reason string) error { return &cborError{reason: reason} }

// cborReason returns the reason token of a Decode error, or "malformed".
func cborReason(err error) string {
	var ce *cborError
	if errors.As(err, &ce) {
		return ce.reason
	}
	return "malformed"
}

// Tuple is a Python tuple: Append writes it with major type 6, as the seed
// does, and Decode returns tuples as plain []any.
type Tuple []any

// Decode decodes one CBOR item in the seed dialect, which must fill p.
//
// Types: unsigned and negative integers become int64 (uint64 above
// math.MaxInt64; negative integers below math.MinInt64 are an error), byte
// strings []byte (copied), text strings string, arrays and tuples []any,
// maps map[string]any when every key is text (also the empty map) and
// map[any]any otherwise (keys must be integers, text, bools, null or
// floats; duplicate keys are an error), false/true bool, null nil, and
// 64-bit floats float64 (NaN and the infinities are an error). Indefinite
// lengths, tags outside the tuple reading, half- and single-precision
// floats and other simple values are errors.
//
// Decode never panics; nesting is limited to 32 levels and a document to
// 65536 items, and it allocates at most a small multiple of len(p).
// Errors match ErrCBOR.
func Decode(p []byte) (any, error) {
	d := decoder{b: p}
	v, err := d.item(0)
	if err != nil {
		return nil, err
	}
	if d.off != len(p) {
		return nil, cborErr(reasonTrailing)
	}
	return v, nil
}

type decoder struct {
	b     []byte
	off   int
	items int
}

// head reads an initial byte and its argument.
func (d *decoder) head() (major, ai byte, arg uint64, err error) {
	if d.off >= len(d.b) {
		return 0, 0, 0, cborErr(reasonTruncated)
	}
	ib := d.b[d.off]
	d.off++
	major, ai = ib>>5, ib&0x1f
	switch {
	case ai < 24:
		return major, ai, uint64(ai), nil
	case ai <= 27:
		n := 1 << (ai - 24)
		if len(d.b)-d.off < n {
			return 0, 0, 0, cborErr(reasonTruncated)
		}
		for _, c := range d.b[d.off : d.off+n] {
			arg = arg<<8 | uint64(c)
		}
		d.off += n
		return major, ai, arg, nil
	case ai == 31:
		return major, ai, 0, cborErr(reasonIndefinite)
	}
	return major, ai, 0, cborErr(reasonReserved)
}

func (d *decoder) item(depth int) (any, error) {
	if depth > maxDepth {
		return nil, cborErr(reasonTooDeep)
	}
	if d.items++; d.items > maxItems {
		return nil, cborErr(reasonTooMany)
	}
	major, ai, arg, err := d.head()
	if err != nil {
		return nil, err
	}
	switch major {
	case 0:
		if arg <= math.MaxInt64 {
			return int64(arg), nil
		}
		return arg, nil
	case 1:
		if arg > math.MaxInt64 {
			return nil, cborErr(reasonIntRange)
		}
		return -1 - int64(arg), nil
	case 2, 3:
		if arg > uint64(len(d.b)-d.off) {
			return nil, cborErr(reasonTruncated)
		}
		s := d.b[d.off : d.off+int(arg)]
		d.off += int(arg)
		if major == 2 {
			return slices.Clone(s[:len(s):len(s)]), nil
		}
		return string(s), nil
	case 4, 6: // 6: the seed's tuple
		return d.array(arg, depth)
	case 5:
		return d.dict(arg, depth)
	}
	// Major type 7.
	switch ai {
	case 20:
		return false, nil
	case 21:
		return true, nil
	case 22:
		return nil, nil
	case 27:
		f := math.Float64frombits(arg)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, cborErr(reasonBadFloat)
		}
		return f, nil
	}
	return nil, cborErr(reasonUnsupported)
}

func (d *decoder) array(n uint64, depth int) (any, error) {
	// Each item takes at least one byte: bound the allocation by the input.
	if n > uint64(len(d.b)-d.off) {
		return nil, cborErr(reasonTruncated)
	}
	a := make([]any, 0, n)
	for range n {
		v, err := d.item(depth + 1)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
	}
	return a, nil
}

func (d *decoder) dict(n uint64, depth int) (any, error) {
	// Each pair takes at least two bytes.
	if n > uint64(len(d.b)-d.off)/2 {
		return nil, cborErr(reasonTruncated)
	}
	keys := make([]any, 0, n)
	vals := make([]any, 0, n)
	text := true
	for range n {
		k, err := d.item(depth + 1)
		if err != nil {
			return nil, err
		}
		switch k.(type) {
		case string:
		case int64, uint64, bool, nil, float64:
			text = false
		default:
			return nil, cborErr(reasonBadKey)
		}
		v, err := d.item(depth + 1)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
		vals = append(vals, v)
	}
	if text {
		m := make(map[string]any, n)
		for i, k := range keys {
			s := k.(string)
			if _, dup := m[s]; dup {
				return nil, cborErr(reasonDupKey)
			}
			m[s] = vals[i]
		}
		return m, nil
	}
	m := make(map[any]any, n)
	for i, k := range keys {
		if _, dup := m[k]; dup {
			return nil, cborErr(reasonDupKey)
		}
		m[k] = vals[i]
	}
	return m, nil
}

// Append appends the seed-dialect encoding of v to dst. It accepts nil,
// bool, the integer types, float32/float64 (written as 64-bit floats; NaN
// and the infinities are refused, as the seed cannot carry them), string,
// []byte, []any, []string, Tuple (major type 6), map[string]any (keys in
// sorted order, so the bytes are reproducible) and map[any]any with
// integer, text, bool or nil keys. Anything else is an error matching
// ErrCBOR: the seed firmware dies on types it cannot handle, so nothing
// exotic is ever sent.
func Append(dst []byte, v any) ([]byte, error) {
	return appendItem(dst, v, 0)
}

func appendHead(dst []byte, major byte, arg uint64) []byte {
	m := major << 5
	switch {
	case arg < 24:
		return append(dst, m|byte(arg))
	case arg <= math.MaxUint8:
		return append(dst, m|24, byte(arg))
	case arg <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, m|25), uint16(arg))
	case arg <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, m|26), uint32(arg))
	}
	return binary.BigEndian.AppendUint64(append(dst, m|27), arg)
}

func appendInt(dst []byte, v int64) []byte {
	if v < 0 {
		return appendHead(dst, 1, uint64(-1-v))
	}
	return appendHead(dst, 0, uint64(v))
}

func appendItem(dst []byte, v any, depth int) ([]byte, error) {
	if depth > maxDepth {
		return dst, cborErr(reasonTooDeep)
	}
	switch v := v.(type) {
	case nil:
		return append(dst, 0xf6), nil
	case bool:
		if v {
			return append(dst, 0xf5), nil
		}
		return append(dst, 0xf4), nil
	case int:
		return appendInt(dst, int64(v)), nil
	case int8:
		return appendInt(dst, int64(v)), nil
	case int16:
		return appendInt(dst, int64(v)), nil
	case int32:
		return appendInt(dst, int64(v)), nil
	case int64:
		return appendInt(dst, v), nil
	case uint:
		return appendHead(dst, 0, uint64(v)), nil
	case uint8:
		return appendHead(dst, 0, uint64(v)), nil
	case uint16:
		return appendHead(dst, 0, uint64(v)), nil
	case uint32:
		return appendHead(dst, 0, uint64(v)), nil
	case uint64:
		return appendHead(dst, 0, v), nil
	case float32:
		return appendItem(dst, float64(v), depth)
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return dst, cborErr(reasonBadFloat)
		}
		return binary.BigEndian.AppendUint64(append(dst, 0xfb), math.Float64bits(v)), nil
	case string:
		return append(appendHead(dst, 3, uint64(len(v))), v...), nil
	case []byte:
		return append(appendHead(dst, 2, uint64(len(v))), v...), nil
	case []string:
		dst = appendHead(dst, 4, uint64(len(v)))
		for _, s := range v {
			dst = append(appendHead(dst, 3, uint64(len(s))), s...)
		}
		return dst, nil
	case []any:
		return appendSeq(dst, 4, v, depth)
	case Tuple:
		return appendSeq(dst, 6, v, depth)
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = appendHead(dst, 5, uint64(len(v)))
		var err error
		for _, k := range keys {
			dst = append(appendHead(dst, 3, uint64(len(k))), k...)
			if dst, err = appendItem(dst, v[k], depth+1); err != nil {
				return dst, err
			}
		}
		return dst, nil
	case map[any]any:
		dst = appendHead(dst, 5, uint64(len(v)))
		var err error
		for k, x := range v {
			switch k.(type) {
			case string, int, int64, uint64, bool, nil:
			default:
				return dst, &cborError{reason: reasonBadKey, detail: fmt.Sprintf("%T", k)}
			}
			if dst, err = appendItem(dst, k, depth+1); err != nil {
				return dst, err
			}
			if dst, err = appendItem(dst, x, depth+1); err != nil {
				return dst, err
			}
		}
		return dst, nil
	}
	return dst, &cborError{reason: reasonUnsupported, detail: fmt.Sprintf("%T", v)}
}

func appendSeq(dst []byte, major byte, v []any, depth int) ([]byte, error) {
	dst = appendHead(dst, major, uint64(len(v)))
	var err error
	for _, x := range v {
		if dst, err = appendItem(dst, x, depth+1); err != nil {
			return dst, err
		}
	}
	return dst, nil
}
