package sniff

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// A generic CBOR decoder for what sniff shows but package message does not
// interpret: request arguments and results, event values, HELLO maps that
// fail their checks, unknown messages and seed v3 payloads. It accepts all
// of RFC 8949 with definite lengths and, for seed frames, the seed's dialect
// in which major type 6 (a tag) announces a tuple: an array of that many
// items (shared/reference/seed-v3-wire-format.md). Depth and item count are
// bounded, so no input can make it recurse or allocate without limit.

// CBOR decoding limits.
const (
	maxDepth = 16
	maxItems = 4096
)

// PreviewLen is how many bytes of a byte string String and MarshalJSON show.
const PreviewLen = 16

// Errors of the CBOR decoder, with reason tokens for Event.PayloadErr.
var (
	errTruncated  = errors.New("truncated")
	errIndefinite = errors.New("indefinite_length")
	errTooDeep    = errors.New("too_deep")
	errTooMany    = errors.New("too_many_items")
	errReserved   = errors.New("reserved_value")
)

// Bytes is a CBOR byte string. String and MarshalJSON show its length and
// the first PreviewLen bytes.
type Bytes []byte

// Hex returns the first PreviewLen bytes in hex.
func (b Bytes) Hex() string { return hex.EncodeToString(b[:min(len(b), PreviewLen)]) }

// ASCII returns the first PreviewLen bytes with bytes outside printable
// ASCII shown as '.'.
func (b Bytes) ASCII() string {
	p := b[:min(len(b), PreviewLen)]
	out := make([]byte, len(p))
	for i, c := range p {
		if c < 0x20 || c > 0x7e {
			c = '.'
		}
		out[i] = c
	}
	return string(out)
}

// Truncated reports whether the preview leaves bytes out.
func (b Bytes) Truncated() bool { return len(b) > PreviewLen }

// String returns the diagnostic notation of b, cut after PreviewLen bytes:
// h'00c0ff' or h'000102…'(2038).
func (b Bytes) String() string {
	if b.Truncated() {
		return "h'" + b.Hex() + "…'(" + strconv.Itoa(len(b)) + ")"
	}
	return "h'" + b.Hex() + "'"
}

// MarshalJSON returns {"len": n, "hex": …, "ascii": …}, with "truncated":
// true when the preview leaves bytes out.
func (b Bytes) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Len       int    `json:"len"`
		Hex       string `json:"hex"`
		ASCII     string `json:"ascii"`
		Truncated bool   `json:"truncated,omitempty"`
	}{len(b), b.Hex(), b.ASCII(), b.Truncated()})
}

// Pair is one key and value of a Map.
type Pair struct {
	Key, Value any
}

// Map is a CBOR map with its pairs in the order they came.
type Map []Pair

// String returns the diagnostic notation: {1: "a", "op": "ping"}.
func (m Map) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, p := range m {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(Diag(p.Key))
		b.WriteString(": ")
		b.WriteString(Diag(p.Value))
	}
	b.WriteByte('}')
	return b.String()
}

// MarshalJSON returns an object; keys that are not text are written in
// diagnostic notation ("1", "h'00'").
func (m Map) MarshalJSON() ([]byte, error) {
	var b []byte
	b = append(b, '{')
	for i, p := range m {
		if i > 0 {
			b = append(b, ',')
		}
		k, ok := p.Key.(string)
		if !ok {
			k = Diag(p.Key)
		}
		kj, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		vj, err := json.Marshal(p.Value)
		if err != nil {
			return nil, err
		}
		b = append(append(append(b, kj...), ':'), vj...)
	}
	return append(b, '}'), nil
}

// Get returns the value for the text key k.
func (m Map) Get(k string) (any, bool) {
	for _, p := range m {
		if s, ok := p.Key.(string); ok && s == k {
			return p.Value, true
		}
	}
	return nil, false
}

// Tag is a tagged CBOR item (major type 6) outside the seed dialect.
type Tag struct {
	Number  uint64 `json:"tag"`
	Content any    `json:"value"`
}

// String returns the diagnostic notation: 2(h'01').
func (t Tag) String() string { return strconv.FormatUint(t.Number, 10) + "(" + Diag(t.Content) + ")" }

// Simple is a CBOR simple value other than false, true and null.
type Simple uint8

// String returns "undefined" or "simple(n)".
func (s Simple) String() string {
	if s == 23 {
		return "undefined"
	}
	return "simple(" + strconv.Itoa(int(s)) + ")"
}

// MarshalJSON writes the diagnostic notation as a string.
func (s Simple) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// Float is a CBOR floating-point value.
type Float float64

// String returns the diagnostic notation: 1.5, NaN, Infinity.
func (f Float) String() string {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "Infinity"
	case math.IsInf(v, -1):
		return "-Infinity"
	}
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	return s
}

// MarshalJSON writes a number, or a string for NaN and the infinities.
func (f Float) MarshalJSON() ([]byte, error) {
	if v := float64(f); math.IsNaN(v) || math.IsInf(v, 0) {
		return json.Marshal(f.String())
	}
	return json.Marshal(float64(f))
}

