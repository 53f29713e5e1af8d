// Package daemon is `uartproxy serve`: it keeps the uplink to the ESP32
// and runs, over it, the local and remote forwards, the SOCKS5 server, the
// DNS forwarder, and the HTTP endpoint with /metrics and /healthz. It
// speaks sd_notify to systemd, reloads its configuration on request
// (forwards added or removed without touching the others) and drains on
// shutdown.
//
// Concurrency: Start, Reload and Shutdown are serialised by one mutex; the
// servers run in their own goroutines; Snapshot and the HTTP handlers may
// run at any time.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/uartproxy/uartproxy/internal/capture"
	"github.com/uartproxy/uartproxy/internal/config"
	"github.com/uartproxy/uartproxy/internal/dnsproxy"
	"github.com/uartproxy/uartproxy/internal/forward"
	"github.com/uartproxy/uartproxy/internal/metrics"
	"github.com/uartproxy/uartproxy/internal/policy"
	"github.com/uartproxy/uartproxy/internal/serialport"
	"github.com/uartproxy/uartproxy/internal/socks5"
	"github.com/uartproxy/uartproxy/internal/uplink"
)

// Options configures a Daemon.
type Options struct {
	Config config.Config
	// Credentials turns on SOCKS5 username/password authentication; nil
	// leaves it off.
	Credentials *config.Credentials
	Logger      zerolog.Logger
	Build       metrics.Build
	// Load reads the configuration again for Reload (the file, the
	// environment, and the flags as given at start); nil disables Reload.
	Load func() (config.Config, *config.Credentials, error)
	// EmulatedMaxStreams, with Config.Emulate, sets how many streams the
	// emulated ESP32 holds (tests and benchmarks); 0 keeps its default.
	EmulatedMaxStreams int
	// Mirror, if set, records the serial port's traffic for `sniff`.
	Mirror *capture.Writer
	// Notify turns sd_notify on (it is a no-op outside systemd anyway).
	Notify bool
}

// Daemon is a running serve.
type Daemon struct {
	opts   Options
	log    zerolog.Logger
	up     *uplink.Uplink
	gate   gate
	notify notifier
	wake   chan struct{} // the uplink's state changed

	policy atomic.Pointer[policy.Policy]
	creds  atomic.Pointer[config.Credentials]

	mu       sync.Mutex
	cfg      config.Config
	forwards map[string]*forward.Forward // by Spec.String()
	socks    *socksServer
	dns      *dnsServer
	web      *webServer
	stopped  bool
	bg       sync.WaitGroup // servers being drained after a reload
	// bgCtx is the parent of those drains; Shutdown cancels it at its
	// own deadline, so they cannot outlast it.
	bgCtx context.Context
	cutBg context.CancelFunc
}

type socksServer struct {
	srv  *socks5.Server
	ln   net.Listener
	key  string // settings that need a new server when they change
	done chan struct{}
}

type dnsServer struct {
	srv *dnsproxy.Server
	key string
}

// New checks the configuration and prepares a Daemon; Start runs it.
func New(opts Options) (*Daemon, error) {
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	d := &Daemon{
		opts:     opts,
		log:      opts.Logger,
		cfg:      opts.Config,
		forwards: map[string]*forward.Forward{},
		wake:     make(chan struct{}, 1),
	}
	d.bgCtx, d.cutBg = context.WithCancel(context.Background())
	if opts.Notify {
		d.notify = newNotifier()
	}
	p, err := newPolicy(opts.Config.Access)
	if err != nil {
		return nil, err
	}
	d.policy.Store(p)
	d.creds.Store(opts.Credentials)
	return d, nil
}

func newPolicy(a config.Access) (*policy.Policy, error) { return a.Policy() }

