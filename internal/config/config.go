package config

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/uartproxy/uartproxy/internal/policy"
)

// DefaultPath is where serve looks for its configuration file.
const DefaultPath = "/etc/uartproxy/config.yaml"

// Config is the configuration of `uartproxy serve`. The yaml tags are the
// keys of the configuration file; configs/config.example.yaml shows each.
type Config struct {
	Port      string    `yaml:"port"`      // serial device, e.g. /dev/ttyUSB0
	Emulate   bool      `yaml:"emulate"`   // run an emulated ESP32 in-process instead of a port
	Baud      int       `yaml:"baud"`      // line rate in bit/s
	Flow      string    `yaml:"flow"`      // hardware flow control: "rtscts" or "none"
	Protocol  string    `yaml:"protocol"`  // what the device speaks: "auto", "native" or "v3"
	Forwards  []string  `yaml:"forwards"`  // local forwards, -L specs
	Reverse   []string  `yaml:"reverse"`   // remote forwards, -R specs
	SOCKS5    SOCKS5    `yaml:"socks5"`    // SOCKS5 proxy
	DNS       DNS       `yaml:"dns"`       // DNS forwarder
	Metrics   Metrics   `yaml:"metrics"`   // Prometheus endpoint
	Limits    Limits    `yaml:"limits"`    // client count and timeouts
	Access    Access    `yaml:"access"`    // which destinations may be reached
	Shutdown  Shutdown  `yaml:"shutdown"`  // graceful stop
	Reconnect Reconnect `yaml:"reconnect"` // backoff when the device goes away
	Log       Log       `yaml:"log"`       // logging

	// src maps key paths ("socks5.listen", "forwards[2]") to where their
	// value came from, for error messages. Shared between copies: it is
	// replaced, never modified, once a Config has been returned.
	src map[string]origin
}

// SOCKS5 configures the SOCKS5 proxy.
type SOCKS5 struct {
	Listen   string `yaml:"listen"`    // host:port; "" turns the proxy off
	AuthFile string `yaml:"auth_file"` // user:password file (LoadCredentials); "" for no authentication
	UDP      bool   `yaml:"udp"`       // allow UDP ASSOCIATE
	Bind     bool   `yaml:"bind"`      // allow BIND
}

// DNS configures the DNS forwarder.
type DNS struct {
	// Listen is host:port; "" turns the forwarder off.
	Listen string `yaml:"listen"`
	// Upstream is "" to answer A and AAAA queries with the ESP32's
	// resolver only, or "ip:port" of a resolver that other query types are
	// relayed to through the ESP32.
	Upstream string `yaml:"upstream"`
	// TTL is the time to live of answers from the ESP32's resolver.
	TTL Duration `yaml:"ttl"`
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	Listen string `yaml:"listen"` // host:port; "" turns it off
}

// Limits bounds clients and the time spent waiting on them.
type Limits struct {
	MaxClients       int      `yaml:"max_clients"`       // connections and UDP associations open at once
	ConnectTimeout   Duration `yaml:"connect_timeout"`   // for the ESP32 to connect out
	HandshakeTimeout Duration `yaml:"handshake_timeout"` // for a client to finish the SOCKS5 handshake
	UDPIdleTimeout   Duration `yaml:"udp_idle_timeout"`  // a UDP flow with no traffic is closed after this
}

// Access lists which destinations may be reached; see package policy.
type Access struct {
	Default string `yaml:"default"` // "allow" or "deny": what no rule matches
	Rules   []Rule `yaml:"rules"`   // the first matching rule decides
}

// Rule is one access rule; policy.Rule documents To and Ports.
type Rule struct {
	Action string `yaml:"action"` // "allow" or "deny"
	To     string `yaml:"to"`     // "*", IP, CIDR or host name pattern
	Ports  string `yaml:"ports"`  // "" for all, or e.g. "22", "80,443", "1000-2000"
}

// Shutdown configures a graceful stop.
type Shutdown struct {
	DrainTimeout Duration `yaml:"drain_timeout"` // how long open connections may finish; 0 closes them at once
}

