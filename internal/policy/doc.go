// Package policy decides which destinations the proxies (forwards, SOCKS5,
// DNS) may reach through the ESP32: an ordered list of allow/deny rules
// over IP addresses, CIDR ranges, host name patterns and ports, and a
// default for what no rule matches.
//
// The first rule that matches decides. A host given as a name is matched
// by name rules; when the policy also has IP or CIDR rules, the name is
// resolved (on the device, through the lookup function the caller passes)
// and every resolved address must be allowed. Check then returns the
// checked address, so the connection goes to what was checked and a DNS
// answer that changes between check and dial cannot slip past the rules.
//
// Concurrency: a Policy is immutable once New returns it; Check and
// NeedsLookup may be called from any number of goroutines at once.
package policy
