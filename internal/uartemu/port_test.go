package uartemu

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"testing/synctest"
	"time"
)

func TestSilent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		host, device := New(Symmetric(Line{Baud: 115200}))
		defer host.Close()
		defer device.Close()

		device.SetSilent(true)
		if n, err := device.Write(make([]byte, 100)); n != 100 || err != nil {
			t.Fatalf("silent Write = %d, %v; want 100, nil", n, err)
		}
		host.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := host.Read(make([]byte, 1)); !isTimeout(err) {
			t.Fatalf("Read from a silent device = %v, want a timeout", err)
		}
		if s := device.Stats(); s.Dropped != 100 || s.Delivered != 0 {
			t.Errorf("stats %+v, want 100 dropped", s)
		}

		device.SetSilent(false)
		host.SetReadDeadline(time.Time{})
		if _, err := device.Write([]byte("back")); err != nil {
			t.Fatal(err)
		}
		if got := readFull(t, host, 4); string(got) != "back" {
			t.Errorf("got %q after silence, want %q", got, "back")
		}
		checkBalance(t, device.Stats())
	})
}

func TestSilentReleasesBlockedWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		host, device := New(Symmetric(Line{Baud: 9600}))
		defer host.Close()
		defer device.Close()
		done := make(chan int)
		go func() {
			n, _ := device.Write(make([]byte, 1000))
			done <- n
		}()
		synctest.Wait() // Write is blocked on the FIFO
		device.SetSilent(true)
		if n := <-done; n != 1000 {
			t.Errorf("Write = %d, want 1000", n)
		}
		s := device.Stats()
		checkBalance(t, s)
		if s.Dropped != 1000 {
			t.Errorf("stats %+v, want all 1000 bytes dropped", s)
		}
	})
}

func TestFlush(t *testing.T) {
	host, device := newPair(t, Symmetric(Line{}))
	if _, err := host.Write([]byte("stale")); err != nil {
		t.Fatal(err)
	}
	if s := device.RxStats(); s.Buffered != 5 {
		t.Fatalf("Buffered = %d, want 5", s.Buffered)
	}
	device.Flush()
	if _, err := host.Write([]byte("fresh")); err != nil {
		t.Fatal(err)
	}
	if got := readFull(t, device, 5); string(got) != "fresh" {
		t.Errorf("got %q after Flush, want %q", got, "fresh")
	}
	s := device.RxStats()
	checkBalance(t, s)
	if s.Discarded != 5 {
		t.Errorf("Discarded = %d, want 5", s.Discarded)
	}
}

func TestFlushResumesFlowControl(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		host, device := New(Symmetric(Line{Baud: 115200, RxBuffer: 16, TxBuffer: 16, FlowControl: true}))
		defer host.Close()
		defer device.Close()
		errc := writeAll(host, make([]byte, 100), 100)
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if s := host.Stats(); s.Buffered != 16 || s.Written != 32 {
			t.Fatalf("stats %+v, want a full receive buffer and FIFO", s)
		}
		for range 10 {
			device.Flush()
			time.Sleep(10 * time.Millisecond)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		s := host.Stats()
		checkBalance(t, s)
		if s.Overflow != 0 || s.Written != 100 {
			t.Errorf("stats %+v, want 100 bytes written, none lost", s)
		}
	})
}

func TestCloseUnblocksRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		host, device := New(Symmetric(Line{Baud: 115200}))
		defer host.Close()
		errc := make(chan error)
		go func() {
			_, err := device.Read(make([]byte, 10))
			errc <- err
		}()
		synctest.Wait()
		device.Close()
		if err := <-errc; !errors.Is(err, net.ErrClosed) {
			t.Errorf("Read after Close = %v, want net.ErrClosed", err)
		}
		if _, err := device.Read(make([]byte, 10)); !errors.Is(err, ErrClosed) {
			t.Errorf("second Read = %v, want ErrClosed", err)
		}
		if _, err := device.Write([]byte("x")); !errors.Is(err, ErrClosed) {
			t.Errorf("Write after Close = %v, want ErrClosed", err)
		}
		if err := device.Close(); err != nil {
			t.Errorf("second Close = %v", err)
		}
	})
}