// Reconnect configures the backoff between attempts to reach the device.
type Reconnect struct {
	MinBackoff Duration `yaml:"min_backoff"`
	MaxBackoff Duration `yaml:"max_backoff"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // trace, debug, info, warn or error
	Format string `yaml:"format"` // auto (console on a terminal, json otherwise), console or json
}

// Values of enumerated keys.
const (
	FlowRTSCTS = "rtscts"
	FlowNone   = "none"

	ProtocolAuto   = "auto"
	ProtocolNative = "native"
	ProtocolV3     = "v3"

	ActionAllow = "allow"
	ActionDeny  = "deny"

	LogAuto    = "auto"
	LogConsole = "console"
	LogJSON    = "json"
)

var (
	flows      = []string{FlowRTSCTS, FlowNone}
	protocols  = []string{ProtocolAuto, ProtocolNative, ProtocolV3}
	logLevels  = []string{"trace", "debug", "info", "warn", "error"}
	logFormats = []string{LogAuto, LogConsole, LogJSON}
)

// Default returns the configuration used for every key that no file,
// variable or flag sets. It names no device and turns off every listener
// except the forwards given.
func Default() Config {
	return Config{
		Baud:     921600,
		Flow:     FlowRTSCTS,
		Protocol: ProtocolAuto,
		SOCKS5: SOCKS5{
			UDP:  true,
			Bind: true,
		},
		DNS: DNS{TTL: Duration(60 * time.Second)},
		Limits: Limits{
			MaxClients:       256,
			ConnectTimeout:   Duration(15 * time.Second),
			HandshakeTimeout: Duration(10 * time.Second),
			UDPIdleTimeout:   Duration(60 * time.Second),
		},
		Access:    Access{Default: ActionAllow},
		Shutdown:  Shutdown{DrainTimeout: Duration(10 * time.Second)},
		Reconnect: Reconnect{MinBackoff: Duration(250 * time.Millisecond), MaxBackoff: Duration(10 * time.Second)},
		Log:       Log{Level: "info", Format: LogAuto},
	}
}

// Policy builds the access policy the rules describe. Validate reports the
// same errors with the file and line of the rule.
func (a Access) Policy() (*policy.Policy, error) {
	def, err := parseAction(a.Default)
	if err != nil {
		return nil, fmt.Errorf("access.default: %w", err)
	}
	rules := make([]policy.Rule, len(a.Rules))
	for i, r := range a.Rules {
		allow, err := parseAction(r.Action)
		if err != nil {
			return nil, fmt.Errorf("access.rules[%d].action: %w", i, err)
		}
		rules[i] = policy.Rule{Allow: allow, To: r.To, Ports: r.Ports}
	}
	p, err := policy.New(def, rules)
	if err != nil {
		return nil, fmt.Errorf("access.%w", err)
	}
	return p, nil
}

func parseAction(s string) (allow bool, err error) {
	switch s {
	case ActionAllow:
		return true, nil
	case ActionDeny:
		return false, nil
	}
	return false, fmt.Errorf("%q is not allow or deny", s)
}

// Duration is a time.Duration written in YAML as a Go duration string:
// "10s", "250ms", "1m30s".
type Duration time.Duration

// String formats d like time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a duration string; a bare number other than 0 is an
// error, since its unit would be a guess.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New(`want a duration such as "10s" or "250ms"`)
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// parseDuration parses a Go duration and explains what is wrong.
func parseDuration(s string) (time.Duration, error) {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err == nil {
		return v, nil
	}
	if strings.Trim(s, "+-0123456789.") == "" && s != "" {
		return 0, fmt.Errorf("%q has no unit; write e.g. %q", s, s+"s")
	}
	return 0, fmt.Errorf(`%q is not a duration; write e.g. "10s", "1m30s" or "250ms"`, s)
}

// NeedsDevice reports whether neither port nor emulate is set, so the
// CLI must pick a device (or fail with ValidateDevice's error).
func (c *Config) NeedsDevice() bool { return c.Port == "" && !c.Emulate }

// ValidateDevice reports an error unless exactly one of port and emulate
// is set. Validate checks that both are not set, but leaves "neither" to
// the CLI, which may pick a device itself.
func (c *Config) ValidateDevice() error {
	if c.NeedsDevice() {
		return errors.New("no device: set port (e.g. /dev/ttyUSB0) or emulate: true")
	}
	if c.Port != "" && c.Emulate {
		return c.errf("port", c.Port, "port %q and emulate: true are both set; choose one", c.Port)
	}
	return nil
}
