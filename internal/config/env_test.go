package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestApplyEnv(t *testing.T) {
	c := Default()
	err := c.ApplyEnv(env(map[string]string{
		"UARTPROXY_PORT":            "/dev/ttyUSB1",
		"UARTPROXY_BAUD":            " 115200 ",
		"UARTPROXY_FLOW":            "none",
		"UARTPROXY_FORWARDS":        "8080:example.com:80, 5300:1.1.1.1:53/udp\n9000:a:1",
		"UARTPROXY_REVERSE":         "2222:127.0.0.1:22",
		"UARTPROXY_SOCKS5":          "127.0.0.1:1080",
		"UARTPROXY_SOCKS5_AUTH":     "/etc/uartproxy/users",
		"UARTPROXY_DNS":             "127.0.0.1:5353",
		"UARTPROXY_METRICS":         "127.0.0.1:9100",
		"UARTPROXY_MAX_CLIENTS":     "7",
		"UARTPROXY_DRAIN_TIMEOUT":   "3s",
		"UARTPROXY_LOG_LEVEL":       "debug",
		"UARTPROXY_LOG_FORMAT":      "json",
		"UARTPROXY_SOCKS5_PASSWORD": "secret", // not a Config key
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Port = "/dev/ttyUSB1"
	want.Baud = 115200
	want.Flow = "none"
	want.Forwards = []string{"8080:example.com:80", "5300:1.1.1.1:53/udp", "9000:a:1"}
	want.Reverse = []string{"2222:127.0.0.1:22"}
	want.SOCKS5.Listen = "127.0.0.1:1080"
	want.SOCKS5.AuthFile = "/etc/uartproxy/users"
	want.DNS.Listen = "127.0.0.1:5353"
	want.Metrics.Listen = "127.0.0.1:9100"
	want.Limits.MaxClients = 7
	want.Shutdown.DrainTimeout = Duration(3 * time.Second)
	want.Log = Log{Level: "debug", Format: "json"}
	if !reflect.DeepEqual(plain(c), want) {
		t.Errorf("ApplyEnv:\n%+v\nwant\n%+v", plain(c), want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if strings.Contains(fmt.Sprintf("%+v", c), "secret") {
		t.Error("a secret from the environment reached Config")
	}
}

func TestApplyEnvErrors(t *testing.T) {
	c := Default()
	before := c
	err := c.ApplyEnv(env(map[string]string{
		"UARTPROXY_EMULATE":       "maybe",
		"UARTPROXY_BAUD":          "fast",
		"UARTPROXY_MAX_CLIENTS":   "1.5",
		"UARTPROXY_DRAIN_TIMEOUT": "10",
		"UARTPROXY_LOG_LEVEL":     "debug",
	}))
	want := strings.Join([]string{
		`UARTPROXY_EMULATE: emulate: "maybe" is not true or false`,
		`UARTPROXY_BAUD: baud: "fast" is not a whole number`,
		`UARTPROXY_MAX_CLIENTS: limits.max_clients: "1.5" is not a whole number`,
		`UARTPROXY_DRAIN_TIMEOUT: shutdown.drain_timeout: "10" has no unit; write e.g. "10s"`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("err =\n%v\nwant\n%s", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Var != "UARTPROXY_EMULATE" {
		t.Errorf("first error %#v does not name the variable", e)
	}
	if !reflect.DeepEqual(c, before) {
		t.Error("a failed ApplyEnv changed the Config")
	}
}

// Validate names the variable a bad value came from.
func TestApplyEnvValidate(t *testing.T) {
	c, err := Parse([]byte("baud: 9600\nsocks5:\n  listen: 127.0.0.1:1080\n"), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyEnv(env(map[string]string{"UARTPROXY_BAUD": "100", "UARTPROXY_FORWARDS": "8080:a:80 oops"})); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		`UARTPROXY_BAUD: baud: 100 is out of range; want 300 to 5000000 (e.g. 921600)`,
		`UARTPROXY_FORWARDS: forwards[1]: local forward "oops": 1 fields; want [BIND:]PORT:HOST:HOSTPORT[/udp], e.g. 8080:example.com:80`,
	}, "\n")
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate() =\n%v\nwant\n%s", err, want)
	}
	// A listener clash names the variable of the other side too.
	c.Forwards = []string{"1080:a:80"}
	c.Baud = 9600
	if err := c.ApplyEnv(env(map[string]string{"UARTPROXY_FORWARDS": "1080:a:80"})); err != nil {
		t.Fatal(err)
	}
	want = `c.yaml:3: socks5.listen: tcp 127.0.0.1:1080 is also where forwards[0] (UARTPROXY_FORWARDS) listens; give each its own address or port`
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate() =\n%v\nwant\n%s", err, want)
	}
}

// Precedence: the environment overrides the file, which overrides the
// defaults; a list from the environment replaces the file's list.
func TestPrecedence(t *testing.T) {
	c, err := Parse([]byte("baud: 9600\nflow: none\nforwards: [\"1:a:1\", \"2:b:2\"]\nlog: {level: warn}\n"), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyEnv(env(map[string]string{
		"UARTPROXY_BAUD":      "115200",
		"UARTPROXY_FORWARDS":  "3:c:3",
		"UARTPROXY_LOG_LEVEL": "", // empty: no change
	})); err != nil {
		t.Fatal(err)
	}
	if c.Baud != 115200 || c.Flow != "none" || !reflect.DeepEqual(c.Forwards, []string{"3:c:3"}) || c.Log.Level != "warn" || c.Log.Format != "auto" {
		t.Errorf("after env: %+v", plain(c))
	}
	// Then a flag, set by the CLI, wins.
	c.Baud = 230400
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

func TestApplyEnvDevice(t *testing.T) {
	tests := []struct {
		file           string
		vars           map[string]string
		port           string
		emulate        bool
		validateDevice bool
	}{
		{"emulate: true\n", map[string]string{"UARTPROXY_PORT": "/dev/ttyUSB0"}, "/dev/ttyUSB0", false, true},
		{"port: /dev/ttyUSB0\n", map[string]string{"UARTPROXY_EMULATE": "true"}, "", true, true},
		{"port: /dev/ttyUSB0\n", map[string]string{"UARTPROXY_EMULATE": "off"}, "/dev/ttyUSB0", false, true},
		{"", map[string]string{"UARTPROXY_EMULATE": "1", "UARTPROXY_PORT": "/dev/x"}, "/dev/x", true, false},
		{"", map[string]string{"UARTPROXY_EMULATE": "no"}, "", false, false},
	}
	for _, tt := range tests {
		c, err := Parse([]byte(tt.file), "c.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.ApplyEnv(env(tt.vars)); err != nil {
			t.Fatal(err)
		}
		if c.Port != tt.port || c.Emulate != tt.emulate {
			t.Errorf("%q + %v: port %q emulate %v, want %q %v", tt.file, tt.vars, c.Port, c.Emulate, tt.port, tt.emulate)
		}
		if ok := c.ValidateDevice() == nil; ok != tt.validateDevice {
			t.Errorf("%q + %v: ValidateDevice() = %v", tt.file, tt.vars, c.ValidateDevice())
		}
	}
}

func TestApplyEnvListenOff(t *testing.T) {
	c, err := Parse([]byte("socks5: {listen: \"127.0.0.1:1080\"}\nmetrics: {listen: \"127.0.0.1:9100\"}\n"), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyEnv(env(map[string]string{"UARTPROXY_SOCKS5": "off", "UARTPROXY_METRICS": "OFF", "UARTPROXY_DNS": "127.0.0.1:53"})); err != nil {
		t.Fatal(err)
	}
	if c.SOCKS5.Listen != "" || c.Metrics.Listen != "" || c.DNS.Listen != "127.0.0.1:53" {
		t.Errorf("%+v", plain(c))
	}
}

// ApplyEnv on a copy leaves the original's error locations alone.
func TestApplyEnvCopy(t *testing.T) {
	orig, err := Parse([]byte("baud: 1\n"), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cp := orig
	if err := cp.ApplyEnv(env(map[string]string{"UARTPROXY_BAUD": "2"})); err != nil {
		t.Fatal(err)
	}
	if err := orig.Validate(); err == nil || !strings.HasPrefix(err.Error(), "c.yaml:1: baud:") {
		t.Errorf("original: %v", err)
	}
	if err := cp.Validate(); err == nil || !strings.HasPrefix(err.Error(), "UARTPROXY_BAUD: baud:") {
		t.Errorf("copy: %v", err)
	}
}
