// Package forward runs port forwards through the ESP32: local forwards
// (-L) listen here and have the device connect out; remote forwards (-R)
// listen on the device and connect here. Spec is a forward as the user
// writes it; Forward runs one.
//
// A local TCP forward accepts clients on Spec.ListenAddr() and, for each,
// has the device connect to Spec.Target() through Config.Dial. A local UDP
// forward reads datagrams on one local socket and gives every client
// address its own device socket (Config.ListenPacket), so replies find
// their way back; clients quiet for UDPIdleTimeout are forgotten, and
// beyond MaxUDPClients the least recently active one is evicted. A remote
// forward keeps a listener open on the device (Config.Listen), retrying
// with backoff while the device is away and listening again after the
// link is lost, and connects each accepted connection to Spec.Target() on
// this host. TCP data is copied both ways with half-close: EOF in one
// direction becomes CloseWrite on the other side. A connection that fails
// in either direction, or that Close cuts, is aborted, so the TCP client
// gets a reset rather than an end of stream that would pass for complete.
//
// Shutdown stops accepting at once and lets what is active finish: TCP
// connections until they end, UDP clients until they have been quiet for
// a second (the local UDP socket stays open meanwhile, to carry their
// answers).
//
// The package knows the device only through the functions in Config,
// which have the standard library's signatures; failures are classified
// by the syscall errnos they match (the mux package's errors match them),
// into the reasons of Stats.Failed.
//
// Concurrency: a Forward's methods may be called from any goroutine, and
// the functions in Config are called from several at once. A Forward
// runs one goroutine that accepts (local TCP), listens (remote), or reads
// the local socket plus one janitor (UDP), and two per TCP connection or
// UDP client. The Forward owns all of them: Shutdown and Close return
// only when every one has ended. One mutex guards the state, the
// listeners, the set of connections and the UDP client table; counters
// are atomics that Stats reads without it. Config.Admit and its release
// functions are never called with the mutex held.
package forward