// Start starts the uplink and binds every listener. A listener that
// cannot be bound (address in use) is an error: everything started is
// stopped again.
func (d *Daemon) Start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	cfg := d.cfg
	uc := uplink.DefaultConfig()
	uc.Port = serialport.Config{Path: cfg.Port, Baud: cfg.Baud, FlowControl: cfg.Flow != "none"}
	uc.Emulate = cfg.Emulate
	uc.Protocol = cfg.Protocol
	uc.EmulatedMaxStreams = d.opts.EmulatedMaxStreams
	uc.Mirror = d.opts.Mirror
	uc.MinBackoff, uc.MaxBackoff = time.Duration(cfg.Reconnect.MinBackoff), time.Duration(cfg.Reconnect.MaxBackoff)
	uc.Logger = d.log.With().Str("part", "uplink").Logger()
	uc.OnChange = func(uplink.Status) {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
	up, err := uplink.New(uc)
	if err != nil {
		return err
	}
	d.up = up
	d.gate.SetLimit(cfg.Limits.MaxClients)

	err = d.startAll(cfg)
	if err != nil {
		d.stopAllLocked(context.Background())
		d.up.Close()
		return err
	}
	d.log.Info().Str("device", d.deviceName()).Int("baud", cfg.Baud).Str("flow", cfg.Flow).
		Strs("forwards", cfg.Forwards).Strs("reverse", cfg.Reverse).
		Str("socks5", cfg.SOCKS5.Listen).Bool("socks5_auth", d.creds.Load() != nil).
		Str("dns", cfg.DNS.Listen).Str("metrics", cfg.Metrics.Listen).
		Int("max_clients", cfg.Limits.MaxClients).Msg("uartproxy serve started")
	d.notify.ready(d.statusLine())
	return nil
}

func (d *Daemon) deviceName() string {
	if d.cfg.Emulate {
		return "emulated ESP32"
	}
	return d.cfg.Port
}

func (d *Daemon) startAll(cfg config.Config) error {
	for _, spec := range specs(cfg) {
		if err := d.startForward(spec); err != nil {
			return err
		}
	}
	if err := d.startSOCKS(cfg); err != nil {
		return err
	}
	if err := d.startDNS(cfg); err != nil {
		return err
	}
	return d.startWeb(cfg)
}

// specs parses the configuration's forwards; Validate has checked them.
func specs(cfg config.Config) []forward.Spec {
	var out []forward.Spec
	for _, s := range cfg.Forwards {
		if sp, err := forward.ParseLocal(s); err == nil {
			out = append(out, sp)
		}
	}
	for _, s := range cfg.Reverse {
		if sp, err := forward.ParseRemote(s); err == nil {
			out = append(out, sp)
		}
	}
	return out
}

func specKey(sp forward.Spec) string {
	if sp.Remote {
		return "R " + sp.String()
	}
	return "L " + sp.String()
}

func (d *Daemon) startForward(sp forward.Spec) error {
	cfg := d.cfg
	f, err := forward.New(forward.Config{
		Spec:           sp,
		Dial:           d.up.DialContext,
		ListenPacket:   d.up.ListenPacket,
		Listen:         d.up.Listen,
		Admit:          d.gate.Admit,
		ConnectTimeout: time.Duration(cfg.Limits.ConnectTimeout),
		UDPIdleTimeout: time.Duration(cfg.Limits.UDPIdleTimeout),
		Logger:         d.log.With().Str("part", "forward").Logger(),
	})
	if err != nil {
		return err
	}
	if err := f.Start(); err != nil {
		what := "-L"
		if sp.Remote {
			what = "-R"
		}
		return fmt.Errorf("forward %s %s: %w", what, sp, err)
	}
	d.forwards[specKey(sp)] = f
	return nil
}

func socksKey(cfg config.Config, auth bool) string {
	s := cfg.SOCKS5
	return fmt.Sprintf("%s|%v|%v|%v|%v|%v", s.Listen, auth, s.UDP, s.Bind, cfg.Limits.HandshakeTimeout, cfg.Limits.ConnectTimeout)
}

