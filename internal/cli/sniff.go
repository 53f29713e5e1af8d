package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/uartproxy/uartproxy/internal/capture"
	"github.com/uartproxy/uartproxy/internal/serialport"
	"github.com/uartproxy/uartproxy/internal/sniff"
)

// sniffFlags are the flags of 'uartproxy sniff'.
type sniffFlags struct {
	Port, Port2 string
	Baud        int
	File        string
	Stream      uint32
	Types       []string
	Errors      bool
	Pcapng      string
	StatsEvery  time.Duration
	Quiet       bool

	hasStream bool
}

func (f *sniffFlags) addTo(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.Port, "port", "", "serial adapter whose RX is tapped on the host→device line (the ESP32's RX)")
	fs.StringVar(&f.Port2, "port2", "", "serial adapter whose RX is tapped on the device→host line (the ESP32's TX)")
	fs.IntVarP(&f.Baud, "baud", "b", 921600, "line rate of the tapped line in bit/s (8N1)")
	fs.StringVarP(&f.File, "file", "f", "", "read a capture: raw line bytes, or a pcapng written by sniff or serve --mirror; - for stdin")
	fs.Uint32Var(&f.Stream, "stream", 0, "show only messages of this stream id")
	fs.StringSliceVar(&f.Types, "type", nil, "show only these frame, message or event types, e.g. HELLO,RESET,noise (repeatable)")
	fs.BoolVar(&f.Errors, "errors", false, "show only faults: rejected frames, noise, over-long SLIP frames, bad escapes, malformed messages")
	fs.StringVar(&f.Pcapng, "pcapng", "", "also write every decoded frame to this pcapng file (LINKTYPE_USER0; see docs/sniff.md)")
	fs.DurationVar(&f.StatsEvery, "stats-every", 0, "print the figures of each interval this long, e.g. 1s (0: only at the end)")
	fs.BoolVarP(&f.Quiet, "quiet", "q", false, "print no events, only the figures")
	cmd.RegisterFlagCompletionFunc("port", completePorts)
	cmd.RegisterFlagCompletionFunc("port2", completePorts)
	cmd.RegisterFlagCompletionFunc("type", cobra.FixedCompletions(sniff.TypeNames(), cobra.ShellCompDirectiveNoFileComp))
	cmd.MarkFlagFilename("file")
	cmd.MarkFlagFilename("pcapng", "pcapng")
}

// validate checks what flag parsing cannot; args are the positional ones.
func (f *sniffFlags) validate(cmd *cobra.Command, args []string) error {
	if len(args) == 1 {
		if f.File != "" {
			return usageErrorf("give the capture either as --file or as an argument, not both")
		}
		f.File = args[0]
	}
	sources := 0
	for _, s := range []string{f.File, f.Port + f.Port2} {
		if s != "" {
			sources++
		}
	}
	if sources != 1 {
		return usageErrorf("say what to sniff: --port PATH and/or --port2 PATH (tapped lines), --file FILE, or - for stdin")
	}
	if f.Port != "" && f.Port == f.Port2 {
		return usageErrorf("--port and --port2 are both %s: tap each direction with its own adapter", f.Port)
	}
	if f.Baud <= 0 {
		return usageErrorf("--baud %d: want a positive rate in bit/s, e.g. 921600", f.Baud)
	}
	if f.StatsEvery < 0 {
		return usageErrorf("--stats-every %v: want a positive duration, e.g. 1s, or 0 for none", f.StatsEvery)
	}
	known := sniff.TypeNames()
	for _, t := range f.Types {
		if !slices.ContainsFunc(known, func(k string) bool { return strings.EqualFold(k, t) }) {
			return usageErrorf("--type %s: want one of %s", t, strings.Join(known, ", "))
		}
	}
	f.hasStream = cmd.Flags().Changed("stream")
	return nil
}

