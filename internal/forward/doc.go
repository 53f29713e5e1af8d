// Package forward runs port forwards through the ESP32: local forwards
// (-L) listen here and have the device connect out; remote forwards (-R)
// listen on the device and connect here. Spec is a forward as the user
// writes it.
package forward