func (d *Daemon) startSOCKS(cfg config.Config) error {
	if cfg.SOCKS5.Listen == "" {
		return nil
	}
	auth := d.creds.Load() != nil
	sc := socks5.Config{
		Dial:             d.up.DialContext,
		Allow:            d.allow,
		Admit:            d.gate.Admit,
		HandshakeTimeout: time.Duration(cfg.Limits.HandshakeTimeout),
		ConnectTimeout:   time.Duration(cfg.Limits.ConnectTimeout),
		UDPIdleTimeout:   time.Duration(cfg.Limits.UDPIdleTimeout),
		Logger:           d.log.With().Str("part", "socks5").Logger(),
	}
	if cfg.SOCKS5.UDP {
		sc.ListenPacket = d.up.ListenPacket
	}
	if cfg.SOCKS5.Bind {
		sc.Listen = d.up.Listen
	}
	if auth {
		sc.Authenticate = func(user, password string) bool {
			c := d.creds.Load()
			return c != nil && c.Check(user, password)
		}
	}
	ln, err := net.Listen("tcp", cfg.SOCKS5.Listen)
	if err != nil {
		return fmt.Errorf("socks5: %w", err)
	}
	s := &socksServer{srv: socks5.New(sc), ln: ln, key: socksKey(cfg, auth), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil {
			d.log.Error().Err(err).Msg("socks5 server stopped")
		}
	}()
	d.socks = s
	if !auth && !isLoopback(ln.Addr()) {
		d.log.Warn().Str("listen", ln.Addr().String()).
			Msg("SOCKS5 listens beyond loopback without authentication: anyone who can reach it uses your ESP32; set socks5.auth_file")
	}
	return nil
}

// allow is the SOCKS5 server's access check: the policy, resolving names
// on the ESP32 when IP rules need it.
func (d *Daemon) allow(ctx context.Context, _ string, host string, port uint16) (string, error) {
	return d.policy.Load().Check(ctx, host, port, d.up.LookupNetIP)
}

func dnsKey(cfg config.Config) string {
	return fmt.Sprintf("%s|%s|%v", cfg.DNS.Listen, cfg.DNS.Upstream, cfg.DNS.TTL)
}

func (d *Daemon) startDNS(cfg config.Config) error {
	if cfg.DNS.Listen == "" {
		return nil
	}
	srv, err := dnsproxy.New(dnsproxy.Config{
		Lookup:       d.up.LookupNetIP,
		Upstream:     cfg.DNS.Upstream,
		ListenPacket: d.up.ListenPacket,
		TTL:          time.Duration(cfg.DNS.TTL),
		Logger:       d.log.With().Str("part", "dns").Logger(),
	})
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	if err := srv.Start(cfg.DNS.Listen); err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	d.dns = &dnsServer{srv: srv, key: dnsKey(cfg)}
	return nil
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// Run serves until ctx is done, then drains for the configured time and
// stops. reload (may be nil) asks for a Reload. It returns nil after a
// clean stop.
func (d *Daemon) Run(ctx context.Context, reload <-chan struct{}) error {
	every := time.Second
	if w := d.notify.watchdog; w > 0 && w < every {
		every = w
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			d.mu.Lock()
			drain := time.Duration(d.cfg.Shutdown.DrainTimeout)
			d.mu.Unlock()
			dctx, cancel := context.WithTimeout(context.Background(), drain)
			defer cancel()
			return d.Shutdown(dctx)
		case <-reload:
			if err := d.Reload(); err != nil {
				d.log.Error().Err(err).Msg("reload failed; the running configuration stays")
			}
		case <-d.wake:
		case <-tick.C:
		}
		d.notify.ping()
		if s := d.statusLine(); s != last {
			d.notify.status(s)
			last = s
		}
	}
}

// statusLine is the one-line state systemctl status shows.
func (d *Daemon) statusLine() string {
	if d.up == nil {
		return "starting"
	}
	st := d.up.Status()
	switch st.State {
	case uplink.StateUp:
		_, ms := d.up.Stats()
		active, _, _ := d.gate.counts()
		model := st.Info.Model
		if model == "" {
			model = "ESP32"
		}
		return fmt.Sprintf("%s up on %s; %d streams, %d clients", model, st.Device, ms.StreamsOpen, active)
	case uplink.StateConnecting:
		return fmt.Sprintf("waiting for the ESP32's HELLO on %s", st.Device)
	case uplink.StateAbsent:
		return fmt.Sprintf("waiting for %s: %s", st.Device, st.LastError)
	}
	return st.State.String()
}

