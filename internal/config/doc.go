// Package config is the configuration of `uartproxy serve`: the Config
// type with its defaults, the YAML file (Load, Parse), the environment
// overlay (ApplyEnv), whole-config validation (Validate) and the SOCKS5
// user list (LoadCredentials, CredentialsFromEnv).
//
// Sources take precedence in this order: command-line flags, then the
// environment, then the file, then Default(). The CLI calls Load (or
// starts from Default when there is no file), then ApplyEnv(os.Getenv),
// then sets the fields of the flags the user gave, then Validate. Load and
// ApplyEnv only check that values have the right type; Validate checks
// what they mean, so a bad value in the file that the environment or a
// flag replaces is no error. Validate names the file and line of a value
// that still is what the file said, the environment variable of one that
// still is what the variable said, and otherwise the key, e.g.
//
//	/etc/uartproxy/config.yaml:12: socks5.listen: "abc" is not host:port (e.g. 127.0.0.1:1080)
//	UARTPROXY_BAUD: baud: 100 is out of range; want 300 to 5000000
//	forwards[1]: local forward "8080": 1 fields; want [BIND:]PORT:HOST:HOSTPORT[/udp], e.g. 8080:example.com:80
//
// # Environment
//
// Each variable, when set and not empty, replaces the value of its key:
//
//	UARTPROXY_PORT           port (serial device); setting it alone also sets emulate: false
//	UARTPROXY_EMULATE        emulate (true/false, 1/0, yes/no, on/off); true alone also clears port
//	UARTPROXY_BAUD           baud
//	UARTPROXY_FLOW           flow (rtscts or none)
//	UARTPROXY_PROTOCOL       protocol (auto, native or v3)
//	UARTPROXY_FORWARDS       forwards: specs separated by commas or white space, replacing the file's list
//	UARTPROXY_REVERSE        reverse: likewise
//	UARTPROXY_SOCKS5         socks5.listen ("off" turns the proxy off)
//	UARTPROXY_SOCKS5_AUTH    socks5.auth_file
//	UARTPROXY_DNS            dns.listen ("off" turns the forwarder off)
//	UARTPROXY_METRICS        metrics.listen ("off" turns the endpoint off)
//	UARTPROXY_MAX_CLIENTS    limits.max_clients
//	UARTPROXY_DRAIN_TIMEOUT  shutdown.drain_timeout (a Go duration, e.g. 10s)
//	UARTPROXY_LOG_LEVEL      log.level
//	UARTPROXY_LOG_FORMAT     log.format
//
// UARTPROXY_SOCKS5_USERNAME and UARTPROXY_SOCKS5_PASSWORD give one SOCKS5
// user through CredentialsFromEnv. Secrets never enter Config, so a Config
// may be logged or printed whole.
//
// Concurrency: a Config is a plain value; its methods are safe to call
// concurrently on copies but not while another goroutine modifies the same
// Config. Credentials is immutable once built and Check may be called from
// any number of goroutines.
package config