// NegInt is a negative CBOR integer below math.MinInt64: the value is
// −1 − n.
type NegInt uint64

// String returns the decimal value.
func (n NegInt) String() string {
	// −1 − n for n ≥ 2^63: print as "-" and n+1, which may need 65 bits.
	if n == math.MaxUint64 {
		return "-18446744073709551616"
	}
	return "-" + strconv.FormatUint(uint64(n)+1, 10)
}

// MarshalJSON writes the decimal value as a JSON number.
func (n NegInt) MarshalJSON() ([]byte, error) { return []byte(n.String()), nil }

// Diag renders a decoded value in CBOR diagnostic notation (RFC 8949 §8),
// with byte strings cut as in Bytes.String.
func Diag(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(v)
	case uint64:
		return strconv.FormatUint(v, 10)
	case int64:
		return strconv.FormatInt(v, 10)
	case string:
		return strconv.Quote(v)
	case []any:
		var b strings.Builder
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(Diag(e))
		}
		b.WriteByte(']')
		return b.String()
	case fmt.Stringer:
		return v.String()
	}
	return fmt.Sprint(v)
}

// decodeValue decodes the first CBOR item of b and returns it and the
// number of bytes it took. seed selects the seed dialect (tuples as major
// type 6).
func decodeValue(b []byte, seed bool) (any, int, error) {
	d := valueDecoder{b: b, seed: seed}
	v, err := d.item(0)
	return v, d.off, err
}

type valueDecoder struct {
	b     []byte
	off   int
	items int
	seed  bool
}

// head reads an initial byte and its argument.
func (d *valueDecoder) head() (major byte, ai byte, arg uint64, err error) {
	if d.off >= len(d.b) {
		return 0, 0, 0, errTruncated
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
			return 0, 0, 0, errTruncated
		}
		var v uint64
		for _, c := range d.b[d.off : d.off+n] {
			v = v<<8 | uint64(c)
		}
		d.off += n
		return major, ai, v, nil
	case ai == 31:
		return major, ai, 0, errIndefinite
	}
	return major, ai, 0, errReserved
}

func (d *valueDecoder) item(depth int) (any, error) {
	if depth > maxDepth {
		return nil, errTooDeep
	}
	if d.items++; d.items > maxItems {
		return nil, errTooMany
	}
	major, ai, arg, err := d.head()
	if err != nil {
		if major == 7 && ai == 31 {
			return nil, errReserved // a "break" outside an indefinite item
		}
		return nil, err
	}
	switch major {
	case 0:
		return arg, nil
	case 1:
		if arg <= math.MaxInt64 {
			return -1 - int64(arg), nil
		}
		return NegInt(arg), nil
	case 2, 3:
		if arg > uint64(len(d.b)-d.off) {
			return nil, errTruncated
		}
		s := d.b[d.off : d.off+int(arg)]
		d.off += int(arg)
		if major == 2 {
			return Bytes(append([]byte(nil), s...)), nil
		}
		return string(s), nil
	case 4:
		return d.array(arg, depth)
	case 5:
		// Each pair needs at least two bytes: bound the allocation.
		if arg > uint64(len(d.b)-d.off)/2 {
			return nil, errTruncated
		}
		m := make(Map, 0, arg)
		for range arg {
			k, err := d.item(depth + 1)
			if err != nil {
				return m, err
			}
			v, err := d.item(depth + 1)
			if err != nil {
				return m, err
			}
			m = append(m, Pair{k, v})
		}
		return m, nil
	case 6:
		if d.seed {
			return d.array(arg, depth)
		}
		c, err := d.item(depth + 1)
		return Tag{Number: arg, Content: c}, err
	}
	// Major type 7.
	switch ai {
	case 20:
		return false, nil
	case 21:
		return true, nil
	case 22:
		return nil, nil
	case 24:
		if arg < 32 {
			return nil, errReserved
		}
		return Simple(arg), nil
	case 25:
		return Float(halfToFloat(uint16(arg))), nil
	case 26:
		return Float(math.Float32frombits(uint32(arg))), nil
	case 27:
		return Float(math.Float64frombits(arg)), nil
	}
	return Simple(ai), nil // 0..19 and 23 (undefined)
}

func (d *valueDecoder) array(n uint64, depth int) (any, error) {
	// Each item needs at least one byte: bound the allocation.
	if n > uint64(len(d.b)-d.off) {
		return nil, errTruncated
	}
	a := make([]any, 0, n)
	for range n {
		v, err := d.item(depth + 1)
		if err != nil {
			return a, err
		}
		a = append(a, v)
	}
	return a, nil
}

// halfToFloat converts an IEEE 754 half-precision value.
func halfToFloat(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(frac, -24)
	case 31:
		if frac == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	}
	return sign * math.Ldexp(1024+frac, exp-25)
}

// errReason returns the reason token of a decoder error.
func errReason(err error) string {
	for _, e := range []error{errTruncated, errIndefinite, errTooDeep, errTooMany, errReserved} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return "malformed"
}
