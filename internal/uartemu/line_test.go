package uartemu

import (
	"bytes"
	"math"
	"testing"
	"testing/synctest"
	"time"
)

func TestIntact(t *testing.T) {
	tests := []struct {
		name string
		line Line
		size int
	}{
		{"unpaced", Line{FlowControl: true}, 8 << 20},
		{"unpaced_small_buffers", Line{FlowControl: true, RxBuffer: 64, TxBuffer: 16}, 1 << 20},
		{"paced_16M", Line{Baud: 16_000_000, FlowControl: true}, 2 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, device := newPair(t, Symmetric(tt.line))
			up := randomBytes(tt.size, 1)
			down := randomBytes(tt.size, 2)
			upErr := writeAll(host, up, 32<<10)
			downErr := writeAll(device, down, 1000)
			gotDown := make(chan []byte, 1)
			go func() { gotDown <- readFull(t, host, len(down)) }()
			if got := readFull(t, device, len(up)); !bytes.Equal(got, up) {
				t.Error("host→device bytes differ")
			}
			if got := <-gotDown; !bytes.Equal(got, down) {
				t.Error("device→host bytes differ")
			}
			for _, errc := range []<-chan error{upErr, downErr} {
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
			}
			for _, s := range []LineStats{host.Stats(), device.Stats()} {
				checkBalance(t, s)
				if s.Written != int64(tt.size) || s.Delivered != s.Written || s.Corrupted+s.Dropped+s.Overflow != 0 {
					t.Errorf("stats %+v, want %d bytes clean", s, tt.size)
				}
			}
		})
	}
}

// TestPacingRealClock is a sanity check on the real clock; the precise
// figure comes from BenchmarkPacing.
func TestPacingRealClock(t *testing.T) {
	const baud = 115200
	size := baud / 10 / 2 // 0.5 s
	host, device := newPair(t, Symmetric(Line{Baud: baud}))
	data := randomBytes(size, 3)
	start := time.Now()
	errc := writeAll(host, data, 256)
	got := readFull(t, device, size)
	elapsed := time.Since(start)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("bytes differ")
	}
	rate := float64(size) / elapsed.Seconds()
	if want := baud / 10.0; math.Abs(rate/want-1) > 0.10 {
		t.Errorf("%.0f B/s at %d baud, want %.0f ±10%%", rate, baud, want)
	}
}

// TestPacingVirtualClock checks the pacing arithmetic exactly, on the fake
// clock of a synctest bubble.
func TestPacingVirtualClock(t *testing.T) {
	for _, baud := range []int{9600, 115200, 921600, 3_000_000} {
		for _, chunk := range []int{1, 64, 4096} {
			synctest.Test(t, func(t *testing.T) {
				host, device := New(Symmetric(Line{Baud: baud}))
				defer host.Close()
				defer device.Close()
				size := baud / 10 / 4 // 250 ms of wire time
				if chunk == 1 {
					size = min(size, 2000)
				}
				wire := wireClock{baud: uint64(baud)}.durOf(int64(size))
				data := randomBytes(size, 4)
				start := time.Now()
				errc := writeAll(host, data, chunk)
				got := readFull(t, device, size)
				elapsed := time.Since(start)
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data) {
					t.Fatal("bytes differ")
				}
				if elapsed < wire || elapsed > wire+minTick {
					t.Errorf("baud %d chunk %d: %d bytes took %v, want %v (+%v)", baud, chunk, size, elapsed, wire, minTick)
				}
			})
		}
	}
}

// TestIdleLineNoBurst checks that a line that sat idle gives no head start:
// bytes written after a pause take their full time across.
func TestIdleLineNoBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const baud = 115200
		host, device := New(Symmetric(Line{Baud: baud}))
		defer host.Close()
		defer device.Close()
		for _, size := range []int{1, 1000, 5000, 10} {
			time.Sleep(time.Second)
			start := time.Now()
			errc := writeAll(host, make([]byte, size), 256)
			readFull(t, device, size)
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			wire := wireClock{baud: baud}.durOf(int64(size))
			if elapsed := time.Since(start); elapsed < wire || elapsed > wire+minTick {
				t.Errorf("%d bytes after a pause took %v, want %v (+%v)", size, elapsed, wire, minTick)
			}
		}
	})
}

