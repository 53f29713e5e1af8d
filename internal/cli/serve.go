package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/uartproxy/uartproxy/internal/capture"
	"github.com/uartproxy/uartproxy/internal/config"
	"github.com/uartproxy/uartproxy/internal/daemon"
	"github.com/uartproxy/uartproxy/internal/forward"
	"github.com/uartproxy/uartproxy/internal/metrics"
)

// defaultSOCKS5 is where serve offers SOCKS5 when nothing else is
// configured, so `uartproxy serve --port X` alone is useful.
const defaultSOCKS5 = "127.0.0.1:1080"

// serveFlags are the flags of 'uartproxy serve'. Only the flags the user
// gave override the environment and the config file.
type serveFlags struct {
	serial       serialFlags
	Emulate      bool
	Local        []string
	Remote       []string
	SOCKS5       string
	SOCKS5Auth   string
	DNS          string
	Metrics      string
	Config       string
	MaxClients   int
	DrainTimeout time.Duration
	Mirror       string
	Protocol     string
}

func (f *serveFlags) addTo(cmd *cobra.Command) {
	f.serial.AddTo(cmd)
	fs := cmd.Flags()
	fs.BoolVar(&f.Emulate, "emulate", false, "run an emulated ESP32 in this process instead of a board on --port (no hardware needed)")
	fs.StringArrayVarP(&f.Local, "local", "L", nil, "local forward [BIND:]PORT:HOST:HOSTPORT[/udp]: listen here (127.0.0.1 unless BIND), the ESP32 connects to HOST:HOSTPORT; repeatable")
	fs.StringArrayVarP(&f.Remote, "remote", "R", nil, "remote forward [DEVBIND:]DEVPORT:HOST:HOSTPORT: listen on the ESP32, connect here to HOST:HOSTPORT; repeatable")
	fs.StringVar(&f.SOCKS5, "socks5", "", "SOCKS5 listen address, e.g. 127.0.0.1:1080 (the default when nothing else is configured)")
	fs.StringVar(&f.SOCKS5Auth, "socks5-auth", "", "file of user:password lines for SOCKS5 authentication (or UARTPROXY_SOCKS5_USERNAME/_PASSWORD)")
	fs.StringVar(&f.DNS, "dns", "", "DNS forwarder listen address, resolving through the ESP32, e.g. 127.0.0.1:5353")
	fs.StringVar(&f.Metrics, "metrics", "", "HTTP listen address for /metrics (Prometheus) and /healthz, e.g. 127.0.0.1:9273")
	fs.StringVar(&f.Config, "config", "", "YAML config file (default "+config.DefaultPath+" if it exists)")
	fs.IntVar(&f.MaxClients, "max-clients", 0, "most client connections at once across forwards and SOCKS5 (default 256)")
	fs.DurationVar(&f.DrainTimeout, "drain-timeout", 0, "on SIGTERM, how long active clients may finish (default 10s)")
	addEnum(cmd, fs, &f.Protocol, "protocol", config.ProtocolAuto, "what the ESP32 runs: uartproxy's firmware (native), the seed's original v3 firmware (v3), or auto to tell them apart at start-up",
		config.ProtocolAuto, config.ProtocolNative, config.ProtocolV3)
	fs.StringVar(&f.Mirror, "mirror", "", "record the serial line's traffic to this pcapng file, for 'uartproxy sniff --file' (with --port)")
	cmd.MarkFlagFilename("config", "yaml", "yml")
	cmd.MarkFlagFilename("mirror", "pcapng")
	cmd.MarkFlagFilename("socks5-auth")
	cmd.MarkFlagsMutuallyExclusive("port", "emulate")
}

