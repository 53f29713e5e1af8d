package sniff

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/capture"
	"github.com/uartproxy/uartproxy/internal/frame"
	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/slip"
)

// native returns the SLIP encoding of a native frame.
func native(h frame.Header, payload []byte) []byte {
	return slip.AppendEncode(nil, frame.Append(nil, h, payload))
}

// seedFrame returns the SLIP encoding of a seed v3 frame.
func seedFrame(t frame.V3Type, seq uint16, payload []byte) []byte {
	return slip.AppendEncode(nil, frame.AppendV3(nil, frame.V3Header{Type: t, Seq: seq}, payload))
}

// msgs encodes messages as one DATA payload.
func msgs(t testing.TB, ms ...message.Message) []byte {
	t.Helper()
	var p []byte
	for i := range ms {
		var err error
		if p, err = message.Append(p, &ms[i]); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func mustCBOR(t testing.TB, v any) []byte {
	t.Helper()
	b, err := message.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decode feeds chunks to one Decoder and returns the events, flushed.
func decode(dir capture.Direction, chunks ...[]byte) []*Event {
	d := NewDecoder(dir, nil)
	var evs []*Event
	emit := func(ev *Event) { evs = append(evs, ev) }
	t0 := time.Unix(1000, 0)
	for i, c := range chunks {
		d.Feed(t0.Add(time.Duration(i)*time.Millisecond), c, emit)
	}
	d.Flush(t0.Add(time.Second), emit)
	return evs
}

func field(t *testing.T, f Fields, key string) any {
	t.Helper()
	v, ok := f.Get(key)
	if !ok {
		t.Fatalf("no field %q in %v", key, f)
	}
	return v
}

func TestDecodeNativeSession(t *testing.T) {
	hello, err := message.MarshalHello(message.Hello{
		ProtoMin: 1, ProtoMax: 1, Role: message.RoleDevice, Session: 0xdeadbeef, PeerSession: 7,
		MaxPayload: 2048, Window: 16, MaxStreams: 16, StreamWindow: 8192, Features: 0x3f,
		Firmware: "0.1.0", Model: "esp32c3", Baud: 921600, Established: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	verify := false
	all := msgs(t,
		message.Message{Type: message.TypeOpen, SID: 1, Kind: message.KindTCP, Host: "example.com", Port: 443, Window: 262144,
			Opts: message.Options{TLS: true, SNI: "example.com", Verify: &verify, TimeoutMS: 10000}},
		message.Message{Type: message.TypeOpenOK, SID: 1, Window: 8192},
		message.Message{Type: message.TypeReset, SID: 3, Code: 1, Reason: "ECONNREFUSED"},
		message.Message{Type: message.TypeReset, SID: 5, Code: 99, Reason: ""},
		message.Message{Type: message.TypeData, SID: 1, Data: []byte("hello, world \x00\xc0\xdb and more bytes")},
		message.Message{Type: message.TypeFin, SID: 1},
		message.Message{Type: message.TypeCredit, SID: 1, Increment: 65536},
		message.Message{Type: message.TypeDgram, SID: 7, Host: "192.0.2.53", Port: 53, Data: []byte{0x12, 0x34}},
		message.Message{Type: message.TypeAccept, SID: 2, Listener: 9, Host: "192.168.1.20", Port: 51234, Window: 8192},
		message.Message{Type: message.TypeRequest, ID: 4, Op: message.OpInfo},
		message.Message{Type: message.TypeResponse, ID: 4, Code: 0, Result: mustCBOR(t, map[uint]any{1: "0.1.0", 2: "esp32c3", 5: -61})},
		message.Message{Type: message.TypeEvent, Event: message.EventInfo, Value: mustCBOR(t, map[uint]any{4: 2})},
		message.Message{Type: message.TypeRequest, ID: 5, Op: message.OpEcho, Args: mustCBOR(t, []byte{0, 0xc0, 0xff})},
	)
	line := bytes.Join([][]byte{
		native(frame.Header{Type: frame.Hello}, hello),
		native(frame.Header{Type: frame.Data, Seq: 0, Ack: 3, Sack: 5}, all),
		native(frame.Header{Type: frame.Ack, Flags: frame.FlagAckReq, Ack: 1}, nil),
		native(frame.Header{Type: frame.Data, Seq: 1}, msgs(t, message.Message{Type: message.TypeFin, SID: 9})),
		native(frame.Header{Type: frame.Data, Flags: frame.FlagAckReq, Seq: 1}, msgs(t, message.Message{Type: message.TypeFin, SID: 9})),
		native(frame.Header{Type: frame.Data, Seq: 2}, msgs(t, message.Message{Type: message.TypeFin, SID: 11})),
	}, nil)
	evs := decode(capture.DeviceToHost, line)
	if len(evs) != 6 {
		t.Fatalf("%d events, want 6: %v", len(evs), evs)
	}
	for i, ev := range evs {
		if ev.Kind != KindFrame || ev.CRC != CRCOK || ev.Version != 4 || ev.Dir != capture.DeviceToHost || ev.IsError() {
			t.Errorf("event %d: %+v", i, ev)
		}
		if _, err := json.Marshal(ev); err != nil {
			t.Errorf("event %d: %v", i, err)
		}
	}
	if evs[0].Offset != 0 || evs[1].Offset != int64(evs[0].WireLen) || evs[0].WireLen != len(hello)+16 {
		t.Errorf("offsets %d %d, first wire length %d", evs[0].Offset, evs[1].Offset, evs[0].WireLen)
	}

	h := evs[0]
	if h.Type != "HELLO" || h.PayloadErr != "" {
		t.Fatalf("hello: %+v", h)
	}
	for key, want := range map[string]string{
		"role": "device", "session": "0xdeadbeef", "peer_session": "0x00000007", "features": "tcp+udp+listen+tls+tls_verify+service",
		"model": "esp32c3", "baud": "921600", "established": "true", "max_payload": "2048",
	} {
		if got := Diag(field(t, h.Hello, key)); strings.Trim(got, `"`) != want {
			t.Errorf("hello %s = %s, want %s", key, got, want)
		}
	}

	d := evs[1]
	if d.Type != "DATA" || d.Header.Seq != 0 || d.Header.Ack != 3 || d.Header.Sack != 5 || d.Retransmit {
		t.Errorf("data frame: %+v", d)
	}
	var types []string
	for _, m := range d.Messages {
		types = append(types, m.Type)
		if m.Err != "" {
			t.Errorf("%s: %s", m.Type, m.Err)
		}
	}
	want := []string{"OPEN", "OPEN_OK", "RESET", "RESET", "DATA", "FIN", "CREDIT", "DGRAM", "ACCEPT", "REQUEST", "RESPONSE", "EVENT", "REQUEST"}
	if !reflect.DeepEqual(types, want) {
		t.Fatalf("message types %v, want %v", types, want)
	}
	m := d.Messages
	if m[0].SID != 1 || !m[0].HasSID || field(t, m[0].Fields, "sni") != "example.com" || field(t, m[0].Fields, "verify") != false || field(t, m[0].Fields, "kind") != "tcp" {
		t.Errorf("OPEN %+v", m[0])
	}
	if field(t, m[2].Fields, "code") != "refused" || field(t, m[3].Fields, "code") != "code99" {
		t.Errorf("RESET codes %v, %v", m[2].Fields, m[3].Fields)
	}
	data := field(t, m[4].Fields, "data").(Bytes)
	if len(data) != 31 || data.Hex() != "68656c6c6f2c20776f726c642000c0db" || data.ASCII() != "hello, world ..." || !data.Truncated() {
		t.Errorf("DATA preview %q %q", data.Hex(), data.ASCII())
	}
	if got := Diag(field(t, m[10].Fields, "result")); got != `{"firmware": "0.1.0", "model": "esp32c3", "rssi": -61}` || field(t, m[10].Fields, "op") != "info" {
		t.Errorf("INFO response %v", m[10].Fields)
	}
	if got := Diag(field(t, m[11].Fields, "value")); got != `{"wifi_state": 2}` || field(t, m[11].Fields, "kind") != "info" {
		t.Errorf("EVENT %v", m[11].Fields)
	}
	if got := Diag(field(t, m[12].Fields, "args")); got != "h'00c0ff'" {
		t.Errorf("ECHO args %s", got)
	}
	if m[9].HasSID || m[10].HasSID {
		t.Error("REQUEST or RESPONSE with a stream id")
	}

	if a := evs[2]; a.Type != "ACK" || a.Header.Ack != 1 || !reflect.DeepEqual(a.Flags(), []string{"ACKREQ"}) {
		t.Errorf("ack %+v flags %v", a, a.Flags())
	}
	if evs[3].Retransmit || !evs[4].Retransmit || evs[5].Retransmit {
		t.Errorf("retransmit flags %v %v %v, want false true false", evs[3].Retransmit, evs[4].Retransmit, evs[5].Retransmit)
	}
}

func TestRetransmitAfterLoss(t *testing.T) {
	fin := msgs(t, message.Message{Type: message.TypeFin, SID: 1})
	bad := frame.Append(nil, frame.Header{Type: frame.Data, Seq: 6}, fin)
	bad[len(bad)-1] ^= 0xff // damaged CRC
	line := bytes.Join([][]byte{
		native(frame.Header{Type: frame.Data, Seq: 5}, fin),
		slip.AppendEncode(nil, bad),
		native(frame.Header{Type: frame.Data, Seq: 7}, fin),
		native(frame.Header{Type: frame.Data, Flags: frame.FlagAckReq, Seq: 6}, fin), // resent after the loss
		native(frame.Header{Type: frame.Hello}, []byte{0xa0}),                        // bad HELLO, but a new session
		native(frame.Header{Type: frame.Data, Seq: 0}, fin),
		native(frame.Header{Type: frame.Data, Seq: 0xffff}, fin), // behind 0 across the wrap
	}, nil)
	evs := decode(capture.HostToDevice, line)
	var got []bool
	for _, ev := range evs {
		got = append(got, ev.Retransmit)
	}
	if want := []bool{false, false, false, true, false, false, true}; !reflect.DeepEqual(got, want) {
		t.Errorf("retransmit %v, want %v", got, want)
	}
	if evs[1].Kind != KindRejected || evs[1].Reason != "crc" || evs[1].CRC != CRCBad || evs[1].Header.Seq != 6 || evs[1].Type != "DATA" {
		t.Errorf("damaged frame %+v", evs[1])
	}
	if evs[4].PayloadErr == "" || evs[4].Hello != nil || !evs[4].IsError() {
		t.Errorf("bad HELLO %+v", evs[4])
	}
}

func TestDecodeFaults(t *testing.T) {
	ack := native(frame.Header{Type: frame.Ack, Ack: 5}, nil)
	badEsc := append([]byte{slip.End}, frame.Append(nil, frame.Header{Type: frame.Ack, Ack: 5}, nil)...)
	badEsc = append(badEsc[:5], append([]byte{slip.Esc, 'A'}, badEsc[5:]...)...)
	badEsc = append(badEsc, slip.End)
	tooLong := append([]byte{slip.End}, bytes.Repeat([]byte{4}, frame.MaxFrameLen+10)...)
	tooLong = append(tooLong, slip.End)
	short := slip.AppendEncode(nil, []byte{4, 2, 0})
	badType := slip.AppendEncode(nil, frame.Append(nil, frame.Header{Type: 9}, nil))
	ackWithPayload := native(frame.Header{Type: frame.Ack}, []byte{1})
	badV3 := frame.AppendV3(nil, frame.V3Header{Type: frame.V3Req, Seq: 2}, []byte{0xa0})
	badV3[6] ^= 1
	garbage := []byte("line noise\r\n")

	evs := decode(capture.DeviceToHost,
		[]byte("tail of a frame"), ack, // capture starts inside a frame
		garbage, ack, // noise between frames: its END is the next frame's leading END
		badEsc, tooLong, short, badType, ackWithPayload, slip.AppendEncode(nil, badV3),
		slip.AppendEncode(nil, []byte{3, 1, 0}),
		[]byte{slip.End, 4, 2}, // capture ends inside a frame
	)
	type summary struct {
		kind   Kind
		reason string
		crc    string
	}
	var got []summary
	for _, ev := range evs {
		got = append(got, summary{ev.Kind, ev.Reason, ev.CRC})
		if _, err := json.Marshal(ev); err != nil {
			t.Error(err)
		}
		if ev.Kind != KindFrame && !ev.IsError() {
			t.Errorf("%+v is not an error", ev)
		}
	}
	want := []summary{
		{KindNoise, ReasonPartial, ""},
		{KindFrame, "", CRCOK},
		{KindNoise, ReasonNoise, ""},
		{KindFrame, "", CRCOK},
		{KindRejected, "crc", CRCBad},
		{KindTooLong, "slip_too_long", ""},
		{KindRejected, "short", ""},
		{KindRejected, "bad_type", CRCOK},
		{KindRejected, "bad_length", CRCOK},
		{KindRejected, "crc", CRCBad},
		{KindRejected, "short", ""},
		{KindNoise, ReasonTruncated, ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events\n%v\nwant\n%v", got, want)
	}
	if evs[2].FrameLen != len(garbage) || string(evs[2].Raw) != string(garbage) || evs[2].Version != 0 {
		t.Errorf("noise %+v", evs[2])
	}
	if evs[4].BadEscapes != 1 {
		t.Errorf("bad escapes %d, want 1", evs[4].BadEscapes)
	}
	if evs[5].WireLen != frame.MaxFrameLen+12 || evs[5].Raw != nil {
		t.Errorf("too long: wire %d, raw %d bytes", evs[5].WireLen, len(evs[5].Raw))
	}
	if evs[9].Version != 3 || evs[9].Type != "REQ" || evs[9].Seq != 2 {
		t.Errorf("damaged v3 frame %+v", evs[9])
	}
	if evs[11].WireLen != 3 {
		t.Errorf("truncated frame: wire length %d, want 3", evs[11].WireLen)
	}
}

// TestMalformedPayload checks that a DATA payload which cannot be split
// shows the messages before the fault, and that a malformed message is
// shown raw between good ones.
func TestMalformedPayload(t *testing.T) {
	good := msgs(t, message.Message{Type: message.TypeFin, SID: 1})
	p := append(bytes.Clone(good), 0x84, 0x03, 0x05, 0x61, 'x', 0x60) // RESET with a text code
	p = append(p, good...)
	p = append(p, 0x84, 0x01) // truncated
	evs := decode(capture.HostToDevice, native(frame.Header{Type: frame.Data}, p))
	ev := evs[0]
	if len(ev.Messages) != 3 || ev.Messages[1].Type != "RESET" || ev.Messages[1].Err == "" || ev.Messages[1].SID != 5 || ev.Messages[2].Err != "" {
		t.Fatalf("%d messages: %+v", len(ev.Messages), ev.Messages)
	}
	if !strings.HasPrefix(ev.PayloadErr, "malformed_payload: truncated at byte") {
		t.Errorf("payload error %q", ev.PayloadErr)
	}
	if !ev.IsError() {
		t.Error("not an error")
	}
}

func TestDecodeMalformedMessage(t *testing.T) {
	p := []byte{0x83, 0x04, 0x01, 0x40}            // DATA with no bytes
	p = append(p, 0x82, 0x18, 0x63, 0x01)          // unknown type 99
	p = append(p, 0x82, 0x63, 'a', 'b', 'c', 0x01) // element 0 is no uint
	p = append(p, 0x05)                            // not an array
	evs := decode(capture.HostToDevice, native(frame.Header{Type: frame.Data}, p))
	ms := evs[0].Messages
	if len(ms) != 4 {
		t.Fatalf("messages %+v", ms)
	}
	if ms[0].Type != "DATA" || ms[0].SID != 1 || !ms[0].HasSID || !strings.HasPrefix(ms[0].Err, "malformed_message") {
		t.Errorf("empty DATA %+v", ms[0])
	}
	if ms[1].Type != "type99" || !strings.HasPrefix(ms[1].Err, "unknown_message") || Diag(ms[1].Raw) != "[99, 1]" {
		t.Errorf("unknown type %+v", ms[1])
	}
	if ms[2].Type != "?" || ms[3].Type != "?" || ms[3].Raw != uint64(5) {
		t.Errorf("not messages: %+v %+v", ms[2], ms[3])
	}
	if _, err := json.Marshal(evs[0]); err != nil {
		t.Error(err)
	}
}

func TestDecodeSeedV3(t *testing.T) {
	reqs := NewRequests()
	h2d := NewDecoder(capture.HostToDevice, reqs)
	d2h := NewDecoder(capture.DeviceToHost, reqs)
	var evs []*Event
	emit := func(ev *Event) { evs = append(evs, ev) }
	t0 := time.Unix(5, 0)

	ping := mustCBOR(t, map[string]any{"op": "ping", "args": map[string]any{}})
	h2d.Feed(t0, seedFrame(frame.V3Req, 1, ping), emit)
	h2d.Feed(t0, seedFrame(frame.V3Req, 1, ping), emit) // resent after 200 ms
	d2h.Feed(t0, seedFrame(frame.V3Ack, 1, nil), emit)
	pong := mustCBOR(t, map[string]any{"ok": true, "result": map[string]any{"pong": true, "t_ms": 1234, "echo": ""}})
	d2h.Feed(t0, seedFrame(frame.V3Resp, 1, pong), emit)
	h2d.Feed(t0, seedFrame(frame.V3Ack, 1, nil), emit)

	dns := mustCBOR(t, map[string]any{"op": "dns", "args": map[string]any{"host": "localhost", "port": 80}})
	h2d.Feed(t0, seedFrame(frame.V3Req, 2, dns), emit)
	// The seed writes the address tuple ("127.0.0.1", 80) with major type 6:
	// {"ok": true, "result": [[2, 1, 0, "", ("127.0.0.1", 80)]]}
	resp := []byte{0xa2, 0x62, 'o', 'k', 0xf5, 0x66, 'r', 'e', 's', 'u', 'l', 't', 0x81, 0x85, 0x02, 0x01, 0x00, 0x60, 0xc2, 0x69}
	resp = append(resp, "127.0.0.1"...)
	resp = append(resp, 0x18, 0x50)
	d2h.Feed(t0, seedFrame(frame.V3Resp, 2, resp), emit)
	h2d.Feed(t0, seedFrame(frame.V3Req, 3, mustCBOR(t, map[string]any{"op": "sock_recv", "args": map[string]any{"sid": 4, "n": 512}})), emit)

	if len(evs) != 8 {
		t.Fatalf("%d events", len(evs))
	}
	for i, ev := range evs {
		if ev.Kind != KindFrame || ev.Version != 3 || ev.CRC != CRCOK || ev.PayloadErr != "" {
			t.Errorf("event %d: %+v", i, ev)
		}
	}
	if evs[0].Type != "REQ" || evs[0].Op != "ping" || Diag(evs[0].Body) != `{"op": "ping", "args": {}}` || evs[0].Retransmit {
		t.Errorf("ping %+v", evs[0])
	}
	if !evs[1].Retransmit {
		t.Error("repeated REQ not marked as a retransmission")
	}
	if evs[2].Type != "ACK" || evs[2].Body != nil {
		t.Errorf("ack %+v", evs[2])
	}
	if evs[3].Type != "RESP" || evs[3].Op != "ping" || Diag(evs[3].Body) != `{"ok": true, "result": {"echo": "", "pong": true, "t_ms": 1234}}` {
		t.Errorf("pong %+v %s", evs[3], Diag(evs[3].Body))
	}
	if got := Diag(evs[6].Body); evs[6].Op != "dns" || got != `{"ok": true, "result": [[2, 1, 0, "", ["127.0.0.1", 80]]]}` {
		t.Errorf("dns response %s (op %q)", got, evs[6].Op)
	}
	f := Filter{Stream: 4, HasStream: true}
	if f.Match(evs[7]) == nil || f.Match(evs[0]) != nil {
		t.Error("--stream does not follow seed sids")
	}
	var st Stats
	for _, ev := range evs {
		st.Add(ev)
	}
	if ds := st.Dir[capture.HostToDevice]; ds.Sequenced != 4 || ds.Retransmits != 1 || ds.Frames != 5 {
		t.Errorf("h2d stats %+v", ds)
	}
}

// TestChunking checks §2.3 rule 6 for the whole decoder: the events do not
// depend on how the input is split.
func TestChunking(t *testing.T) {
	line := bytes.Join([][]byte{
		[]byte("junk"),
		native(frame.Header{Type: frame.Data, Seq: 1}, msgs(t, message.Message{Type: message.TypeData, SID: 1, Data: []byte{0xc0, 0xdb, 0xc0}})),
		{0xdb, 0x41, 0xc0},
		seedFrame(frame.V3Resp, 9, []byte{0xa1, 0x62, 'o', 'k', 0xf4}),
		[]byte("more junk\xdb"),
	}, nil)
	whole := decode(capture.Unknown, line)
	var bytewise [][]byte
	for i := range line {
		bytewise = append(bytewise, line[i:i+1])
	}
	byByte := decode(capture.Unknown, bytewise...)
	if len(whole) != len(byByte) {
		t.Fatalf("%d events whole, %d byte by byte", len(whole), len(byByte))
	}
	for i := range whole {
		a, b := *whole[i], *byByte[i]
		a.Time, b.Time = time.Time{}, time.Time{}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("event %d:\n%+v\n%+v", i, a, b)
		}
	}
}

func TestFrameRecords(t *testing.T) {
	d := NewDecoder(capture.DeviceToHost, nil)
	var evs []*Event
	emit := func(ev *Event) { evs = append(evs, ev) }
	f := frame.Append(nil, frame.Header{Type: frame.Ack, Ack: 0xc0}, nil)
	d.Frame(time.Unix(1, 0), capture.StatusFrame, f, len(f), emit)
	d.Frame(time.Unix(2, 0), capture.StatusNoise, []byte("zz"), 2, emit)
	d.Frame(time.Unix(3, 0), capture.StatusTooLong, nil, 9000, emit)
	if len(evs) != 3 {
		t.Fatal(len(evs))
	}
	if e := evs[0]; e.Kind != KindFrame || e.Offset != -1 || e.WireLen != slip.EncodedLen(f) || e.Header.Ack != 0xc0 {
		t.Errorf("frame %+v", e)
	}
	if e := evs[1]; e.Kind != KindNoise || string(e.Raw) != "zz" {
		t.Errorf("noise %+v", e)
	}
	if e := evs[2]; e.Kind != KindTooLong || e.WireLen != 9000 {
		t.Errorf("too long %+v", e)
	}
	for _, e := range evs {
		if e.Kind.Status() != []capture.Status{capture.StatusFrame, capture.StatusNoise, capture.StatusTooLong}[indexOf(evs, e)] {
			t.Errorf("%v: status %v", e.Kind, e.Kind.Status())
		}
	}
}

func indexOf(evs []*Event, e *Event) int {
	for i := range evs {
		if evs[i] == e {
			return i
		}
	}
	return -1
}

func TestEventJSON(t *testing.T) {
	evs := decode(capture.HostToDevice,
		native(frame.Header{Type: frame.Data, Flags: frame.FlagAckReq, Seq: 3, Ack: 1}, msgs(t, message.Message{Type: message.TypeData, SID: 1, Data: []byte("hi")})),
		[]byte("\xc0noise"))
	b, err := json.Marshal(evs[0])
	if err != nil {
		t.Fatal(err)
	}
	want := `{"time":"1970-01-01T00:16:40Z","dir":"h2d","offset":0,"kind":"frame","version":4,"type":"DATA","seq":3,"ack":1,"sack":0,"flags":["ACKREQ"],"frame_len":20,"payload_len":6,"wire_len":22,"crc":"ok",` +
		`"messages":[{"type":"DATA","sid":1,"data":{"len":2,"hex":"6869","ascii":"hi"}}]}`
	if string(b) != want {
		t.Errorf("JSON\n%s\nwant\n%s", b, want)
	}
	b, _ = json.Marshal(evs[1])
	want = `{"time":"1970-01-01T00:16:41Z","dir":"h2d","offset":22,"kind":"noise","reason":"truncated","frame_len":5,"wire_len":6,"data":{"len":5,"hex":"6e6f697365","ascii":"noise"}}`
	if string(b) != want {
		t.Errorf("JSON\n%s\nwant\n%s", b, want)
	}
}