// Reload reads the configuration again and applies it: forwards that
// appeared start, forwards that disappeared drain and stop, the others are
// left alone; the SOCKS5, DNS and metrics servers restart only when their
// own settings changed; access rules, credentials and the client limit
// change in place. Port, baud, flow and emulate need a restart. A
// configuration that does not validate is refused and the running one
// stays.
func (d *Daemon) Reload() error {
	if d.opts.Load == nil {
		return errors.New("reload: no configuration source")
	}
	cfg, creds, err := d.opts.Load()
	if err != nil {
		return err
	}
	// New refuses what does not validate; so does Reload, or it would
	// drop the forwards it cannot parse and take a limit of 0 as none.
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	p, err := newPolicy(cfg.Access)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return errors.New("reload: stopping")
	}
	// Only now: a reload refused while stopping must not say READY after
	// STOPPING.
	d.notify.reloading()
	defer func() { d.notify.ready(d.statusLine()) }()
	old := d.cfg
	if cfg.Port != old.Port || cfg.Baud != old.Baud || cfg.Flow != old.Flow || cfg.Emulate != old.Emulate || cfg.Protocol != old.Protocol {
		d.log.Warn().Msg("reload: port, baud, flow, protocol and emulate changes take effect after a restart")
		cfg.Port, cfg.Baud, cfg.Flow, cfg.Emulate, cfg.Protocol = old.Port, old.Baud, old.Flow, old.Emulate, old.Protocol
	}
	d.policy.Store(p)
	d.creds.Store(creds)
	d.gate.SetLimit(cfg.Limits.MaxClients)
	d.cfg = cfg
	drain := time.Duration(cfg.Shutdown.DrainTimeout)

	var errs []error
	want := map[string]forward.Spec{}
	for _, sp := range specs(cfg) {
		want[specKey(sp)] = sp
	}
	var removed, added []string
	for key, f := range d.forwards {
		if _, ok := want[key]; !ok {
			delete(d.forwards, key)
			removed = append(removed, key)
			d.drainLater(drain, f.Shutdown)
		}
	}
	for key, sp := range want {
		if _, ok := d.forwards[key]; ok {
			continue
		}
		// A changed forward that keeps its local port must wait for the
		// old one, draining in the background, to let go of the port.
		err := d.startForward(sp)
		for deadline := time.Now().Add(2 * time.Second); errors.Is(err, syscall.EADDRINUSE) && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
			err = d.startForward(sp)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		added = append(added, key)
	}

	if old := d.socks; old != nil && old.key != socksKey(cfg, creds != nil) || old == nil && cfg.SOCKS5.Listen != "" {
		if old != nil {
			d.socks = nil
			d.drainLater(drain, old.srv.Shutdown)
			// Shutdown closes the listener before it waits for the
			// clients, and Serve returns once it is closed: then the
			// port is free for the new server.
			<-old.done
		}
		if err := d.startSOCKS(cfg); err != nil {
			errs = append(errs, err)
		}
	}
	if old := d.dns; old != nil && old.key != dnsKey(cfg) || old == nil && cfg.DNS.Listen != "" {
		if old != nil {
			d.dns = nil
			old.srv.Close()
		}
		if err := d.startDNS(cfg); err != nil {
			errs = append(errs, err)
		}
	}
	if old := d.web; old != nil && old.listen != cfg.Metrics.Listen || old == nil && cfg.Metrics.Listen != "" {
		if old != nil {
			d.web = nil
			old.close()
		}
		if err := d.startWeb(cfg); err != nil {
			errs = append(errs, err)
		}
	}
	sort.Strings(added)
	sort.Strings(removed)
	d.log.Info().Strs("added", added).Strs("removed", removed).Int("forwards", len(d.forwards)).
		Bool("socks5_auth", creds != nil).Int("max_clients", cfg.Limits.MaxClients).Msg("configuration reloaded")
	return errors.Join(errs...)
}

// drainLater shuts a server down in the background, giving its clients
// up to drain to finish.
func (d *Daemon) drainLater(drain time.Duration, shutdown func(context.Context) error) {
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		ctx, cancel := context.WithTimeout(d.bgCtx, drain)
		defer cancel()
		shutdown(ctx)
	}()
}