func newSniffCmd() *cobra.Command {
	var f sniffFlags
	cmd := &cobra.Command{
		Use:   "sniff [FILE | -]",
		Short: "Decode the frames on a serial line, live or from a capture",
		Long: `Decode what travels on the serial line between uartproxy and the ESP32:
native frames and seed v3 frames, with their messages, CRC errors, SLIP
errors and line noise, plus the line's figures (frames/s, bytes/s, CRC error
and retransmission rates, resyncs).

Sources:
  --port PATH [--port2 PATH]  read-only adapters tapped on the line: --port on
                              host→device (the ESP32's RX), --port2 on
                              device→host (its TX); both merged by time
  --file FILE, or FILE        a capture: raw line bytes, or a pcapng written
                              by sniff --pcapng or serve --mirror
  -                           the same from stdin

Each event prints as a line (messages below it), or with --json as one
object per line; the figures follow at the end and, with --stats-every,
every interval. --pcapng also writes the frames for Wireshark: load
scripts/uartproxy.lua (docs/sniff.md).`,
		Example: `  uartproxy sniff testdata/captures/session.pcapng
  uartproxy sniff --port /dev/ttyUSB1 --port2 /dev/ttyUSB2 --baud 921600 --stats-every 1s
  uartproxy sniff --file capture.pcapng --stream 3 --json | jq .
  cat line.bin | uartproxy sniff - --errors
  uartproxy sniff --port /dev/ttyUSB1 --pcapng out.pcapng && wireshark -X lua_script:scripts/uartproxy.lua out.pcapng`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.validate(cmd, args); err != nil {
				return err
			}
			return runSniff(cmd, &f)
		},
	}
	f.addTo(cmd)
	return cmd
}

// source delivers records, each with data of its own, until recs closes;
// then errc says why (nil at the end of a file or after stop).
type source struct {
	recs chan capture.Record
	errc chan error
	live bool
	stop func() // unblocks the readers; safe to call more than once
}

// openSource opens the capture or the ports the flags name.
func openSource(cmd *cobra.Command, f *sniffFlags) (*source, error) {
	src := &source{recs: make(chan capture.Record, 64), errc: make(chan error, 1)}
	done := make(chan struct{})
	var once sync.Once
	src.stop = func() { once.Do(func() { close(done) }) }
	send := func(r capture.Record) bool {
		select {
		case src.recs <- r:
			return true
		case <-done:
			return false
		}
	}

	if f.File != "" {
		var in io.Reader = cmd.InOrStdin()
		stamp := false
		closeIn := func() {}
		if f.File != "-" {
			file, err := os.Open(f.File)
			if err != nil {
				return nil, err
			}
			in, closeIn = file, func() { file.Close() }
		} else if file, ok := in.(*os.File); ok {
			// A pipe or a tty: stamp raw bytes as they arrive.
			fi, err := file.Stat()
			stamp = err == nil && !fi.Mode().IsRegular()
		}
		r, err := capture.NewReader(in)
		if err != nil {
			closeIn()
			return nil, fmt.Errorf("%s: %w", f.File, err)
		}
		log := loggerFor(cmd)
		log.Debug().Str("file", f.File).Str("format", r.Format().String()).Msg("reading capture")
		src.live = stamp && r.Format() == capture.FormatRawBytes
		go func() {
			defer closeIn()
			defer close(src.recs)
			for {
				rec, err := r.Next()
				if err != nil {
					if errors.Is(err, io.EOF) {
						err = nil
					} else {
						err = fmt.Errorf("%s: %w", f.File, err)
					}
					src.errc <- err
					return
				}
				if src.live {
					rec.Time = time.Now()
				}
				rec.Data = slices.Clone(rec.Data)
				if !send(rec) {
					src.errc <- nil
					return
				}
			}
		}()
		return src, nil
	}

	src.live = true
	type tapped struct {
		path string
		dir  capture.Direction
	}
	var taps []tapped
	if f.Port != "" {
		taps = append(taps, tapped{f.Port, capture.HostToDevice})
	}
	if f.Port2 != "" {
		taps = append(taps, tapped{f.Port2, capture.DeviceToHost})
	}
	var ports []*serialport.Port
	for _, tp := range taps {
		// A tap only listens: no flow control, which would drive RTS.
		p, err := serialport.Open(serialport.Config{Path: tp.path, Baud: f.Baud})
		if err != nil {
			for _, p := range ports {
				p.Close()
			}
			return nil, err
		}
		ports = append(ports, p)
		log := loggerFor(cmd)
		log.Info().Str("port", tp.path).Str("dir", tp.dir.String()).Int("baud", f.Baud).Msg("sniffing")
	}
	stopDone := src.stop
	src.stop = func() {
		stopDone()
		for _, p := range ports {
			p.Close()
		}
	}
	var wg sync.WaitGroup
	var first sync.Once
	for i, p := range ports {
		wg.Add(1)
		go func(p *serialport.Port, dir capture.Direction) {
			defer wg.Done()
			buf := make([]byte, 4096)
			for {
				n, err := p.Read(buf)
				if n > 0 && !send(capture.Record{Time: time.Now(), Dir: dir, Data: slices.Clone(buf[:n]), OrigLen: n}) {
					return
				}
				if err != nil {
					select {
					case <-done: // stopped: the error is the close
					default:
						first.Do(func() { src.errc <- fmt.Errorf("%s: %w", p.Path(), err) })
					}
					return
				}
			}
		}(p, taps[i].dir)
	}
	go func() {
		wg.Wait()
		first.Do(func() { src.errc <- nil })
		close(src.recs)
	}()
	return src, nil
}