func TestCloseUnblocksWrite(t *testing.T) {
	for _, baud := range []int{0, 115200} {
		synctest.Test(t, func(t *testing.T) {
			const buf = 16
			host, device := New(Symmetric(Line{Baud: baud, RxBuffer: buf, TxBuffer: buf, FlowControl: true}))
			defer device.Close()
			type result struct {
				n   int
				err error
			}
			done := make(chan result)
			go func() {
				n, err := host.Write(make([]byte, 1000))
				done <- result{n, err}
			}()
			time.Sleep(time.Second)
			synctest.Wait()
			host.Close()
			r := <-done
			if r.n != 2*buf || !errors.Is(r.err, ErrClosed) {
				t.Errorf("baud %d: Write = %d, %v; want %d, ErrClosed", baud, r.n, r.err, 2*buf)
			}
			s := host.Stats()
			checkBalance(t, s)
			if s.Written != 2*buf || s.Delivered != buf || s.Dropped != buf {
				t.Errorf("baud %d: stats %+v, want %d written, %d delivered, the FIFO dropped", baud, s, 2*buf, buf)
			}
		})
	}
}

// TestCloseIsOneSided checks that the other end sees silence, not EOF.
func TestCloseIsOneSided(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		host, device := New(Symmetric(Line{Baud: 115200}))
		defer device.Close()
		host.Close()
		device.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := device.Read(make([]byte, 1)); !isTimeout(err) || errors.Is(err, io.EOF) {
			t.Errorf("Read after the other end closed = %v, want a timeout", err)
		}
		if _, err := device.Write([]byte("anyone?")); err != nil {
			t.Errorf("Write after the other end closed = %v", err)
		}
		time.Sleep(time.Second)
		if s := device.Stats(); s.Dropped != 7 {
			t.Errorf("stats %+v, want 7 bytes dropped at the closed end", s)
		}
	})
}

func TestReadDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		host, device := New(Symmetric(Line{Baud: 115200}))
		defer host.Close()
		defer device.Close()
		buf := make([]byte, 4)

		start := time.Now()
		device.SetReadDeadline(start.Add(50 * time.Millisecond))
		_, err := device.Read(buf)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read = %v, want a net.Error timeout", err)
		}
		if elapsed := time.Since(start); elapsed != 50*time.Millisecond {
			t.Errorf("timed out after %v, want 50ms", elapsed)
		}
		if _, err := device.Read(buf); !isTimeout(err) {
			t.Errorf("Read past the deadline = %v, want a timeout", err)
		}

		// A deadline set while a Read is blocked ends it.
		device.SetReadDeadline(time.Time{})
		errc := make(chan error)
		go func() {
			_, err := device.Read(buf)
			errc <- err
		}()
		synctest.Wait()
		device.SetReadDeadline(time.Now())
		if err := <-errc; !isTimeout(err) {
			t.Errorf("Read = %v, want a timeout", err)
		}

		// As with net.Conn, a passed deadline wins over waiting bytes.
		if _, err := host.Write([]byte("data")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
		if _, err := device.Read(buf); !isTimeout(err) {
			t.Errorf("Read with bytes waiting past the deadline = %v, want a timeout", err)
		}

		// Extending the deadline lets them through.
		device.SetReadDeadline(time.Now().Add(time.Second))
		if got := readFull(t, device, 4); string(got) != "data" {
			t.Errorf("got %q, want %q", got, "data")
		}
	})
}

func TestDefaults(t *testing.T) {
	l := Line{Baud: -1, BER: 2, DropRate: -1}.withDefaults()
	want := Line{RxBuffer: DefaultRxBuffer, TxBuffer: DefaultTxBuffer, BurstLen: DefaultBurstLen, Seed: DefaultSeed, BER: 1}
	if l != want {
		t.Errorf("withDefaults = %+v, want %+v", l, want)
	}
	if c := Symmetric(want); c.HostToDevice != want || c.DeviceToHost != want {
		t.Errorf("Symmetric = %+v", c)
	}
}

func TestRing(t *testing.T) {
	r := newRing(5)
	out := make([]byte, 5)
	for i := range 20 {
		in := []byte{byte(i), byte(i + 1), byte(i + 2)}
		if n := r.write(in); n != 3 {
			t.Fatalf("write = %d", n)
		}
		if n := r.read(out[:3]); n != 3 || out[0] != byte(i) || out[2] != byte(i+2) {
			t.Fatalf("read = %d %v", n, out[:3])
		}
	}
	if n := r.write([]byte("abcdefg")); n != 5 || r.free() != 0 {
		t.Fatalf("write to a 5-byte ring = %d", n)
	}
	if n := r.read(out); n != 5 || string(out) != "abcde" {
		t.Fatalf("read = %q", out[:n])
	}
}
