package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/uartemu"
)

// readAll reads every record of b, copying the data.
func readAll(t *testing.T, b []byte) (Format, []Record, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	var recs []Record
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return r.Format(), recs, nil
		}
		if err != nil {
			return r.Format(), recs, err
		}
		rec.Data = bytes.Clone(rec.Data)
		recs = append(recs, rec)
	}
}

func TestRawRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, LinkTypeRaw)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	in := []Record{
		{Time: t0, Dir: HostToDevice, Data: []byte("\xc0\x04\x03\x00")},
		{Time: t0.Add(time.Millisecond), Dir: DeviceToHost, Data: []byte("\xc0")},
		{Time: t0.Add(2 * time.Millisecond), Dir: Unknown, Data: []byte("abcde")}, // odd length: padding
		{Dir: HostToDevice, Data: []byte{}},                                       // unknown time, empty chunk
	}
	for _, r := range in {
		if err := w.WriteChunk(r.Time, r.Dir, r.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteFrame(t0, HostToDevice, StatusFrame, nil, 0); !errors.Is(err, ErrLinkType) {
		t.Errorf("WriteFrame on a raw capture: %v, want ErrLinkType", err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f, got, err := readAll(t, buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if f != FormatRaw {
		t.Errorf("format %v, want raw", f)
	}
	if len(got) != len(in) {
		t.Fatalf("read %d records, wrote %d", len(got), len(in))
	}
	for i := range in {
		g, w := got[i], in[i]
		if !g.Time.Equal(w.Time) || g.Dir != w.Dir || !bytes.Equal(g.Data, w.Data) || g.Frame || g.OrigLen != len(w.Data) {
			t.Errorf("record %d: got %+v, want %+v", i, g, w)
		}
	}
}

func TestFramesRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, LinkTypeFrames)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1700000000, 5)
	if err := w.WriteFrame(t0, DeviceToHost, StatusFrame, []byte("\x04\x02\x00\x00\x05\x00\x00\x00\x00\x00\x39\x71\x5a\x94"), 0); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame(t0, HostToDevice, StatusTooLong, nil, 9000); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame(time.Time{}, Unknown, StatusNoise, []byte("xyz"), 0); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteChunk(t0, HostToDevice, []byte("x")); !errors.Is(err, ErrLinkType) {
		t.Errorf("WriteChunk on a frame capture: %v, want ErrLinkType", err)
	}
	w.Flush()
	f, got, err := readAll(t, buf.Bytes())
	if err != nil || f != FormatFrames || len(got) != 3 {
		t.Fatalf("format %v, %d records, %v", f, len(got), err)
	}
	if g := got[0]; !g.Frame || g.Status != StatusFrame || g.Dir != DeviceToHost || len(g.Data) != 14 || !g.Time.Equal(t0) {
		t.Errorf("frame: %+v", g)
	}
	if g := got[1]; g.Status != StatusTooLong || len(g.Data) != 0 || g.OrigLen != 9000 {
		t.Errorf("too long: %+v", g)
	}
	if g := got[2]; g.Status != StatusNoise || string(g.Data) != "xyz" || !g.Time.IsZero() || g.Dir != Unknown {
		t.Errorf("noise: %+v", g)
	}
}

func TestRawBytesFile(t *testing.T) {
	in := "\xc0\x04\x02\x00\x00\x05\x00\x00\x00\x00\x00\x39\x71\x5a\x94\xc0"
	f, got, err := readAll(t, []byte(in))
	if err != nil || f != FormatRawBytes {
		t.Fatalf("format %v, %v", f, err)
	}
	var all []byte
	for _, r := range got {
		if r.Dir != Unknown || !r.Time.IsZero() || r.Frame {
			t.Errorf("raw record %+v: want unknown direction and time", r)
		}
		all = append(all, r.Data...)
	}
	if string(all) != in {
		t.Errorf("read %q, want %q", all, in)
	}
	// Empty input: no records.
	if _, got, err := readAll(t, nil); err != nil || len(got) != 0 {
		t.Errorf("empty file: %d records, %v", len(got), err)
	}
	// A long file comes in bounded chunks.
	big := bytes.Repeat([]byte{0xc0, 1, 2, 3}, 50000)
	_, got, err = readAll(t, big)
	if err != nil || len(got) < 2 {
		t.Fatalf("%d records, %v", len(got), err)
	}
	for _, r := range got {
		if len(r.Data) > rawChunk {
			t.Errorf("chunk of %d bytes", len(r.Data))
		}
	}
}

// TestReaderRejects checks the errors for files that are not captures of
// ours, and that a truncated capture yields its whole packets first.
func TestReaderRejects(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, LinkTypeRaw)
	for i := range 10 {
		w.WriteChunk(time.Unix(int64(i+1), 0), DeviceToHost, bytes.Repeat([]byte{byte(i)}, 7))
	}
	w.Flush()
	good := buf.Bytes()

	// Every truncation: never a panic, whole packets only. (Below 12 bytes
	// the file cannot be told from raw bytes.)
	for n := 12; n < len(good); n++ {
		_, recs, _ := readAll(t, good[:n])
		for i, r := range recs {
			if len(r.Data) != 7 || r.Data[0] != byte(i) {
				t.Fatalf("cut at %d: record %d is %+v", n, i, r)
			}
		}
	}
	_, recs, err := readAll(t, good[:len(good)-3])
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(recs) != 9 {
		t.Errorf("truncated file: %d records, %v; want 9 and ErrUnexpectedEOF", len(recs), err)
	}

	// A link type that is not ours.
	eth := bytes.Clone(good)
	idb := binary.LittleEndian.Uint32(eth[4:]) // the IDB follows the SHB
	binary.LittleEndian.PutUint16(eth[idb+8:], 1)
	if _, _, err := readAll(t, eth); err == nil || !strings.Contains(err.Error(), "link type 1") {
		t.Errorf("ethernet capture: %v", err)
	}

	// Classic pcap.
	if _, _, err := readAll(t, []byte("\xd4\xc3\xb2\xa1\x02\x00\x04\x00rest of a pcap header")); err == nil || !strings.Contains(err.Error(), "editcap") {
		t.Errorf("classic pcap: %v", err)
	}

	// A trailing block length that differs from the leading one.
	bad := bytes.Clone(good)
	binary.LittleEndian.PutUint32(bad[len(bad)-4:], 4)
	if _, recs, err := readAll(t, bad); !errors.Is(err, errCorrupt) || len(recs) != 9 {
		t.Errorf("damaged trailer: %d records, %v", len(recs), err)
	}
	// A block length beyond the limit.
	big := bytes.Clone(good)
	binary.LittleEndian.PutUint32(big[4:], 1<<30)
	if _, _, err := readAll(t, big); err == nil {
		t.Errorf("1 GiB section header accepted")
	}
}