// Shutdown stops accepting, lets active clients finish until ctx is done,
// closes what is left and the uplink. It returns nil: cutting clients at
// the drain deadline is logged, not an error.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return nil
	}
	d.stopped = true
	d.notify.stopping()
	active, _, _ := d.gate.counts()
	d.log.Info().Int64("clients", active).Msg("shutting down: no new clients; draining")
	start := time.Now()
	cut := d.stopAllLocked(ctx)
	// Servers a reload retired may still be draining, on their own
	// deadline: they get no longer than the others.
	stop := context.AfterFunc(ctx, d.cutBg)
	d.bg.Wait()
	stop()
	d.cutBg()
	if d.up != nil {
		d.up.Close()
	}
	ev := d.log.Info()
	if cut {
		ev = d.log.Warn()
	}
	ev.Dur("took", time.Since(start)).Bool("cut_clients", cut).Msg("stopped")
	return nil
}

// stopAllLocked shuts every server down in parallel; it reports whether
// some had to cut clients at ctx's deadline.
func (d *Daemon) stopAllLocked(ctx context.Context) bool {
	var wg sync.WaitGroup
	var cut atomic.Bool
	run := func(f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				cut.Store(true)
			}
		}()
	}
	for key, f := range d.forwards {
		run(f.Shutdown)
		delete(d.forwards, key)
	}
	if d.socks != nil {
		s := d.socks
		run(func(ctx context.Context) error {
			err := s.srv.Shutdown(ctx)
			<-s.done
			return err
		})
		d.socks = nil
	}
	if d.dns != nil {
		d.dns.srv.Close()
		d.dns = nil
	}
	wg.Wait()
	if d.web != nil {
		d.web.close()
		d.web = nil
	}
	return cut.Load()
}

// Uplink returns the connection to the ESP32.
func (d *Daemon) Uplink() *uplink.Uplink { return d.up }

// Addrs are the addresses the daemon listens on (tests use port 0).
type Addrs struct {
	SOCKS5, DNS, Metrics net.Addr
	// Forwards maps a local forward's spec (Spec.String()) to its
	// listener.
	Forwards map[string]net.Addr
}

// Addrs returns where the daemon listens now.
func (d *Daemon) Addrs() Addrs {
	d.mu.Lock()
	defer d.mu.Unlock()
	a := Addrs{Forwards: map[string]net.Addr{}}
	for key, f := range d.forwards {
		if addr := f.Addr(); addr != nil {
			a.Forwards[strings.TrimPrefix(key, "L ")] = addr
		}
	}
	if d.socks != nil {
		a.SOCKS5 = d.socks.ln.Addr()
	}
	if d.dns != nil {
		a.DNS = d.dns.srv.Addr()
	}
	if d.web != nil {
		a.Metrics = d.web.ln.Addr()
	}
	return a
}

// Snapshot gathers every part's counters for the metrics collector.
func (d *Daemon) Snapshot() metrics.Snapshot {
	var s metrics.Snapshot
	if d.up != nil {
		s.Link, s.Mux = d.up.Stats()
		s.Device = d.up.Status()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	keys := make([]string, 0, len(d.forwards))
	for k := range d.forwards {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fs := d.forwards[k].Stats()
		s.Forwards = append(s.Forwards, metrics.Forward{
			Spec: fs.Spec, Direction: fs.Direction, Network: fs.Network, Active: fs.Active,
			Accepted: fs.Accepted, Rejected: fs.Rejected, Failed: fs.Failed,
			BytesUp: fs.BytesUp, BytesDown: fs.BytesDown, Listening: fs.Listening,
		})
	}
	if d.socks != nil {
		x := d.socks.srv.Stats()
		s.SOCKS5 = &metrics.SOCKS5{Active: x.Active, Accepted: x.Accepted, Rejected: x.Rejected,
			Requests: x.Requests, AuthFailures: x.AuthFailures, HandshakeErrors: x.HandshakeErrors,
			BytesUp: x.BytesUp, BytesDown: x.BytesDown}
	}
	if d.dns != nil {
		x := d.dns.srv.Stats()
		s.DNS = &metrics.DNS{Queries: x.Queries, Responses: x.Responses, CacheHits: x.CacheHits, Dropped: x.Dropped}
	}
	active, limit, rejected := d.gate.counts()
	s.Clients = metrics.Clients{Active: active, Limit: limit, Rejected: rejected}
	return s
}
