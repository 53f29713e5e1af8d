package seedv3

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeSeedTuple(t *testing.T) {
	// The reference's example: ("127.0.0.1", 80) inside a dns result.
	in := "\xc2\x69127.0.0.1\x18\x50"
	v, err := Decode([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []any{"127.0.0.1", int64(80)}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("Decode = %#v, want %#v", v, want)
	}
	// Append writes a Tuple the same way.
	b, err := Append(nil, Tuple{"127.0.0.1", 80})
	if err != nil || string(b) != in {
		t.Fatalf("Append(Tuple) = %x, %v; want %x", b, err, in)
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want any
	}{
		{"uint0", "\x00", int64(0)},
		{"uint23", "\x17", int64(23)},
		{"uint24", "\x18\x18", int64(24)},
		{"uint16", "\x19\x03\xe8", int64(1000)},
		{"uint32", "\x1a\x00\x0f\x42\x40", int64(1000000)},
		{"uint64", "\x1b\x00\x00\x00\xe8\xd4\xa5\x10\x00", int64(1000000000000)},
		{"uint64_max", "\x1b\xff\xff\xff\xff\xff\xff\xff\xff", uint64(math.MaxUint64)},
		{"neg1", "\x20", int64(-1)},
		{"neg1000", "\x39\x03\xe7", int64(-1000)},
		{"neg_min", "\x3b\x7f\xff\xff\xff\xff\xff\xff\xff", int64(math.MinInt64)},
		{"bytes", "\x44\x01\x02\x03\x04", []byte{1, 2, 3, 4}},
		{"bytes_empty", "\x40", []byte{}},
		{"text", "\x64IETF", "IETF"},
		{"text_utf8", "\x62\xc3\xbc", "ü"},
		{"array", "\x83\x01\x02\x03", []any{int64(1), int64(2), int64(3)}},
		{"nested", "\x82\x01\x82\x02\x03", []any{int64(1), []any{int64(2), int64(3)}}},
		{"tuple_in_list", "\x81\xc5\x02\x01\x06\x60\xc2\x69127.0.0.1\x18\x50",
			[]any{[]any{int64(2), int64(1), int64(6), "", []any{"127.0.0.1", int64(80)}}}},
		{"map_text", "\xa2\x62ok\xf5\x66result\xa1\x63sid\x01",
			map[string]any{"ok": true, "result": map[string]any{"sid": int64(1)}}},
		{"map_empty", "\xa0", map[string]any{}},
		{"map_int_keys", "\xa2\x01\x02\x63key\x04", map[any]any{int64(1): int64(2), "key": int64(4)}},
		{"false", "\xf4", false},
		{"true", "\xf5", true},
		{"null", "\xf6", nil},
		{"float64", "\xfb\x3f\xf1\x99\x99\x99\x99\x99\x9a", 1.1},
		{"float64_neg0", "\xfb\x80\x00\x00\x00\x00\x00\x00\x00", math.Copysign(0, -1)},
		{"ping_result", "\xa3\x64pong\xf5\x64t_ms\x19\x30\x39\x64echo\x60",
			map[string]any{"pong": true, "t_ms": int64(12345), "echo": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Decode([]byte(tt.in))
			if err != nil {
				t.Fatalf("Decode(%x): %v", tt.in, err)
			}
			if !reflect.DeepEqual(v, tt.want) {
				t.Fatalf("Decode(%x) = %#v, want %#v", tt.in, v, tt.want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	deep := strings.Repeat("\x81", maxDepth+2) + "\x00"
	tests := []struct {
		name, in, reason string
	}{
		{"empty", "", reasonTruncated},
		{"truncated_arg", "\x19\x01", reasonTruncated},
		{"truncated_bytes", "\x45\x01\x02", reasonTruncated},
		{"huge_bytes", "\x5b\x7f\xff\xff\xff\xff\xff\xff\xff", reasonTruncated},
		{"huge_array", "\x9b\x7f\xff\xff\xff\xff\xff\xff\xff\x00", reasonTruncated},
		{"huge_tuple", "\xdb\xff\xff\xff\xff\xff\xff\xff\xff", reasonTruncated},
		{"huge_map", "\xbb\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00", reasonTruncated},
		{"indefinite_array", "\x9f\x01\xff", reasonIndefinite},
		{"indefinite_bytes", "\x5f\x41\x01\xff", reasonIndefinite},
		{"break", "\xff", reasonIndefinite},
		{"reserved_ai", "\x1c", reasonReserved},
		{"half_float", "\xf9\x3c\x00", reasonUnsupported},
		{"single_float", "\xfa\x3f\x80\x00\x00", reasonUnsupported},
		{"undefined", "\xf7", reasonUnsupported},
		{"simple", "\xf8\x20", reasonUnsupported},
		{"nan", "\xfb\x7f\xf8\x00\x00\x00\x00\x00\x00", reasonBadFloat},
		{"inf", "\xfb\x7f\xf0\x00\x00\x00\x00\x00\x00", reasonBadFloat},
		{"neg_too_small", "\x3b\xff\xff\xff\xff\xff\xff\xff\xff", reasonIntRange},
		{"array_key", "\xa1\x80\x01", reasonBadKey},
		{"bytes_key", "\xa1\x41\x00\x01", reasonBadKey},
		{"dup_key", "\xa2\x61a\x01\x61a\x02", reasonDupKey},
		{"dup_int_key", "\xa2\x01\x01\x01\x02", reasonDupKey},
		{"trailing", "\x01\x02", reasonTrailing},
		{"too_deep", deep, reasonTooDeep},
		{"truncated_in_map", "\xa1\x61a", reasonTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Decode([]byte(tt.in))
			if err == nil {
				t.Fatalf("Decode(%x) = %#v, want error %s", tt.in, v, tt.reason)
			}
			if !errors.Is(err, ErrCBOR) || cborReason(err) != tt.reason {
				t.Fatalf("Decode(%x): %v (reason %q), want %q", tt.in, err, cborReason(err), tt.reason)
			}
		})
	}
}

func TestDecodeTooMany(t *testing.T) {
	// 70000 items in nested arrays of 65535: over maxItems.
	in := []byte{0x82, 0x99, 0xff, 0xff}
	for range 0xffff {
		in = append(in, 0x00)
	}
	in = append(in, 0x99, 0x11, 0x70)
	for range 0x1170 {
		in = append(in, 0x00)
	}
	if _, err := Decode(in); cborReason(err) != reasonTooMany {
		t.Fatalf("Decode: %v, want %s", err, reasonTooMany)
	}
}

func TestAppend(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"request", map[string]any{"op": "ping", "args": map[string]any{}},
			"\xa2\x64args\xa0\x62op\x64ping"},
		{"ints", []any{0, 23, 24, 255, 256, 65536, int64(1) << 32, -1, -25, uint16(7)},
			"\x8a\x00\x17\x18\x18\x18\xff\x19\x01\x00\x1a\x00\x01\x00\x00\x1b\x00\x00\x00\x01\x00\x00\x00\x00\x20\x38\x18\x07"},
		{"float_is_64bit", 1.5, "\xfb\x3f\xf8\x00\x00\x00\x00\x00\x00"},
		{"float32_widened", float32(1.5), "\xfb\x3f\xf8\x00\x00\x00\x00\x00\x00"},
		{"bytes", []byte("ab"), "\x42ab"},
		{"null_bool", []any{nil, true, false}, "\x83\xf6\xf5\xf4"},
		{"strings", []string{"a"}, "\x81\x61a"},
		{"int_key_map", map[any]any{1: "x"}, "\xa1\x01\x61x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Append(nil, tt.in)
			if err != nil || string(b) != tt.want {
				t.Fatalf("Append = %x, %v; want %x", b, err, tt.want)
			}
		})
	}
	for _, bad := range []any{math.NaN(), math.Inf(1), struct{}{}, map[any]any{1.5: 1}, []int{1}} {
		if _, err := Append(nil, bad); !errors.Is(err, ErrCBOR) {
			t.Errorf("Append(%#v): %v, want an ErrCBOR", bad, err)
		}
	}
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	if _, err := Append(nil, cyclic); cborReason(err) != reasonTooDeep {
		t.Errorf("Append(cyclic): %v, want too_deep", err)
	}
}

// normalize turns what Append accepts into what Decode returns.
func TestAppendDecodeRoundTrip(t *testing.T) {
	v := map[string]any{
		"ok": true,
		"result": []any{
			Tuple{int64(2), int64(1), int64(0), "", Tuple{"10.0.0.1", int64(443)}},
			map[string]any{"data": []byte{0xc0, 0xdb}, "n": int64(2), "eof": false, "f": -2.25},
			nil,
		},
	}
	b, err := Append(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"ok": true,
		"result": []any{
			[]any{int64(2), int64(1), int64(0), "", []any{"10.0.0.1", int64(443)}},
			map[string]any{"data": []byte{0xc0, 0xdb}, "n": int64(2), "eof": false, "f": -2.25},
			nil,
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip = %#v\nwant %#v", got, want)
	}
}

// FuzzDecode checks that no input makes Decode panic or misbehave, and that
// what it accepts survives Append and a second Decode unchanged.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"\xc2\x69127.0.0.1\x18\x50",
		"\xa2\x62ok\xf5\x66result\xa1\x63sid\x01",
		"\xa3\x62ok\xf4\x65error\x6bdns_error\x66detail\x64-202",
		"\x81\xc5\x02\x01\x06\x60\xc2\x69127.0.0.1\x18\x50",
		"\xa2\x01\x02\x63key\x04",
		"\xfb\x3f\xf1\x99\x99\x99\x99\x99\x9a",
		"\x9f\x01\xff",
		"\xdb\xff\xff\xff\xff\xff\xff\xff\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := Decode(in)
		if err != nil {
			if !errors.Is(err, ErrCBOR) {
				t.Fatalf("error %v does not match ErrCBOR", err)
			}
			return
		}
		b, err := Append(nil, v)
		if err != nil {
			t.Fatalf("Append of a decoded value: %v", err)
		}
		v2, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode of a re-encoded value: %v", err)
		}
		if !reflect.DeepEqual(v, v2) {
			t.Fatalf("round trip changed %#v into %#v", v, v2)
		}
	})
}

func TestFuzzCorpusPresent(t *testing.T) {
	m, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzDecode", "*"))
	if len(m) == 0 {
		t.Fatal("no seed corpus in testdata/fuzz/FuzzDecode")
	}
	for _, p := range m {
		if b, err := os.ReadFile(p); err != nil || !strings.HasPrefix(string(b), "go test fuzz v1") {
			t.Errorf("%s: not a fuzz corpus file", p)
		}
	}
}
