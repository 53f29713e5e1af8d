package sniff

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"
)

func TestDecodeValue(t *testing.T) {
	tests := []struct {
		in         string // hex
		seed       bool
		diag, json string
		err        error
	}{
		{"00", false, "0", "0", nil},
		{"1b ffffffffffffffff", false, "18446744073709551615", "18446744073709551615", nil},
		{"38 3c", false, "-61", "-61", nil},
		{"3b ffffffffffffffff", false, "-18446744073709551616", "-18446744073709551616", nil},
		{"3b 8000000000000000", false, "-9223372036854775809", "-9223372036854775809", nil},
		{"43 00c0ff", false, "h'00c0ff'", `{"len":3,"hex":"00c0ff","ascii":"..."}`, nil},
		{"51 000102030405060708090a0b0c0d0e0f10", false, "h'000102030405060708090a0b0c0d0e0f…'(17)",
			`{"len":17,"hex":"000102030405060708090a0b0c0d0e0f","ascii":"................","truncated":true}`, nil},
		{"63 616263", false, `"abc"`, `"abc"`, nil},
		{"83 01 f5 f6", false, "[1, true, null]", "[1,true,null]", nil},
		{"a2 01 61 61 62 6f 70 80", false, `{1: "a", "op": []}`, `{"1":"a","op":[]}`, nil},
		{"c2 41 01", false, "2(h'01')", `{"tag":2,"value":{"len":1,"hex":"01","ascii":"."}}`, nil},
		{"c2 69 3132372e302e302e31 18 50", true, `["127.0.0.1", 80]`, `["127.0.0.1",80]`, nil},
		{"f9 3e00", false, "1.5", "1.5", nil},
		{"f9 7c00", false, "Infinity", `"Infinity"`, nil},
		{"fa 7fc00000", false, "NaN", `"NaN"`, nil},
		{"fb 4000000000000000", false, "2.0", "2", nil},
		{"f7", false, "undefined", `"undefined"`, nil},
		{"f8 ff", false, "simple(255)", `"simple(255)"`, nil},
		{"f8 10", false, "", "", errReserved},
		{"ff", false, "", "", errReserved},
		{"5f 41 00 ff", false, "", "", errIndefinite},
		{"84 01", false, "", "", errTruncated},
		{"5a ffffffff 00", false, "", "", errTruncated},
		{"9b ffffffffffffffff", false, "", "", errTruncated},
		{"bb ffffffffffffffff", false, "", "", errTruncated},
		{"1c", false, "", "", errReserved},
		{"", false, "", "", errTruncated},
	}
	for _, tt := range tests {
		b, err := hex.DecodeString(stripSpaces(tt.in))
		if err != nil {
			t.Fatal(err)
		}
		v, n, err := decodeValue(b, tt.seed)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("%s: error %v, want %v", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || n != len(b) {
			t.Errorf("%s: %v, took %d of %d bytes", tt.in, err, n, len(b))
			continue
		}
		if got := Diag(v); got != tt.diag {
			t.Errorf("%s: diag %s, want %s", tt.in, got, tt.diag)
		}
		j, err := json.Marshal(v)
		if err != nil || string(j) != tt.json {
			t.Errorf("%s: JSON %s (%v), want %s", tt.in, j, err, tt.json)
		}
	}
}

func stripSpaces(s string) string {
	out := make([]byte, 0, len(s))
	for i := range len(s) {
		if s[i] != ' ' {
			out = append(out, s[i])
		}
	}
	return string(out)
}

func TestDecodeValueLimits(t *testing.T) {
	deep := make([]byte, 0, 100)
	for range 100 {
		deep = append(deep, 0x81)
	}
	deep = append(deep, 0)
	if _, _, err := decodeValue(deep, false); !errors.Is(err, errTooDeep) {
		t.Errorf("100 nested arrays: %v", err)
	}
	many := []byte{0x9a, 0, 0, 0x20, 0} // array of 8192
	for range 8192 {
		many = append(many, 0)
	}
	if _, _, err := decodeValue(many, false); !errors.Is(err, errTooMany) {
		t.Errorf("8192 items: %v", err)
	}
	if errReason(errTooMany) != "too_many_items" || errReason(errors.New("x")) != "malformed" {
		t.Error("errReason")
	}
}

func TestHalfFloat(t *testing.T) {
	for h, want := range map[uint16]float64{0x0000: 0, 0x3c00: 1, 0xc000: -2, 0x0001: 5.960464477539063e-8, 0x7bff: 65504} {
		if got := halfToFloat(h); got != want {
			t.Errorf("half %#04x = %v, want %v", h, got, want)
		}
	}
}