// mergeHold is how long records from live ports wait, so that those of the
// two directions leave in time order.
const mergeHold = 20 * time.Millisecond

func runSniff(cmd *cobra.Command, f *sniffFlags) (err error) {
	src, err := openSource(cmd, f)
	if err != nil {
		return err
	}
	defer src.stop()

	s := &sniffer{out: printerFor(cmd), f: f, live: src.live,
		filter: sniff.Filter{Stream: f.Stream, HasStream: f.hasStream, Types: f.Types, Errors: f.Errors}}
	reqs := sniff.NewRequests()
	for d := range s.decs {
		s.decs[d] = sniff.NewDecoder(capture.Direction(d), reqs)
	}
	if f.Pcapng != "" {
		file, cerr := os.Create(f.Pcapng)
		if cerr != nil {
			return cerr
		}
		defer func() {
			if cerr := file.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}()
		if s.pcap, cerr = capture.NewWriter(file, capture.LinkTypeFrames); cerr != nil {
			return cerr
		}
		defer func() {
			if ferr := s.pcap.Flush(); ferr != nil && err == nil {
				err = fmt.Errorf("%s: %w", f.Pcapng, ferr)
			}
		}()
	}

	var tick, flush <-chan time.Time
	if src.live {
		if f.StatsEvery > 0 {
			t := time.NewTicker(f.StatsEvery)
			defer t.Stop()
			tick = t.C
		}
		t := time.NewTicker(time.Second)
		defer t.Stop()
		flush = t.C
	}
	hold := time.NewTimer(time.Hour)
	defer hold.Stop()
	var pending []capture.Record // live records waiting mergeHold, in time order
	recs := src.recs
	stopped := false // by the context: the readers may still be blocked
	for recs != nil || len(pending) > 0 {
		select {
		case rec, ok := <-recs:
			if !ok {
				recs = nil
				break
			}
			if !src.live {
				s.record(rec)
				break
			}
			i, _ := slices.BinarySearchFunc(pending, rec, func(a, b capture.Record) int { return a.Time.Compare(b.Time) })
			pending = slices.Insert(pending, i, rec)
		case <-hold.C:
		case <-tick:
			s.stats(f.StatsEvery)
		case <-flush:
			if s.pcap != nil {
				s.pcap.Flush()
			}
		case <-cmd.Context().Done():
			src.stop()
			recs, stopped = nil, true
		}
		for len(pending) > 0 && (recs == nil || time.Since(pending[0].Time) >= mergeHold) {
			s.record(pending[0])
			pending = pending[1:]
		}
		if len(pending) > 0 {
			hold.Reset(time.Until(pending[0].Time.Add(mergeHold)))
		}
		if s.err != nil {
			return s.err
		}
	}
	var srcErr error
	if stopped { // a reader may still be blocked; a tap may have failed before
		select {
		case srcErr = <-src.errc:
		default:
		}
	} else { // recs closed: the readers have said why
		srcErr = <-src.errc
	}
	for _, d := range s.decs {
		d.Flush(s.last, s.emit)
	}
	sum := s.total.Summary("summary", 0)
	if perr := s.out.Result(sum, func(w io.Writer) { printSummary(w, sum) }); perr != nil {
		return perr
	}
	if s.err != nil {
		return s.err
	}
	return srcErr
}

// sniffer turns records into printed events and figures.
type sniffer struct {
	out    *Printer
	f      *sniffFlags
	filter sniff.Filter
	decs   [3]*sniff.Decoder
	pcap   *capture.Writer
	live   bool // records come as they happen; otherwise from a capture

	total, mark sniff.Stats // mark: the snapshot at the last interval
	t0, last    time.Time   // first and latest record times
	next        time.Time   // end of the current interval (captures)
	err         error       // first output error
}