// TestBigEndian reads a hand-made big-endian pcapng with microsecond
// timestamps, as other tools may write.
func TestBigEndian(t *testing.T) {
	be := binary.BigEndian
	var b []byte
	block := func(typ uint32, body []byte) {
		total := uint32(12 + len(body))
		b = be.AppendUint32(b, typ)
		b = be.AppendUint32(b, total)
		b = append(b, body...)
		b = be.AppendUint32(b, total)
	}
	shb := be.AppendUint32(nil, byteOrderMagic)
	shb = append(shb, 0, 1, 0, 0)
	shb = be.AppendUint64(shb, ^uint64(0))
	block(blockSHB, shb)
	idb := be.AppendUint16(nil, LinkTypeFrames)
	idb = append(idb, 0, 0, 0, 0, 0, 0) // reserved, snaplen
	block(blockIDB, idb)
	block(0x0BAD, []byte{1, 2, 3, 4}) // unknown block: skipped
	epb := be.AppendUint32(nil, 0)
	ts := uint64(1700000000_000001)
	epb = be.AppendUint32(epb, uint32(ts>>32))
	epb = be.AppendUint32(epb, uint32(ts))
	epb = be.AppendUint32(epb, 4)
	epb = be.AppendUint32(epb, 4)
	epb = append(epb, byte(DeviceToHost), byte(StatusNoise), 'h', 'i')
	block(blockEPB, epb)
	f, recs, err := readAll(t, b)
	if err != nil || f != FormatFrames || len(recs) != 1 {
		t.Fatalf("%v %d %v", f, len(recs), err)
	}
	r := recs[0]
	if want := time.Unix(1700000000, 1000); !r.Time.Equal(want) || r.Dir != DeviceToHost || r.Status != StatusNoise || string(r.Data) != "hi" {
		t.Errorf("record %+v, want time %v", r, want)
	}
}

func TestTsTime(t *testing.T) {
	tests := []struct {
		ts    uint64
		resol byte
		want  time.Time
	}{
		{0, 9, time.Time{}},
		{1_500_000_000, 9, time.Unix(1, 500_000_000)},
		{1_500_000, 6, time.Unix(1, 500_000_000)},
		{3 << 10, 0x80 | 10, time.Unix(3, 0)}, // 2^-10 s units
		{1 << 63, 0, time.Time{}},             // seconds: overflows
		{15, 10, time.Unix(0, 1)},
	}
	for _, tt := range tests {
		if got := tsTime(tt.ts, tt.resol); !got.Equal(tt.want) {
			t.Errorf("tsTime(%d, %#x) = %v, want %v", tt.ts, tt.resol, got, tt.want)
		}
	}
}

