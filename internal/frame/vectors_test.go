package frame

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"hash/crc32"
	"os"
	"testing"
)

// The vector files are shared with the firmware tests; their format is
// described in testdata/vectors/README.md.

type frameVector struct {
	Name       string `json:"name"`
	Meaning    string `json:"meaning"`
	MaxPayload int    `json:"max_payload"`
	InputHex   string `json:"input_hex"`
	Error      string `json:"error"`
	Header     *struct {
		Type  uint8  `json:"type"`
		Flags uint8  `json:"flags"`
		Seq   uint16 `json:"seq"`
		Ack   uint16 `json:"ack"`
		Sack  uint32 `json:"sack"`
	} `json:"header"`
	PayloadHex string `json:"payload_hex"`
	SLIPHex    string `json:"slip_hex"`
}

type v3Vector struct {
	Name     string `json:"name"`
	Meaning  string `json:"meaning"`
	InputHex string `json:"input_hex"`
	Error    string `json:"error"`
	Header   *struct {
		Type uint8  `json:"type"`
		Seq  uint16 `json:"seq"`
	} `json:"header"`
	PayloadHex string `json:"payload_hex"`
	SLIPHex    string `json:"slip_hex"`
}

type crcVector struct {
	Name      string `json:"name"`
	Algorithm string `json:"algorithm"`
	Meaning   string `json:"meaning"`
	InputHex  string `json:"input_hex"`
	Value     uint32 `json:"value"`
}

func loadVectors[T any](t *testing.T, name string) []T {
	t.Helper()
	data, err := os.ReadFile("../../testdata/vectors/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var v []T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(v) == 0 {
		t.Fatalf("%s: no vectors", name)
	}
	return v
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestFrameVectors(t *testing.T) {
	reasons := map[string]bool{}
	for _, v := range loadVectors[frameVector](t, "frame.json") {
		t.Run(v.Name, func(t *testing.T) {
			in := unhex(t, v.InputHex)
			h, p, err := Parse(in, v.MaxPayload)
			if got := Reason(err); got != v.Error {
				t.Fatalf("%s\nParse(%x) reason %q, want %q", v.Meaning, in, got, v.Error)
			}
			reasons[v.Error] = true
			if v.Error != "" {
				return
			}
			if v.Header == nil {
				t.Fatal("valid vector without header")
			}
			want := Header{Type: Type(v.Header.Type), Flags: v.Header.Flags, Seq: v.Header.Seq, Ack: v.Header.Ack, Sack: v.Header.Sack}
			payload := unhex(t, v.PayloadHex)
			if h != want || !bytes.Equal(p, payload) {
				t.Errorf("%s\nParse = %+v %x, want %+v %x", v.Meaning, h, p, want, payload)
			}
			if enc := Append(nil, want, payload); !bytes.Equal(enc, in) {
				t.Errorf("%s\nAppend = %x, want %x", v.Meaning, enc, in)
			}
		})
	}
	for _, r := range []string{"short", "bad_version", "bad_type", "crc", "too_long", "bad_length"} {
		if !reasons[r] {
			t.Errorf("frame.json has no vector for reason %q", r)
		}
	}
}

func TestFrameV3Vectors(t *testing.T) {
	reasons := map[string]bool{}
	for _, v := range loadVectors[v3Vector](t, "frame_v3.json") {
		t.Run(v.Name, func(t *testing.T) {
			in := unhex(t, v.InputHex)
			h, p, err := ParseV3(in)
			if got := Reason(err); got != v.Error {
				t.Fatalf("%s\nParseV3(%x) reason %q, want %q", v.Meaning, in, got, v.Error)
			}
			reasons[v.Error] = true
			if v.Error != "" {
				return
			}
			if v.Header == nil {
				t.Fatal("valid vector without header")
			}
			want := V3Header{Type: V3Type(v.Header.Type), Seq: v.Header.Seq}
			payload := unhex(t, v.PayloadHex)
			if h != want || !bytes.Equal(p, payload) {
				t.Errorf("%s\nParseV3 = %+v %x, want %+v %x", v.Meaning, h, p, want, payload)
			}
			if enc := AppendV3(nil, want, payload); !bytes.Equal(enc, in) {
				t.Errorf("%s\nAppendV3 = %x, want %x", v.Meaning, enc, in)
			}
		})
	}
	for _, r := range []string{"short", "bad_version", "bad_length", "crc", "bad_type"} {
		if !reasons[r] {
			t.Errorf("frame_v3.json has no vector for reason %q", r)
		}
	}
}

// TestSLIPHex checks the slip_hex field of the frame vectors, which the
// firmware tests use end to end, without importing the slip package: every
// C0 and DB is escaped and the frame is wrapped in C0.
func TestSLIPHex(t *testing.T) {
	check := func(name, inputHex, slipHex string) {
		in := unhex(t, inputHex)
		want := []byte{0xC0}
		for _, c := range in {
			switch c {
			case 0xC0:
				want = append(want, 0xDB, 0xDC)
			case 0xDB:
				want = append(want, 0xDB, 0xDD)
			default:
				want = append(want, c)
			}
		}
		want = append(want, 0xC0)
		if got := unhex(t, slipHex); !bytes.Equal(got, want) {
			t.Errorf("%s: slip_hex = %x, want %x", name, got, want)
		}
	}
	for _, v := range loadVectors[frameVector](t, "frame.json") {
		check(v.Name, v.InputHex, v.SLIPHex)
	}
	for _, v := range loadVectors[v3Vector](t, "frame_v3.json") {
		check(v.Name, v.InputHex, v.SLIPHex)
	}
}

func TestCRCVectors(t *testing.T) {
	for _, v := range loadVectors[crcVector](t, "crc.json") {
		in := unhex(t, v.InputHex)
		var got uint32
		switch v.Algorithm {
		case "crc32-ieee":
			got = crc32.ChecksumIEEE(in)
		case "crc16-ccitt-false":
			got = uint32(CRC16(in))
		default:
			t.Errorf("%s: unknown algorithm %q", v.Name, v.Algorithm)
			continue
		}
		if got != v.Value {
			t.Errorf("%s: %s(%x) = %#x, want %#x (%s)", v.Name, v.Algorithm, in, got, v.Value, v.Meaning)
		}
	}
}