// record decodes one record.
func (s *sniffer) record(rec capture.Record) {
	if !rec.Time.IsZero() {
		if s.t0.IsZero() {
			s.t0 = rec.Time
		}
		s.last = rec.Time
		// In a capture, intervals follow the records' times (live, a
		// ticker does); intervals without records are skipped.
		if d := s.f.StatsEvery; d > 0 && !s.live {
			if s.next.IsZero() {
				s.next = rec.Time.Add(d)
			} else if !rec.Time.Before(s.next) {
				s.stats(d)
				s.next = s.next.Add((rec.Time.Sub(s.next)/d + 1) * d)
			}
		}
	}
	dec := s.decs[rec.Dir]
	if rec.Frame {
		dec.Frame(rec.Time, rec.Status, rec.Data, rec.OrigLen, s.emit)
		return
	}
	s.total.AddBytes(rec.Dir, rec.Time, len(rec.Data))
	dec.Feed(rec.Time, rec.Data, s.emit)
}

// emit counts, records and prints one event.
func (s *sniffer) emit(ev *sniff.Event) {
	if ev.Offset < 0 { // from a frame capture: no line bytes were counted
		s.total.AddBytes(ev.Dir, ev.Time, ev.WireLen)
	}
	s.total.Add(ev)
	if s.pcap != nil && s.err == nil {
		origLen := len(ev.Raw)
		if ev.Kind == sniff.KindTooLong {
			origLen = ev.WireLen
		}
		if err := s.pcap.WriteFrame(ev.Time, ev.Dir, ev.Kind.Status(), ev.Raw, origLen); err != nil {
			s.err = fmt.Errorf("%s: %w", s.f.Pcapng, err)
		}
	}
	if s.f.Quiet || s.err != nil {
		return
	}
	if ev = s.filter.Match(ev); ev == nil {
		return
	}
	if err := s.out.Result(ev, func(w io.Writer) { printEvent(w, ev, s.t0) }); err != nil {
		s.err = err
	}
}

// stats prints the figures since the last interval, if anything happened.
func (s *sniffer) stats(d time.Duration) {
	iv := s.total.Sub(s.mark)
	s.mark = s.total
	if iv.Empty() {
		return
	}
	sum := iv.Summary("stats", d)
	if err := s.out.Result(sum, func(w io.Writer) { printSummary(w, sum) }); err != nil && s.err == nil {
		s.err = err
	}
}

// eventIndent lines messages up under the frame they came in.
const eventIndent = "                  "

var dirArrows = [...]string{capture.HostToDevice: "H>D", capture.DeviceToHost: "D>H", capture.Unknown: "?  "}