// TestTap records a conversation over an emulated cable from the host's
// end, with a reader and a writer running at once, and checks that the
// capture holds exactly the bytes of each direction, in time order.
func TestTap(t *testing.T) {
	host, dev := uartemu.New(uartemu.Symmetric(uartemu.Line{FlowControl: true}))
	defer dev.Close()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, LinkTypeRaw)
	if err != nil {
		t.Fatal(err)
	}
	tap := NewTap(host, w)
	rwc, ok := tap.(io.ReadWriteCloser)
	if !ok {
		t.Fatal("the tap is not an io.ReadWriteCloser")
	}
	up := bytes.Repeat([]byte("host to device \xc0\xdb "), 400)
	down := bytes.Repeat([]byte("device to host "), 500)

	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // host writes in pieces
		defer wg.Done()
		for p := up; len(p) > 0; {
			n := min(len(p), 333)
			if _, err := rwc.Write(p[:n]); err != nil {
				t.Error(err)
				return
			}
			p = p[n:]
		}
	}()
	go func() { // device reads what the host wrote, and writes its own
		defer wg.Done()
		if _, err := io.ReadFull(dev, make([]byte, len(up))); err != nil {
			t.Error(err)
		}
	}()
	go func() {
		defer wg.Done()
		dev.Write(down)
	}()
	got := make([]byte, len(down))
	if _, err := io.ReadFull(rwc, got); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := tap.(interface{ SetReadDeadline(time.Time) error }).SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Errorf("SetReadDeadline through the tap: %v", err)
	}
	if _, err := rwc.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past the deadline: %v", err)
	}
	if err := rwc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := host.Write([]byte("x")); !errors.Is(err, uartemu.ErrClosed) {
		t.Errorf("the tap's Close did not close the port: %v", err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}

	_, recs, err := readAll(t, buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var h2d, d2h []byte
	var last time.Time
	for _, r := range recs {
		if r.Time.Before(last) {
			t.Errorf("record at %v after one at %v", r.Time, last)
		}
		last = r.Time
		switch r.Dir {
		case HostToDevice:
			h2d = append(h2d, r.Data...)
		case DeviceToHost:
			d2h = append(d2h, r.Data...)
		default:
			t.Errorf("record with direction %v", r.Dir)
		}
	}
	if !bytes.Equal(h2d, up) || !bytes.Equal(d2h, down) {
		t.Errorf("captured %d bytes h2d (want %d) and %d d2h (want %d)", len(h2d), len(up), len(d2h), len(down))
	}
}

// errWriter fails every write.
type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestTapKeepsGoing checks that a failing capture never fails the I/O.
func TestTapKeepsGoing(t *testing.T) {
	w, err := NewWriter(errWriter{}, LinkTypeRaw) // buffered: the header does not fail yet
	if err != nil {
		t.Fatal(err)
	}
	var port bytes.Buffer
	tap := NewTap(&port, w)
	big := make([]byte, 100<<10) // more than the buffer: the capture fails
	if n, err := tap.Write(big); n != len(big) || err != nil {
		t.Fatalf("write through a failing tap: %d, %v", n, err)
	}
	if w.Err() == nil {
		t.Error("the capture error was not kept")
	}
	if _, err := tap.Write([]byte("more")); err != nil {
		t.Fatal(err)
	}
	if port.Len() != len(big)+4 {
		t.Errorf("port got %d bytes", port.Len())
	}
	if err := tap.(io.Closer).Close(); err != nil {
		t.Errorf("Close of a port that cannot close: %v", err)
	}
	if err := tap.(interface{ SetReadDeadline(time.Time) error }).SetReadDeadline(time.Time{}); !errors.Is(err, os.ErrNoDeadline) {
		t.Errorf("SetReadDeadline without support: %v", err)
	}
}

func TestNewWriterLinkType(t *testing.T) {
	if _, err := NewWriter(io.Discard, 1); err == nil {
		t.Error("link type 1 accepted")
	}
}

func TestStrings(t *testing.T) {
	if HostToDevice.String() != "h2d" || DeviceToHost.String() != "d2h" || Unknown.String() != "unknown" || Direction(9).String() != "dir9" {
		t.Error("Direction.String")
	}
	if StatusTooLong.String() != "slip_too_long" || Status(7).String() != "status7" {
		t.Error("Status.String")
	}
	if FormatRawBytes.String() != "raw bytes" {
		t.Error("Format.String")
	}
}

// FuzzReader checks that no file makes the Reader panic or return a record
// beyond its limits.
func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, LinkTypeFrames)
	w.WriteFrame(time.Unix(1, 0), DeviceToHost, StatusFrame, []byte("\x04\x02"), 0)
	w.WriteFrame(time.Unix(2, 0), HostToDevice, StatusTooLong, nil, 9000)
	w.Flush()
	f.Add(buf.Bytes())
	buf.Reset()
	w, _ = NewWriter(&buf, LinkTypeRaw)
	w.WriteChunk(time.Unix(1, 0), DeviceToHost, []byte("\xc0\x04\x03"))
	w.Flush()
	f.Add(buf.Bytes())
	f.Add([]byte("\xc0\x04\x02\x00\xc0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		for range 10000 {
			rec, err := r.Next()
			if err != nil {
				return
			}
			if len(rec.Data) > maxBlock || !rec.Dir.Valid() || rec.OrigLen < len(rec.Data) {
				t.Fatalf("record %+v", rec)
			}
		}
	})
}
