// Package uplink keeps serve connected to its ESP32: it opens the serial
// port (or starts an emulated ESP32 in this process), runs the link and the
// mux over it, and opens it again with backoff when the adapter goes away
// or is not there yet. The proxies above it (forward, socks5, dnsproxy) see
// one long-lived Uplink with the method set of the standard library's
// dialers, so they never hold a session that a reconnect replaces.
//
// While the device is not connected, an open waits up to Config.DialWait
// for it and then fails with an error that matches syscall.ENETDOWN, so a
// client gets a clear refusal instead of a hang. Failures the device
// reports match the standard errnos (see mux.ResetError.Is); a name the
// device could not resolve is a *net.DNSError.
//
// Concurrency: all methods are safe for concurrent use. One supervisor
// goroutine owns opening, watching and closing the device; Close stops it
// and waits for it.
package uplink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/uartproxy/uartproxy/internal/capture"
	"github.com/uartproxy/uartproxy/internal/emulator"
	"github.com/uartproxy/uartproxy/internal/hostlink"
	"github.com/uartproxy/uartproxy/internal/link"
	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/mux"
	"github.com/uartproxy/uartproxy/internal/seedv3"
	"github.com/uartproxy/uartproxy/internal/serialport"
	"github.com/uartproxy/uartproxy/internal/testbed"
	"github.com/uartproxy/uartproxy/internal/uartemu"
)

// Config configures an Uplink.
type Config struct {
	// Port is the serial device and its line settings. With Emulate, only
	// Baud and FlowControl are used.
	Port serialport.Config
	// Emulate runs an emulated ESP32 in this process, on an emulated line
	// paced at Port.Baud, in place of a serial port.
	Emulate bool
	// Protocol is what the device speaks: ProtocolAuto (the default) tells
	// uartproxy's firmware from the seed's v3 firmware each time the port
	// is opened; ProtocolNative or ProtocolV3 skip the probe. With
	// Emulate, auto means native.
	Protocol string
	// EmulatedMaxStreams, with Emulate, is how many streams the emulated
	// ESP32 holds at once; 0 keeps the ESP32-C3's 16.
	EmulatedMaxStreams int
	// MinBackoff and MaxBackoff bound the wait between attempts to open
	// the port; it doubles after each failure, with jitter.
	MinBackoff, MaxBackoff time.Duration
	// DialWait is how long an open waits for the device while it is not
	// connected before failing with ENETDOWN.
	DialWait time.Duration
	// InfoInterval is how often the device's INFO (free memory, RSSI,
	// uptime) is fetched while it is connected.
	InfoInterval time.Duration
	// Mirror, if set, records the port's traffic (not with Emulate); the
	// supervisor flushes it every second and when the port is lost.
	Mirror *capture.Writer
	// OnChange, if set, is called from the supervisor goroutine whenever
	// the State changes; it must not block.
	OnChange func(Status)
	Logger   zerolog.Logger
}