// TestTxBufferBound checks that Write returns once the writer is at most
// TxBuffer bytes ahead of the wire, and no earlier.
func TestTxBufferBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const baud, size, fifo = 115200, 1000, 128
		host, device := New(Symmetric(Line{Baud: baud, TxBuffer: fifo}))
		defer host.Close()
		defer device.Close()
		start := time.Now()
		if _, err := host.Write(make([]byte, size)); err != nil {
			t.Fatal(err)
		}
		elapsed := time.Since(start)
		want := wireClock{baud: baud}.durOf(size - fifo)
		if elapsed != want {
			t.Errorf("Write returned after %v, want %v", elapsed, want)
		}
		if s := host.Stats(); s.Queued != fifo || s.Delivered != size-fifo {
			t.Errorf("Queued %d Delivered %d, want %d and %d", s.Queued, s.Delivered, fifo, size-fifo)
		}
	})
}

func TestFlowControl(t *testing.T) {
	const (
		baud    = 115200
		size    = 8192
		rxBuf   = 256
		perRead = 64
		every   = 10 * time.Millisecond // reader takes 6400 B/s, the wire offers 11520
	)
	// slowRead reads until the writer is done and the wire is quiet.
	slowRead := func(p *Port, written <-chan error) ([]byte, error) {
		var got []byte
		buf := make([]byte, perRead)
		done := false
		for {
			time.Sleep(every)
			p.SetReadDeadline(time.Now().Add(time.Millisecond))
			n, err := p.Read(buf)
			got = append(got, buf[:n]...)
			if isTimeout(err) && done {
				return got, nil
			} else if err != nil && !isTimeout(err) {
				return got, err
			}
			select {
			case err := <-written:
				if err != nil {
					return got, err
				}
				done = true
			default:
			}
		}
	}

	t.Run("on", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			host, device := New(Symmetric(Line{Baud: baud, RxBuffer: rxBuf, FlowControl: true}))
			defer host.Close()
			defer device.Close()
			data := randomBytes(size, 5)
			start := time.Now()
			got, err := slowRead(device, writeAll(host, data, 1024))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("got %d bytes, want the %d written, intact", len(got), size)
			}
			s := host.Stats()
			checkBalance(t, s)
			if s.Overflow != 0 || s.Delivered != size {
				t.Errorf("stats %+v, want no overflow", s)
			}
			// The reader sets the pace: about size/perRead reads.
			if elapsed, min := time.Since(start), (size-rxBuf)/perRead*every; elapsed < min {
				t.Errorf("took %v, want at least %v: the wire did not wait for the reader", elapsed, min)
			}
		})
	})

	t.Run("off", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			host, device := New(Symmetric(Line{Baud: baud, RxBuffer: rxBuf}))
			defer host.Close()
			defer device.Close()
			data := randomBytes(size, 6)
			got, err := slowRead(device, writeAll(host, data, 1024))
			if err != nil {
				t.Fatal(err)
			}
			s := host.Stats()
			checkBalance(t, s)
			if s.Overflow == 0 {
				t.Fatalf("stats %+v, want overflow", s)
			}
			if s.Written != size || s.Dropped != 0 || s.Queued != 0 || s.Buffered != 0 {
				t.Errorf("stats %+v, want all %d bytes crossed", s, size)
			}
			if int64(len(got)) != s.Written-s.Overflow || s.Read != int64(len(got)) {
				t.Errorf("read %d bytes, want Written %d - Overflow %d", len(got), s.Written, s.Overflow)
			}
			if !isSubsequence(got, data) {
				t.Error("bytes read are not the bytes written minus the lost ones")
			}
		})
	})
}

