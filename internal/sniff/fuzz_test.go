package sniff

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/capture"
	"github.com/uartproxy/uartproxy/internal/frame"
)

// FuzzDecoder checks that no input makes a Decoder panic, that the events
// do not depend on how the input is split, that their wire lengths add up
// to at most the input, and that every event and the stats marshal to JSON.
// The same bytes are also fed as one record of a frame capture. The seed
// corpus is in testdata/fuzz/FuzzDecoder.
func FuzzDecoder(f *testing.F) {
	fin := []byte{0x82, 0x05, 0x01}
	f.Add(native(frame.Header{Type: frame.Data, Seq: 1}, fin), uint16(3))
	f.Add(append([]byte("noise"), seedFrame(frame.V3Req, 1, []byte("\xa2\x62op\x64ping\x64args\xa0"))...), uint16(7))
	f.Add([]byte{0xc0, 0x04, 0xdb, 0x41, 0xc0, 0xdb}, uint16(1))
	f.Add([]byte{0xc0, 0x03, 0x02, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0xc2, 0x00}, uint16(0))
	f.Fuzz(func(t *testing.T, b []byte, split uint16) {
		whole := decode(capture.DeviceToHost, b)
		k := int(split) % (len(b) + 1)
		parts := decode(capture.DeviceToHost, b[:k], b[k:])
		if len(whole) != len(parts) {
			t.Fatalf("%d events whole, %d split at %d", len(whole), len(parts), k)
		}
		var st Stats
		wire := 0
		for i := range whole {
			a, p := *whole[i], *parts[i]
			a.Time, p.Time = time.Time{}, time.Time{}
			if !reflect.DeepEqual(a, p) {
				t.Fatalf("event %d differs when split at %d:\n%+v\n%+v", i, k, a, p)
			}
			if a.FrameLen > frame.MaxFrameLen || len(a.Raw) > frame.MaxFrameLen {
				t.Fatalf("event %d: %d bytes", i, a.FrameLen)
			}
			wire += a.WireLen
			if _, err := json.Marshal(whole[i]); err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
			st.Add(whole[i])
		}
		if wire > len(b) {
			t.Fatalf("wire lengths add up to %d of %d bytes", wire, len(b))
		}
		if _, err := json.Marshal(st.Summary("summary", 0)); err != nil {
			t.Fatal(err)
		}

		d := NewDecoder(capture.HostToDevice, nil)
		d.Frame(time.Time{}, capture.Status(split%4), b, int(split), func(ev *Event) {
			if _, err := json.Marshal(ev); err != nil {
				t.Fatal(err)
			}
		})

		// The bytes as a DATA payload: messages are found or an error said.
		if ms, perr := d.decodeMessages(b); perr == "" && len(b) > 0 && len(ms) == 0 {
			t.Fatalf("%x: no messages and no error", b)
		}
	})
}