// DefaultConfig returns the defaults for a port.
func DefaultConfig() Config {
	return Config{
		Port:         serialport.Config{Baud: 921600, FlowControl: true},
		MinBackoff:   250 * time.Millisecond,
		MaxBackoff:   10 * time.Second,
		DialWait:     3 * time.Second,
		InfoInterval: 10 * time.Second,
		Logger:       zerolog.Nop(),
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MinBackoff <= 0 {
		c.MinBackoff = d.MinBackoff
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(d.MaxBackoff, c.MinBackoff)
	}
	if c.DialWait <= 0 {
		c.DialWait = d.DialWait
	}
	if c.InfoInterval <= 0 {
		c.InfoInterval = d.InfoInterval
	}
	if c.Port.Baud <= 0 {
		c.Port.Baud = d.Port.Baud
	}
	return c
}

// State is where the Uplink is in its life.
type State int

const (
	// StateAbsent: the serial port could not be opened (not plugged in,
	// no permission); the Uplink retries with backoff.
	StateAbsent State = iota
	// StateConnecting: the port is open, the HELLO handshake is not done
	// (device booting, wrong baud, not our firmware).
	StateConnecting
	// StateUp: the handshake is done; streams can be opened.
	StateUp
	// StateClosed: Close was called.
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateAbsent:
		return "absent"
	case StateConnecting:
		return "connecting"
	case StateUp:
		return "up"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Status is a snapshot of the Uplink's state.
type Status struct {
	State State
	Since time.Time // when State was entered
	// Device names what is on the other end: the port path or "emulated".
	Device string
	// LastError is why the port was last lost or could not be opened.
	LastError string
	// Peer is the device's HELLO while State is StateUp.
	Peer   message.Hello
	Baud   int
	RTSCTS bool
	// Protocol is ProtocolNative or ProtocolV3 once known.
	Protocol string
	Info     message.Info // last INFO answer; zero until one arrived
	InfoAt   time.Time
	Opens    uint64 // times the port was opened
	Losses   uint64 // times an open port was lost (unplugged)
	Reboots  uint64 // device restarts seen (new session id from the device)
}

// Uplink is the host's lasting connection to its ESP32.
type Uplink struct {
	cfg  Config
	log  zerolog.Logger
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	dev      device
	changed  chan struct{} // closed and replaced when dev or the state changes
	status   Status
	warnedV3 bool // the v3 limits were logged (once per Uplink)
	// Counters of devices that were closed, so Stats is cumulative.
	pastLink link.Stats
	pastMux  mux.Stats
}

// New starts an Uplink; it returns at once and connects in the background.
// It fails only on a configuration error.
func New(cfg Config) (*Uplink, error) {
	cfg = cfg.withDefaults()
	if !cfg.Emulate && cfg.Port.Path == "" {
		return nil, errors.New("uplink: no serial port given")
	}
	u := &Uplink{
		cfg:     cfg,
		log:     cfg.Logger,
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	u.status = Status{State: StateAbsent, Since: time.Now(), Device: u.deviceName(), Baud: cfg.Port.Baud}
	go u.run()
	return u, nil
}

func (u *Uplink) deviceName() string {
	if u.cfg.Emulate {
		return "emulated ESP32"
	}
	return u.cfg.Port.Path
}

// Close stops the supervisor, fails every stream and closes the port.
func (u *Uplink) Close() error {
	select {
	case <-u.stop:
	default:
		close(u.stop)
	}
	<-u.done
	return nil
}

// Status returns the current state.
func (u *Uplink) Status() Status {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.status
}

// Up reports whether the device handshake is up now.
func (u *Uplink) Up() bool {
	u.mu.Lock()
	dev := u.dev
	u.mu.Unlock()
	if dev == nil {
		return false
	}
	_, _, ok := dev.up()
	return ok
}

// Stats returns the link's and the mux's counters, summed over every time
// the port was opened.
func (u *Uplink) Stats() (link.Stats, mux.Stats) {
	u.mu.Lock()
	defer u.mu.Unlock()
	ls, ms := u.pastLink, u.pastMux
	ls.Dropped = cloneMap(ls.Dropped)
	ms.Failed = cloneMap(ms.Failed)
	if u.dev != nil {
		cur := u.dev.linkStats()
		addLink(&ls, cur)
		ls.SRTT, ls.RTO, ls.InFlight, ls.CongestionWindow = cur.SRTT, cur.RTO, cur.InFlight, cur.CongestionWindow
		ls.Established, ls.Window, ls.MaxPayload = cur.Established, cur.Window, cur.MaxPayload
		ls.LocalSession, ls.PeerSession, ls.LastIncompatibility = cur.LocalSession, cur.PeerSession, cur.LastIncompatibility
		cm := u.dev.muxStats()
		addMux(&ms, cm)
		ms.StreamsOpen = cm.StreamsOpen
	}
	return ls, ms
}

// device returns the current device once streams can be opened, waiting
// up to DialWait (and ctx) for it.
func (u *Uplink) device(ctx context.Context) (device, error) {
	wctx, cancel := context.WithTimeout(ctx, u.cfg.DialWait)
	defer cancel()
	for {
		u.mu.Lock()
		dev, ch, st := u.dev, u.changed, u.status
		u.mu.Unlock()
		if st.State == StateClosed {
			return nil, &DownError{State: st.State, Reason: "uplink closed"}
		}
		if dev != nil {
			err := dev.waitUp(wctx)
			if err == nil {
				return dev, nil
			}
			if errors.Is(err, errReplaced) {
				// Being replaced: wait for the supervisor's next step.
				select {
				case <-ch:
				case <-wctx.Done():
				}
			}
		} else {
			select {
			case <-ch:
				continue
			case <-wctx.Done():
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if wctx.Err() != nil {
			st := u.Status()
			return nil, &DownError{State: st.State, Device: st.Device, Reason: st.LastError}
		}
	}
}

// DownError is returned by opens while the device is not connected. It
// matches syscall.ENETDOWN.
type DownError struct {
	State  State
	Device string
	Reason string
}

func (e *DownError) Error() string {
	msg := "ESP32 not connected"
	if e.Device != "" {
		msg += " (" + e.Device + ": " + e.State.String()
		if e.Reason != "" {
			msg += ": " + e.Reason
		}
		msg += ")"
	}
	return msg
}

// Is makes a DownError match syscall.ENETDOWN.
func (e *DownError) Is(target error) bool { return target == syscall.ENETDOWN }

// Timeout reports false: the device being away is not a timeout.
func (e *DownError) Timeout() bool { return false }

// DialContext opens a TCP connection from the ESP32 to address; names are
// resolved on the ESP32. Its signature is (*net.Dialer).DialContext's.
func (u *Uplink) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return retry(u, ctx, "dial", network, func(d device) (net.Conn, error) {
		return d.dial(ctx, network, address, nil)
	})
}

// openAttempts bounds how often an open is tried when the link session
// ends under it (a device reboot the supervisor has not seen yet): the
// open never completed, so trying again on the next session is safe.
const openAttempts = 3

func retry[T any](u *Uplink, ctx context.Context, op, network string, open func(device) (T, error)) (T, error) {
	var zero T
	for attempt := 1; ; attempt++ {
		d, err := u.device(ctx)
		if err != nil {
			return zero, &net.OpError{Op: op, Net: network, Err: err}
		}
		v, err := open(d)
		if err == nil || attempt == openAttempts || !errors.Is(err, syscall.ENETRESET) || ctx.Err() != nil {
			return v, err
		}
	}
}

// DialTLS opens a TCP connection wrapped in TLS on the ESP32.
func (u *Uplink) DialTLS(ctx context.Context, address string, tls mux.TLSOptions) (net.Conn, error) {
	return retry(u, ctx, "dial", "tcp", func(d device) (net.Conn, error) {
		return d.dial(ctx, "tcp", address, &tls)
	})
}

// ListenPacket opens a UDP socket on the ESP32 bound to address ("" for
// any). Its signature is (*net.ListenConfig).ListenPacket's; WriteTo takes
// any net.Addr whose String is host:port, names included.
func (u *Uplink) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	return retry(u, ctx, "listen", network, func(d device) (net.PacketConn, error) {
		return d.listenPacket(ctx, network, address)
	})
}

// Listen opens a TCP listener on the ESP32. Its signature is
// (*net.ListenConfig).Listen's.
func (u *Uplink) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	return retry(u, ctx, "listen", network, func(d device) (net.Listener, error) {
		return d.listen(ctx, network, address)
	})
}

// LookupNetIP resolves host on the ESP32; network is "ip", "ip4" or
// "ip6". Its signature is (*net.Resolver).LookupNetIP's. A name that does
// not exist gives a *net.DNSError with IsNotFound.
func (u *Uplink) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	family := 0
	switch network {
	case "ip4":
		family = 4
	case "ip6":
		family = 6
	}
	d, err := u.device(ctx)
	if err != nil {
		return nil, &net.DNSError{Err: err.Error(), Name: host, IsTemporary: true}
	}
	return d.lookup(ctx, family, host)
}

// Info asks the device for its state now.
func (u *Uplink) Info(ctx context.Context) (message.Info, error) {
	d, err := u.device(ctx)
	if err != nil {
		return message.Info{}, err
	}
	return d.info(ctx)
}

// run is the supervisor: open, watch, reopen.
func (u *Uplink) run() {
	defer close(u.done)
	backoff := u.cfg.MinBackoff
	var lastErr string
	for {
		dev, err := u.open()
		if err != nil {
			msg := err.Error()
			if msg != lastErr {
				u.log.Warn().Err(err).Dur("retry_max", u.cfg.MaxBackoff).Msg("cannot open the serial port; retrying until it works")
				lastErr = msg
			} else {
				u.log.Debug().Err(err).Msg("serial port still unavailable")
			}
			u.setState(func(s *Status) { s.State = StateAbsent; s.LastError = msg })
			wait := jitter(backoff)
			if errors.Is(err, fs.ErrNotExist) {
				// Nothing to retry until the device node appears: watch
				// for it, so a replugged adapter is picked up at once.
				wait = u.waitForPath(wait)
			}
			if !u.sleep(wait) {
				u.setState(func(s *Status) { s.State = StateClosed })
				return
			}
			backoff = min(backoff*2, u.cfg.MaxBackoff)
			continue
		}
		if lastErr != "" {
			u.log.Info().Str("port", u.deviceName()).Msg("serial port is back")
		}
		lastErr = ""
		backoff = u.cfg.MinBackoff
		stopped := u.watch(dev)
		u.retire(dev)
		if stopped {
			u.setState(func(s *Status) { s.State = StateClosed })
			return
		}
		msg := "lost"
		if err := dev.Err(); err != nil {
			msg = err.Error()
		}
		lastErr = msg
		u.log.Warn().Str("port", u.deviceName()).Str("reason", msg).Msg("serial port lost; streams were reset; reconnecting")
		u.setState(func(s *Status) { s.State = StateAbsent; s.LastError = msg; s.Losses++ })
	}
}

func (u *Uplink) open() (device, error) {
	proto := u.cfg.Protocol
	if proto == "" {
		proto = ProtocolAuto
	}
	if u.cfg.Emulate {
		if proto == ProtocolV3 {
			return u.openEmulatedV3()
		}
		o := testbed.Clean(u.cfg.Port.Baud)
		if !u.cfg.Port.FlowControl {
			o.Line = uartemu.Symmetric(uartemu.Line{Baud: u.cfg.Port.Baud})
		}
		if n := u.cfg.EmulatedMaxStreams; n > 0 {
			o.Device = emulator.DefaultConfig()
			o.Device.MaxStreams = n
		}
		o.Link.Logger = u.log.With().Str("layer", "link").Logger()
		o.Host.Logger = u.log.With().Str("layer", "mux").Logger()
		b, err := testbed.New(o)
		if err != nil {
			return nil, err
		}
		return &nativeDevice{s: b.Host, l: b.HostLink, flow: b.HostPort.FlowControl,
			close: func() error { b.Close(); return nil }, rebootFn: b.Device.Reboot}, nil
	}
	if proto == ProtocolAuto {
		pc := u.cfg.Port
		pc.ReadTimeout = probeEvery / 2
		p, err := serialport.Open(pc)
		if err != nil {
			return nil, err
		}
		proto, err = probe(p)
		p.Close()
		if err != nil {
			return nil, err
		}
		u.log.Debug().Str("protocol", proto).Msg("device protocol detected")
	}
	if proto == ProtocolV3 {
		port, err := serialport.Open(u.cfg.Port)
		if err != nil {
			return nil, err
		}
		var rw io.ReadWriteCloser = port
		if u.cfg.Mirror != nil {
			rw = capture.NewTap(port, u.cfg.Mirror).(io.ReadWriteCloser)
		}
		return newV3Device(rw, port.FlowControl(), rw.Close, u.log), nil
	}
	h, err := hostlink.Open(hostlink.Config{Port: u.cfg.Port, Logger: u.log, Mirror: u.cfg.Mirror})
	if err != nil {
		return nil, err
	}
	return &nativeDevice{s: h.Session(), l: h.Link(), flow: h.Port().FlowControl, close: h.Close}, nil
}

// openEmulatedV3 runs the seed v3 board emulator on an emulated line.
func (u *Uplink) openEmulatedV3() (device, error) {
	hp, dp := uartemu.New(uartemu.Symmetric(uartemu.Line{Baud: u.cfg.Port.Baud, FlowControl: u.cfg.Port.FlowControl}))
	dc := seedv3.DefaultDeviceConfig()
	dc.Logger = u.log.With().Str("device", "seed v3 emulator").Logger()
	dev, err := seedv3.NewDevice(dp, dc)
	if err != nil {
		hp.Close()
		dp.Close()
		return nil, err
	}
	d := newV3Device(hp, u.cfg.Port.FlowControl, func() error {
		hp.Close()
		dev.Close()
		return dp.Close()
	}, u.log)
	d.rebootFn = dev.Reboot
	return d, nil
}

// watch runs while dev is open. It returns true when Close was called.
func (u *Uplink) watch(dev device) bool {
	proto := ProtocolNative
	if _, ok := dev.(*v3Device); ok {
		proto = ProtocolV3
	}
	u.mu.Lock()
	u.dev = dev
	u.status.Opens++
	u.status.RTSCTS = dev.FlowControl()
	u.status.Protocol = proto
	u.mu.Unlock()
	if proto == ProtocolV3 && !u.warnedV3 {
		u.warnedV3 = true
		u.log.Warn().Strs("limits", V3Limits).
			Msg("the device runs the seed's v3 firmware: serving what v3 allows; flash uartproxy's firmware for full speed and these features")
	}
	u.setState(func(s *Status) { s.State = StateConnecting })
	u.log.Info().Str("port", u.deviceName()).Int("baud", u.cfg.Port.Baud).Bool("rtscts", dev.FlowControl()).
		Msg("serial port open; waiting for the ESP32's HELLO")

	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var infoAt time.Time
	var restarts uint64 = dev.linkStats().PeerRestarts
	var waitingSince = time.Now()
	var warnedSilent bool
	var flushedAt time.Time
	var mirrorFailed bool
	infoCh := make(chan message.Info, 1)
	for {
		select {
		case <-u.stop:
			return true
		case <-dev.Done():
			return false
		case info := <-infoCh:
			u.mu.Lock()
			u.status.Info, u.status.InfoAt = info, time.Now()
			u.mu.Unlock()
		case <-tick.C:
		}
		peer, maxPayload, up := dev.up()
		st := u.Status()
		ls := dev.linkStats()
		if ls.PeerRestarts != restarts {
			u.log.Warn().Msg("the ESP32 restarted; its streams were reset")
			u.mu.Lock()
			u.status.Reboots += ls.PeerRestarts - restarts
			u.mu.Unlock()
			restarts = ls.PeerRestarts
		}
		switch {
		case up && st.State != StateUp:
			u.log.Info().Str("firmware", peer.Firmware).Uint("max_streams", peer.MaxStreams).
				Int("max_payload", maxPayload).Msg("ESP32 connected")
			u.setState(func(s *Status) { s.State = StateUp; s.Peer = peer; s.LastError = "" })
			infoAt = time.Time{}
			warnedSilent = false
		case !up && st.State == StateUp:
			u.log.Warn().Msg("ESP32 link down; reconnecting")
			u.setState(func(s *Status) { s.State = StateConnecting; s.LastError = "link down" })
			waitingSince = time.Now()
		case !up && !warnedSilent && time.Since(waitingSince) > 5*time.Second:
			warnedSilent = true
			reason := "no HELLO from the device"
			if ls.LastIncompatibility != "" {
				reason = ls.LastIncompatibility
			}
			u.log.Warn().Str("reason", reason).Msg("ESP32 not answering: is it running the uartproxy firmware at this baud rate?")
			u.setState(func(s *Status) { s.LastError = reason })
		}
		if m := u.cfg.Mirror; m != nil && time.Since(flushedAt) >= time.Second {
			flushedAt = time.Now()
			if err := m.Flush(); err != nil && !mirrorFailed {
				mirrorFailed = true
				u.log.Error().Err(err).Msg("--mirror capture failed; the link goes on without it")
			}
		}
		if up && time.Since(infoAt) >= u.cfg.InfoInterval {
			infoAt = time.Now()
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				if info, err := dev.info(ctx); err == nil {
					select {
					case infoCh <- info:
					default:
					}
				}
			}()
		}
	}
}

