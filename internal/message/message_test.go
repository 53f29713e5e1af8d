package message

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

func mustRaw(t testing.TB, v any) cbor.RawMessage {
	t.Helper()
	b, err := Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDataLiteral(t *testing.T) {
	// docs/protocol.md §7: [4, 1, h'68656c6c6f'].
	got := AppendData(nil, 1, []byte("hello"))
	if want := "83040145" + "68656c6c6f"; hex.EncodeToString(got) != want {
		t.Fatalf("AppendData = %x, want %s", got, want)
	}
	if DataLen(1, 5) != len(got) {
		t.Fatalf("DataLen = %d, want %d", DataLen(1, 5), len(got))
	}
	for _, n := range []int{0, 23, 24, 255, 256, 8192} {
		for _, sid := range []uint32{1, 23, 24, 300, 70000, 1 << 31} {
			b := AppendData(nil, sid, make([]byte, n))
			if len(b) != DataLen(sid, n) {
				t.Fatalf("sid %d n %d: len %d DataLen %d", sid, n, len(b), DataLen(sid, n))
			}
		}
	}
}

func TestDataFit(t *testing.T) {
	for _, sid := range []uint32{1, 24, 300, 1 << 20} {
		for room := 0; room < 70000; room += 1 + room/7 {
			n := DataFit(sid, room)
			if n > 0 && DataLen(sid, n) > room {
				t.Fatalf("sid %d room %d: DataFit %d needs %d", sid, room, n, DataLen(sid, n))
			}
			if DataLen(sid, n+1) <= room {
				t.Fatalf("sid %d room %d: DataFit %d is not the largest", sid, room, n)
			}
		}
	}
}

func TestHandEncodingMatchesLibrary(t *testing.T) {
	// The hand-rolled encoder must produce exactly what a standard CBOR
	// encoder produces for the same array, so any firmware library decodes it.
	cases := []struct {
		m    Message
		want []any
	}{
		{Message{Type: TypeData, SID: 70000, Data: make([]byte, 300)}, []any{4, 70000, make([]byte, 300)}},
		{Message{Type: TypeOpenOK, SID: 3, Window: 262144, Host: "192.168.4.2", Port: 5353}, []any{2, 3, 262144, "192.168.4.2", 5353}},
		{Message{Type: TypeReset, SID: 9, Code: CodeRefused, Reason: "connection refused"}, []any{3, 9, 1, "connection refused"}},
		{Message{Type: TypeFin, SID: 1}, []any{5, 1}},
		{Message{Type: TypeCredit, SID: 1, Increment: 65536}, []any{6, 1, 65536}},
		{Message{Type: TypeDgram, SID: 5, Host: "1.1.1.1", Port: 53, Data: []byte{1, 2}}, []any{7, 5, "1.1.1.1", 53, []byte{1, 2}}},
		{Message{Type: TypeAccept, SID: 2, Listener: 7, Host: "10.0.0.9", Port: 40000, Window: 8192}, []any{8, 2, 7, "10.0.0.9", 40000, 8192}},
		{Message{Type: TypeRequest, ID: 1, Op: OpInfo}, []any{9, 1, 2, nil}},
		{Message{Type: TypeResponse, ID: 1, Code: CodeOK, Result: mustRaw(t, []string{"1.2.3.4"})}, []any{10, 1, 0, []string{"1.2.3.4"}}},
		{Message{Type: TypeOpen, SID: 1, Kind: KindTCP, Host: "example.com", Port: 443, Window: 262144,
			Opts: Options{TLS: true, SNI: "example.com", Verify: new(true)}},
			[]any{1, 1, 1, "example.com", 443, 262144, map[int]any{1: true, 2: "example.com", 3: true}}},
	}
	for _, c := range cases {
		got, err := Append(nil, &c.m)
		if err != nil {
			t.Fatal(err)
		}
		want := mustRaw(t, c.want)
		if !bytes.Equal(got, want) {
			t.Errorf("%v:\n got %x\nwant %x", c.m.Type, got, want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	msgs := []Message{
		{Type: TypeOpen, SID: 1, Kind: KindUDP, Host: "", Port: 0, Window: 4096},
		{Type: TypeOpen, SID: 3, Kind: KindTCP, Host: "example.com", Port: 443, Window: 1 << 20, Opts: Options{TLS: true, SNI: "example.com", Verify: new(false), TimeoutMS: 5000}},
		{Type: TypeOpen, SID: 5, Kind: KindListen, Host: "0.0.0.0", Port: 2222, Window: 8192, Opts: Options{Backlog: 4}},
		{Type: TypeOpenOK, SID: 1, Window: 8192, Host: "0.0.0.0", Port: 40001},
		{Type: TypeReset, SID: 7, Code: CodeDNS, Reason: "no such host"},
		{Type: TypeData, SID: 1 << 30, Data: bytes.Repeat([]byte{0xc0, 0xdb}, 1000)},
		{Type: TypeFin, SID: 2},
		{Type: TypeCredit, SID: 2, Increment: 1 << 31},
		{Type: TypeDgram, SID: 11, Host: "2001:db8::1", Port: 53, Data: []byte("q")},
		{Type: TypeAccept, SID: 4, Listener: 5, Host: "192.168.1.20", Port: 51000, Window: 8192},
		{Type: TypeRequest, ID: 42, Op: OpResolve, Args: mustRaw(t, []any{"example.com", 0})},
		{Type: TypeResponse, ID: 42, Code: CodeDNS},
		{Type: TypeEvent, Event: EventInfo, Value: mustRaw(t, Info{IP: "10.1.2.3"})},
	}
	var seq []byte
	for i := range msgs {
		var err error
		seq, err = Append(seq, &msgs[i])
		if err != nil {
			t.Fatal(err)
		}
	}
	rest := seq
	for i := range msgs {
		var got Message
		var err error
		got, rest, err = Parse(rest)
		if err != nil {
			t.Fatalf("message %d (%v): %v", i, msgs[i].Type, err)
		}
		if !reflect.DeepEqual(got, msgs[i]) {
			t.Errorf("message %d:\n got %+v\nwant %+v", i, got, msgs[i])
		}
		if got.String() == "" {
			t.Error("empty String()")
		}
	}
	if len(rest) != 0 {
		t.Fatalf("%d bytes left over", len(rest))
	}
}

func TestForwardCompatibleExtraFields(t *testing.T) {
	b := mustRaw(t, []any{5, 9, "future field", 1})
	m, _, err := Parse(b)
	if err != nil || m.Type != TypeFin || m.SID != 9 {
		t.Fatalf("Parse = %+v, %v", m, err)
	}
}

func TestParseRejects(t *testing.T) {
	cases := []struct {
		name   string
		in     string
		reason string
	}{
		{"empty", "", "malformed_message"},
		{"not an array", "\x04", "malformed_message"},
		{"empty array", "\x80", "malformed_message"},
		{"unknown type", "\x82\x18\x63\x01", "unknown_message"},
		{"type zero", "\x82\x00\x01", "unknown_message"},
		{"missing field", "\x82\x04\x01", "malformed_message"},
		{"sid is text", "\x83\x04\x61a\x41x", "malformed_message"},
		{"sid too big", "\x83\x04\x1b\x00\x00\x00\x01\x00\x00\x00\x00\x41x", "malformed_message"},
		{"empty data", "\x83\x04\x01\x40", "malformed_message"},
		{"negative port", "\x85\x07\x01\x60\x20\x41x", "malformed_message"},
		{"port too big", "\x85\x07\x01\x60\x1a\x00\x01\x00\x00\x41x", "malformed_message"},
		{"indefinite array", "\x9f\x05\x01\xff", "malformed_message"},
		{"truncated bytes", "\x83\x04\x01\x59\xff\xff", "malformed_message"},
		{"bad utf8 host", "\x85\x02\x01\x01\x62\xff\xfe\x00", "malformed_message"},
		{"tag", "\xc2\x82\x05\x01", "malformed_message"},
		{"huge array claim", "\x9b\xff\xff\xff\xff\xff\xff\xff\xff", "malformed_message"},
		{"deep nesting", strings.Repeat("\x81", 64) + "\x00", "malformed_message"},
		{"dup opts keys", "\x87\x01\x01\x01\x60\x00\x00\xa2\x01\xf5\x01\xf4", "malformed_message"},
	}
	for _, c := range cases {
		_, _, err := Parse([]byte(c.in))
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if got := Reason(err); got != c.reason {
			t.Errorf("%s: reason %q (%v), want %q", c.name, got, err, c.reason)
		}
	}
}

func TestHello(t *testing.T) {
	h := Hello{ProtoMin: 1, ProtoMax: 1, Role: RoleHost, Session: 0x11223344, MaxPayload: 2048, Window: 32,
		MaxStreams: 1024, StreamWindow: 262144, Features: 255, Firmware: "dev", Model: "host", Baud: 921600}
	b, err := MarshalHello(h)
	if err != nil {
		t.Fatal(err)
	}
	// docs/protocol.md §12 (a) and testdata/vectors/frame.json use this map.
	want := "ad010102010300041a1122334405000619080007182008190400091a000400000a18ff0b636465760c64686f73740d1a000e1000"
	if hex.EncodeToString(b) != want {
		t.Fatalf("hello = %x\nwant   %s", b, want)
	}
	got, err := ParseHello(b)
	if err != nil || !reflect.DeepEqual(got, h) {
		t.Fatalf("ParseHello = %+v, %v", got, err)
	}
	// Unknown keys are ignored.
	ext := mustRaw(t, map[int]any{1: 1, 2: 3, 4: 7, 6: 512, 7: 8, 99: "new"})
	if got, err := ParseHello(ext); err != nil || got.ProtoMax != 3 || got.MaxPayload != 512 {
		t.Fatalf("extended hello: %+v, %v", got, err)
	}
	for _, bad := range []map[int]any{
		{1: 1, 2: 1, 4: 0, 6: 512, 7: 8},
		{1: 2, 2: 1, 4: 1, 6: 512, 7: 8},
		{1: 1, 2: 1, 4: 1, 6: 0, 7: 8},
		{1: 1, 2: 1, 3: 7, 4: 1, 6: 512, 7: 8},
	} {
		if _, err := ParseHello(mustRaw(t, bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseHello(%v) err = %v", bad, err)
		}
	}
	if _, err := Negotiate(Hello{ProtoMin: 1, ProtoMax: 1}, Hello{ProtoMin: 2, ProtoMax: 3}); err == nil {
		t.Error("Negotiate accepted disjoint ranges")
	}
	if r, err := Negotiate(Hello{ProtoMin: 1, ProtoMax: 2}, Hello{ProtoMin: 1, ProtoMax: 5}); err != nil || r != 2 {
		t.Errorf("Negotiate = %d, %v", r, err)
	}
}

func TestStrings(t *testing.T) {
	if TypeAccept.String() != "ACCEPT" || Type(99).String() != "type99" || CodeInUse.String() != "in_use" ||
		Code(500).String() != "internal" || Code(500).Normalize() != CodeInternal || KindListen.String() != "listen" ||
		OpEcho.String() != "echo" || RoleDevice.String() != "device" {
		t.Fatal("enum names changed")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(AppendData(nil, 1, []byte("hello")))
	f.Add([]byte(mustRaw(f, []any{1, 1, 1, "example.com", 443, 4096, map[int]any{1: true}})))
	f.Add([]byte(mustRaw(f, []any{10, 1, 0, []string{"1.2.3.4"}})))
	f.Add([]byte("\x82\x05\x01\x82\x05\x03"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rest := b
		for i := 0; i < 64 && len(rest) > 0; i++ {
			m, r, err := Parse(rest)
			if err != nil {
				return
			}
			if len(r) >= len(rest) {
				t.Fatal("Parse made no progress")
			}
			rest = r
			// What parses must re-encode and parse to the same message.
			enc, err := Append(nil, &m)
			if err != nil {
				t.Fatal(err)
			}
			m2, r2, err := Parse(enc)
			if err != nil || len(r2) != 0 || !reflect.DeepEqual(m, m2) {
				t.Fatalf("re-parse of %v: %+v vs %+v, %v", m.Type, m, m2, err)
			}
		}
	})
}

func BenchmarkParseData(b *testing.B) {
	buf := AppendData(nil, 1, make([]byte, 2000))
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, _, err := Parse(buf); err != nil {
			b.Fatal(err)
		}
	}
}