// printEvent writes an event as a line, and its messages or payload below.
func printEvent(w io.Writer, ev *sniff.Event, t0 time.Time) {
	when := "-"
	switch {
	case !ev.Time.IsZero():
		when = strconv.FormatFloat(ev.Time.Sub(t0).Seconds(), 'f', 6, 64)
	case ev.Offset >= 0:
		when = "@" + strconv.FormatInt(ev.Offset, 10)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%12s %s ", when, dirArrows[min(int(ev.Dir), 2)])
	switch ev.Kind {
	case sniff.KindNoise:
		raw := sniff.Bytes(ev.Raw)
		fmt.Fprintf(&b, "noise (%s) len=%d data=%s", ev.Reason, ev.FrameLen, bytesText(raw))
	case sniff.KindTooLong:
		fmt.Fprintf(&b, "SLIP frame too long, discarded: wire_len=%d", ev.WireLen)
	default:
		fmt.Fprintf(&b, "v%d", ev.Version)
		if ev.Type != "" {
			b.WriteString(" " + ev.Type)
		}
		if ev.HasHeader() {
			if ev.Version == 3 {
				fmt.Fprintf(&b, " seq=%d", ev.Seq)
			} else {
				h := ev.Header
				if ev.Type == "DATA" {
					fmt.Fprintf(&b, " seq=%d", h.Seq)
				}
				if ev.Type != "HELLO" {
					fmt.Fprintf(&b, " ack=%d", h.Ack)
					if h.Sack != 0 {
						fmt.Fprintf(&b, " sack=%#x", h.Sack)
					}
				}
				for _, fl := range ev.Flags() {
					b.WriteString(" " + fl)
				}
			}
			if ev.PayloadLen > 0 {
				fmt.Fprintf(&b, " len=%d", ev.PayloadLen)
			}
		} else {
			fmt.Fprintf(&b, " frame_len=%d", ev.FrameLen)
		}
		if ev.CRC != "" {
			b.WriteString(" crc=" + ev.CRC)
		}
		if ev.Op != "" {
			b.WriteString(" op=" + textValue(ev.Op))
		}
		if ev.Retransmit {
			b.WriteString(" RETRANSMIT")
		}
		if ev.Kind == sniff.KindRejected {
			b.WriteString(" REJECTED(" + ev.Reason + ")")
		}
	}
	if ev.BadEscapes > 0 {
		fmt.Fprintf(&b, " bad_escapes=%d", ev.BadEscapes)
	}
	b.WriteByte('\n')
	if len(ev.Hello) > 0 {
		b.WriteString(eventIndent + fieldsText(ev.Hello) + "\n")
	}
	for _, m := range ev.Messages {
		b.WriteString(eventIndent + m.Type)
		if m.Err != "" {
			b.WriteString(" ! " + m.Err + " " + sniff.Diag(m.Raw) + "\n")
			continue
		}
		if len(m.Fields) > 0 {
			b.WriteString(" " + fieldsText(m.Fields))
		}
		b.WriteByte('\n')
	}
	if ev.Body != nil {
		b.WriteString(eventIndent + sniff.Diag(ev.Body) + "\n")
	}
	if ev.PayloadErr != "" {
		b.WriteString(eventIndent + "! " + ev.PayloadErr + "\n")
	}
	io.WriteString(w, b.String())
}

// fieldsText renders fields as key=value pairs.
func fieldsText(f sniff.Fields) string {
	parts := make([]string, 0, len(f))
	for _, x := range f {
		if bs, ok := x.Value.(sniff.Bytes); ok {
			parts = append(parts, fmt.Sprintf("len=%d %s=%s", len(bs), x.Key, bytesText(bs)))
			continue
		}
		parts = append(parts, x.Key+"="+textValue(x.Value))
	}
	return strings.Join(parts, " ")
}

// bytesText is a hex and ASCII preview: 68656c6c6f |hello|.
func bytesText(b sniff.Bytes) string {
	more := ""
	if b.Truncated() {
		more = "…"
	}
	return b.Hex() + more + " |" + b.ASCII() + more + "|"
}

// textValue renders a value; text is quoted when it would not read as one
// word.
func textValue(v any) string {
	s, ok := v.(string)
	if !ok {
		return sniff.Diag(v)
	}
	if s == "" || strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._:/-+@", r))
	}) {
		return strconv.Quote(s)
	}
	return s
}

// printSummary writes the figures as a table, one row per direction.
func printSummary(w io.Writer, sum sniff.Summary) {
	if sum.Seconds > 0 {
		fmt.Fprintf(w, "--- %s over %.3f s\n", sum.Kind, sum.Seconds)
	} else {
		fmt.Fprintf(w, "--- %s (no timestamps: no rates)\n", sum.Kind)
	}
	if len(sum.Dirs) == 0 {
		fmt.Fprintln(w, "nothing on the line")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\tframes\tframes/s\tbytes\tbytes/s\tcrc errors\tretransmits\trejected\tresyncs\tnoise\tslip too long\tbad escapes")
	for _, d := range sum.Dirs {
		dir := dirArrows[capture.Unknown]
		for i, name := range []string{"h2d", "d2h"} {
			if d.Dir == name {
				dir = dirArrows[i]
			}
		}
		fps, bps := "-", "-"
		if sum.Seconds > 0 {
			fps, bps = fmt.Sprintf("%.1f", d.FramesPerSec), fmt.Sprintf("%.0f", d.BytesPerSec)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%d (%.2f%%)\t%d/%d (%.2f%%)\t%d\t%d\t%d B\t%d\t%d\n",
			dir, d.Frames, fps, d.Bytes, bps, d.CRCErrors, 100*d.CRCErrorRate, d.Retransmits, d.Sequenced,
			100*d.RetransmitRate, d.Rejected, d.Resyncs, d.NoiseBytes, d.TooLong, d.BadEscapes)
	}
	tw.Flush()
}