// transfer sends size random bytes host→device over an unpaced flow-controlled
// line with l's error settings and returns what arrived and the stats.
func transfer(t *testing.T, l Line, size int) (sent, got []byte, s LineStats) {
	t.Helper()
	l.FlowControl = true
	host, device := newPair(t, Config{HostToDevice: l})
	sent = randomBytes(size, 7)
	errc := writeAll(host, sent, 4096)
	got = make([]byte, 0, size)
	buf := make([]byte, 4096)
	for done := false; ; {
		if !done {
			select {
			case err := <-errc:
				if err != nil {
					t.Fatal(err)
				}
				done = true
			default:
			}
		}
		if s := host.Stats(); done && s.Queued == 0 && s.Buffered == 0 {
			break
		}
		device.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		n, err := device.Read(buf)
		if err != nil && !isTimeout(err) {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	s = host.Stats()
	checkBalance(t, s)
	return sent, got, s
}

func within(t *testing.T, what string, got int64, want, tol float64) {
	t.Helper()
	if math.Abs(float64(got)-want) > tol*want {
		t.Errorf("%s = %d, want %.0f ±%.0f%%", what, got, want, tol*100)
	}
}

func TestBitErrors(t *testing.T) {
	const size, ber = 1 << 20, 1e-3
	sent, got, s := transfer(t, Line{BER: ber}, size)
	if len(got) != size {
		t.Fatalf("got %d bytes, want %d", len(got), size)
	}
	differ := 0
	for i := range got {
		if got[i] != sent[i] {
			differ++
		}
	}
	if int64(differ) != s.Corrupted {
		t.Errorf("%d bytes differ, Corrupted = %d", differ, s.Corrupted)
	}
	// P(byte hit) = 1-(1-BER)^8; σ ≈ 89 at 8000, so 5 % is > 4σ.
	within(t, "Corrupted", s.Corrupted, size*(1-math.Pow(1-ber, 8)), 0.05)
}

func TestDrops(t *testing.T) {
	const size, rate = 1 << 20, 1e-3
	sent, got, s := transfer(t, Line{DropRate: rate}, size)
	if int64(len(got)) != size-s.Dropped {
		t.Errorf("got %d bytes, want %d - Dropped %d", len(got), size, s.Dropped)
	}
	if !isSubsequence(got, sent) {
		t.Error("bytes read are not the bytes written minus the dropped ones")
	}
	within(t, "Dropped", s.Dropped, size*rate, 0.15) // σ ≈ 32 at 1049
}

func TestBursts(t *testing.T) {
	const size, rate, burstLen = 1 << 20, 1e-4, 16
	sent, got, s := transfer(t, Line{BurstRate: rate, BurstLen: burstLen}, size)
	if len(got) != size {
		t.Fatalf("got %d bytes, want %d: bursts replace bytes, they do not remove them", len(got), size)
	}
	within(t, "Bursts", s.Bursts, size*rate, 0.35) // σ ≈ 10 at 105
	if s.BurstBytes > s.Bursts*burstLen || s.BurstBytes <= (s.Bursts-1)*burstLen {
		t.Errorf("BurstBytes %d for %d bursts of %d", s.BurstBytes, s.Bursts, burstLen)
	}
	differ := 0
	for i := range got {
		if got[i] != sent[i] {
			differ++
		}
	}
	// Garbage equals the original byte 1 time in 256.
	if int64(differ) > s.BurstBytes || float64(differ) < 0.97*float64(s.BurstBytes) {
		t.Errorf("%d bytes differ for %d burst bytes", differ, s.BurstBytes)
	}
}

func TestErrorsReproducible(t *testing.T) {
	l := Line{BER: 1e-3, DropRate: 1e-3, BurstRate: 1e-3, Seed: 42}
	_, a, sa := transfer(t, l, 1<<16)
	_, b, sb := transfer(t, l, 1<<16)
	if !bytes.Equal(a, b) || sa != sb {
		t.Error("same seed, different results")
	}
	l.Seed = 43
	if _, c, _ := transfer(t, l, 1<<16); bytes.Equal(a, c) {
		t.Error("different seeds, same results")
	}
}

func TestWireClock(t *testing.T) {
	c := wireClock{baud: 115200}
	if got := c.durOf(11520); got != time.Second {
		t.Errorf("durOf(11520) = %v, want 1s", got)
	}
	if got := c.bytesIn(time.Second); got != 11520 {
		t.Errorf("bytesIn(1s) = %d, want 11520", got)
	}
	c = wireClock{baud: 3_000_000}
	for n := int64(0); n < 1000; n++ {
		if got := c.bytesIn(c.durOf(n)); got != n {
			t.Fatalf("bytesIn(durOf(%d)) = %d", n, got)
		}
	}
	if got := c.bytesIn(-time.Second); got != 0 {
		t.Errorf("bytesIn(-1s) = %d", got)
	}
}