// retire closes dev and folds its counters into the past totals.
func (u *Uplink) retire(dev device) {
	dev.Close()
	if u.cfg.Mirror != nil {
		u.cfg.Mirror.Flush()
	}
	ls, ms := dev.linkStats(), dev.muxStats()
	u.mu.Lock()
	addLink(&u.pastLink, ls)
	addMux(&u.pastMux, ms)
	u.dev = nil
	u.mu.Unlock()
}

func (u *Uplink) setState(f func(*Status)) {
	u.mu.Lock()
	old := u.status.State
	f(&u.status)
	if u.status.State != old {
		u.status.Since = time.Now()
	}
	st := u.status
	close(u.changed)
	u.changed = make(chan struct{})
	u.mu.Unlock()
	if st.State != old && u.cfg.OnChange != nil {
		u.cfg.OnChange(st)
	}
}

// pathPoll is how often a missing device node is looked for.
const pathPoll = 100 * time.Millisecond

// waitForPath waits up to d for the port's path to appear and returns how
// much of d is left to sleep: 0 if it appeared. Close ends it early (the
// following sleep sees the stop).
func (u *Uplink) waitForPath(d time.Duration) time.Duration {
	deadline := time.Now().Add(d)
	t := time.NewTicker(pathPoll)
	defer t.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-u.stop:
			return 0
		case <-t.C:
		}
		if _, err := os.Stat(u.cfg.Port.Path); err == nil {
			return 0
		}
	}
	return 0
}

