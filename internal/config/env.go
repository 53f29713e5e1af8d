package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// ApplyEnv overlays the environment variables listed in the package
// documentation, read through getenv (os.Getenv in the CLI), onto c. A
// variable that is unset or empty changes nothing. Values that do not
// parse as their key's type are errors naming the variable; what the
// values mean is left to Validate. c is unchanged if ApplyEnv fails.
func (c *Config) ApplyEnv(getenv func(string) string) error {
	n := *c
	n.cloneSources()
	var errs []error
	get := func(name string) (string, bool) {
		v := strings.TrimSpace(getenv(name))
		return v, v != ""
	}
	str := func(name, key string, p *string) {
		if v, ok := get(name); ok {
			*p = v
			n.setSource(key, name, v)
		}
	}
	listen := func(name, key string, p *string) {
		if v, ok := get(name); ok {
			if strings.EqualFold(v, "off") {
				v = ""
			}
			*p = v
			n.setSource(key, name, v)
		}
	}
	list := func(name, key string, p *[]string) {
		if v, ok := get(name); ok {
			specs := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
			*p = specs
			n.setSource(key, name, "")
			for i, s := range specs {
				n.src[fmt.Sprintf("%s[%d]", key, i)] = origin{env: name, value: s}
			}
		}
	}
	integer := func(name, key string, p *int) {
		if v, ok := get(name); ok {
			i, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, &Error{Var: name, Key: key, Err: fmt.Errorf("%q is not a whole number", v)})
				return
			}
			*p = i
			n.setSource(key, name, i)
		}
	}
	duration := func(name, key string, p *Duration) {
		if v, ok := get(name); ok {
			d, err := parseDuration(v)
			if err != nil {
				errs = append(errs, &Error{Var: name, Key: key, Err: err})
				return
			}
			*p = Duration(d)
			n.setSource(key, name, *p)
		}
	}

	port, portSet := get("UARTPROXY_PORT")
	if portSet {
		n.Port = port
		n.setSource("port", "UARTPROXY_PORT", port)
	}
	if v, ok := get("UARTPROXY_EMULATE"); ok {
		b, err := parseBool(v)
		if err != nil {
			errs = append(errs, &Error{Var: "UARTPROXY_EMULATE", Key: "emulate", Err: err})
		} else {
			n.Emulate = b
			n.setSource("emulate", "UARTPROXY_EMULATE", b)
			if b && !portSet {
				// The environment picked the emulator over the file's port.
				n.Port = ""
				n.setSource("port", "UARTPROXY_EMULATE", "")
			}
		}
	} else if portSet {
		// The environment picked a port over the file's emulate: true.
		n.Emulate = false
		n.setSource("emulate", "UARTPROXY_PORT", false)
	}
	integer("UARTPROXY_BAUD", "baud", &n.Baud)
	str("UARTPROXY_FLOW", "flow", &n.Flow)
	str("UARTPROXY_PROTOCOL", "protocol", &n.Protocol)
	list("UARTPROXY_FORWARDS", "forwards", &n.Forwards)
	list("UARTPROXY_REVERSE", "reverse", &n.Reverse)
	listen("UARTPROXY_SOCKS5", "socks5.listen", &n.SOCKS5.Listen)
	str("UARTPROXY_SOCKS5_AUTH", "socks5.auth_file", &n.SOCKS5.AuthFile)
	listen("UARTPROXY_DNS", "dns.listen", &n.DNS.Listen)
	listen("UARTPROXY_METRICS", "metrics.listen", &n.Metrics.Listen)
	integer("UARTPROXY_MAX_CLIENTS", "limits.max_clients", &n.Limits.MaxClients)
	duration("UARTPROXY_DRAIN_TIMEOUT", "shutdown.drain_timeout", &n.Shutdown.DrainTimeout)
	str("UARTPROXY_LOG_LEVEL", "log.level", &n.Log.Level)
	str("UARTPROXY_LOG_FORMAT", "log.format", &n.Log.Format)

	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	*c = n
	return nil
}

// parseBool accepts what strconv.ParseBool does and yes/no, on/off.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "yes", "on":
		return true, nil
	case "no", "off":
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("%q is not true or false", s)
	}
	return b, nil
}