// load builds the configuration: defaults, the file, the environment, then
// the flags the user gave. It runs at start and again on SIGHUP.
func (f *serveFlags) load(cmd *cobra.Command, log zerolog.Logger) (config.Config, *config.Credentials, error) {
	changed := cmd.Flags().Changed
	path, explicit := f.Config, changed("config")
	if !explicit {
		if p := os.Getenv("UARTPROXY_CONFIG"); p != "" {
			path, explicit = p, true
		} else {
			path = config.DefaultPath
		}
	}
	cfg := config.Default()
	if _, err := os.Stat(path); err == nil || explicit {
		c, err := config.Load(path)
		if err != nil {
			if explicit && errors.Is(err, fs.ErrNotExist) {
				return cfg, nil, usageErrorf("--config %s: no such file", path)
			}
			return cfg, nil, err
		}
		cfg = c
		log.Debug().Str("config", path).Msg("configuration file loaded")
	}
	if err := cfg.ApplyEnv(os.Getenv); err != nil {
		return cfg, nil, err
	}
	if changed("port") {
		cfg.Port, cfg.Emulate = f.serial.Port, false
	}
	if changed("emulate") {
		cfg.Emulate = f.Emulate
		if f.Emulate {
			cfg.Port = ""
		}
	}
	if changed("baud") {
		cfg.Baud = f.serial.Baud
	}
	if changed("flow") {
		cfg.Flow = f.serial.Flow
	}
	if changed("protocol") {
		cfg.Protocol = f.Protocol
	}
	if changed("local") {
		for _, spec := range f.Local {
			if _, err := forward.ParseLocal(spec); err != nil {
				return cfg, nil, usageErrorf("-L: %v", err)
			}
		}
		cfg.Forwards = f.Local
	}
	if changed("remote") {
		for _, spec := range f.Remote {
			if _, err := forward.ParseRemote(spec); err != nil {
				return cfg, nil, usageErrorf("-R: %v", err)
			}
		}
		cfg.Reverse = f.Remote
	}
	if changed("socks5") {
		cfg.SOCKS5.Listen = f.SOCKS5
	}
	if changed("socks5-auth") {
		cfg.SOCKS5.AuthFile = f.SOCKS5Auth
	}
	if changed("dns") {
		cfg.DNS.Listen = f.DNS
	}
	if changed("metrics") {
		cfg.Metrics.Listen = f.Metrics
	}
	if changed("max-clients") {
		cfg.Limits.MaxClients = f.MaxClients
	}
	if changed("drain-timeout") {
		cfg.Shutdown.DrainTimeout = config.Duration(f.DrainTimeout)
	}
	if changed("log-level") {
		cfg.Log.Level = cmd.Flags().Lookup("log-level").Value.String()
	}
	if changed("log-format") {
		cfg.Log.Format = cmd.Flags().Lookup("log-format").Value.String()
	}
	if cfg.Port == "" && !cfg.Emulate {
		return cfg, nil, usageErrorf("no ESP32 given: use --port /dev/ttyUSB0 (see 'uartproxy ports'), or --emulate to try uartproxy without hardware")
	}
	if len(cfg.Forwards) == 0 && len(cfg.Reverse) == 0 && cfg.SOCKS5.Listen == "" && cfg.DNS.Listen == "" {
		cfg.SOCKS5.Listen = defaultSOCKS5
	}
	if err := cfg.Validate(); err != nil {
		return cfg, nil, err
	}
	creds, err := f.credentials(cfg, log)
	return cfg, creds, err
}