// sleep waits d or until Close; it returns false on Close.
func (u *Uplink) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-u.stop:
		return false
	}
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// RebootEmulated restarts the emulated ESP32 (tests, SIGUSR1 in serve
// --emulate). It fails when the uplink does not run an emulator.
func (u *Uplink) RebootEmulated() error {
	u.mu.Lock()
	dev := u.dev
	u.mu.Unlock()
	r, ok := dev.(interface{ reboot() error })
	if !ok {
		return errors.New("uplink: no emulated device running now")
	}
	return r.reboot()
}

func addLink(dst *link.Stats, s link.Stats) {
	dst.TxFrames += s.TxFrames
	dst.TxBytes += s.TxBytes
	dst.RxFrames += s.RxFrames
	dst.RxBytes += s.RxBytes
	dst.TxData += s.TxData
	dst.RxData += s.RxData
	dst.TxPayload += s.TxPayload
	dst.Retransmits += s.Retransmits
	dst.FastRetransmits += s.FastRetransmits
	dst.Timeouts += s.Timeouts
	dst.Sessions += s.Sessions
	dst.PeerRestarts += s.PeerRestarts
	dst.DeadLinks += s.DeadLinks
	if dst.Dropped == nil {
		dst.Dropped = map[string]uint64{}
	}
	for k, v := range s.Dropped {
		dst.Dropped[k] += v
	}
}

func addMux(dst *mux.Stats, s mux.Stats) {
	dst.Sessions += s.Sessions
	dst.Opened += s.Opened
	dst.BytesIn += s.BytesIn
	dst.BytesOut += s.BytesOut
	dst.ProtoErrors += s.ProtoErrors
	dst.CtrlDropped += s.CtrlDropped
	dst.DgramDropped += s.DgramDropped
	if dst.Failed == nil {
		dst.Failed = map[string]uint64{}
	}
	for k, v := range s.Failed {
		dst.Failed[k] += v
	}
}

func cloneMap(m map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
