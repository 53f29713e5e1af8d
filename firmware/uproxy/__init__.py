# uproxy: the ESP32 side of uartproxy's link protocol (docs/protocol.md).
VERSION = "0.1.0"