func (f *serveFlags) credentials(cfg config.Config, log zerolog.Logger) (*config.Credentials, error) {
	if cfg.SOCKS5.AuthFile != "" {
		c, err := config.LoadCredentials(cfg.SOCKS5.AuthFile)
		if err != nil {
			return nil, err
		}
		if c.Insecure {
			log.Warn().Str("file", cfg.SOCKS5.AuthFile).Msg("SOCKS5 credentials file is readable by group or others; chmod 600 it")
		}
		return c, nil
	}
	if err := config.CredentialsEnvError(os.Getenv); err != nil {
		return nil, err
	}
	if c, ok := config.CredentialsFromEnv(os.Getenv); ok {
		return c, nil
	}
	return nil, nil
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve (--port PATH | --emulate) [-L SPEC]... [-R SPEC]... [--socks5 ADDR] [--dns ADDR] [--metrics ADDR]",
		Short: "Run the proxy: port forwards, SOCKS5, DNS and metrics through the ESP32",
		Long: `Run uartproxy's daemon: connect to the ESP32 on --port (or an emulated one
with --emulate) and offer its network here:

  -L [BIND:]PORT:HOST:HOSTPORT[/udp]  listen here, the ESP32 connects to HOST:HOSTPORT
  -R [DEVBIND:]DEVPORT:HOST:HOSTPORT  listen on the ESP32, connect here to HOST:HOSTPORT
  --socks5 ADDR                       SOCKS5 (CONNECT, UDP ASSOCIATE, BIND); names resolve on the ESP32
  --dns ADDR                          a DNS forwarder resolving through the ESP32
  --metrics ADDR                      Prometheus /metrics and /healthz

With none of -L, -R, --socks5 and --dns, SOCKS5 listens on ` + defaultSOCKS5 + `.
Everything listens on loopback unless told otherwise.

Settings come from flags, then UARTPROXY_* environment variables, then the
YAML file (--config, default ` + config.DefaultPath + ` if present), then
defaults. SOCKS5 passwords come from --socks5-auth FILE or
UARTPROXY_SOCKS5_USERNAME and UARTPROXY_SOCKS5_PASSWORD, never from flags.

When the adapter is missing or unplugged, serve keeps retrying and clients
get a clear error meanwhile. SIGHUP reloads the configuration; SIGTERM
drains clients (drain_timeout) and exits 0. Under systemd it reports
readiness, status and watchdog pings (Type=notify).`,
		Example: `  uartproxy serve --emulate --socks5 127.0.0.1:1080
  uartproxy serve --port /dev/ttyUSB0 -L 8080:example.com:80 -L 5353:1.1.1.1:53/udp --metrics 127.0.0.1:9273
  uartproxy serve --config /etc/uartproxy/config.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd, &f)
		},
	}
	f.addTo(cmd)
	return cmd
}

func runServe(cmd *cobra.Command, f *serveFlags) error {
	log := loggerFor(cmd)
	cfg, creds, err := f.load(cmd, log)
	if err != nil {
		return err
	}
	lf := logFlags{level: cfg.Log.Level, format: cfg.Log.Format}
	log = lf.newLogger(cmd.ErrOrStderr())

	var mirror *capture.Writer
	if f.Mirror != "" {
		if cfg.Emulate {
			return usageErrorf("--mirror records a serial port: use it with --port (sniff an emulated line with 'uartproxy emulate --pty' and serve --port)")
		}
		file, err := os.OpenFile(f.Mirror, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("--mirror: %w", err)
		}
		defer file.Close()
		if mirror, err = capture.NewWriter(file, capture.LinkTypeRaw); err != nil {
			return fmt.Errorf("--mirror: %w", err)
		}
		defer mirror.Flush()
		log.Info().Str("file", f.Mirror).Msg("recording the serial line; read it with: uartproxy sniff --file " + f.Mirror)
	}
	d, err := daemon.New(daemon.Options{
		Config: cfg, Credentials: creds, Logger: log, Notify: true, Mirror: mirror,
		Build: metrics.Build{Version: version, Commit: commit},
		Load:  func() (config.Config, *config.Credentials, error) { return f.load(cmd, log) },
	})
	if err != nil {
		return err
	}
	if err := d.Start(); err != nil {
		return err
	}
	if a := d.Addrs(); a.SOCKS5 != nil {
		log.Info().Str("socks5", a.SOCKS5.String()).
			Msgf("ready; try: curl --socks5-hostname %s http://example.com/", a.SOCKS5)
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	reload := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-sigs:
				switch s {
				case syscall.SIGHUP:
					log.Info().Msg("SIGHUP: reloading the configuration")
					select {
					case reload <- struct{}{}:
					default:
					}
				case syscall.SIGUSR1:
					if err := d.Uplink().RebootEmulated(); err != nil {
						log.Warn().Err(err).Msg("SIGUSR1 reboots the emulated ESP32 only (--emulate)")
					} else {
						log.Info().Msg("SIGUSR1: rebooting the emulated ESP32")
					}
				}
			}
		}
	}()
	if err := d.Run(ctx, reload); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
