package frame

// CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final XOR
// (docs/protocol.md §4.4). Check value for "123456789": 0x29B1.
const (
	crc16Poly = 0x1021
	crc16Init = 0xFFFF
)

var crc16Table = makeCRC16Table()

func makeCRC16Table() *[256]uint16 {
	var t [256]uint16
	for i := range t {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ crc16Poly
			} else {
				crc <<= 1
			}
		}
		t[i] = crc
	}
	return &t
}

// CRC16 returns the CRC-16/CCITT-FALSE of data.
func CRC16(data []byte) uint16 {
	return UpdateCRC16(crc16Init, data)
}

// UpdateCRC16 returns the CRC-16/CCITT-FALSE of the bytes whose checksum so
// far is crc, followed by data. Start with CRC16(nil) (0xFFFF).
func UpdateCRC16(crc uint16, data []byte) uint16 {
	for _, b := range data {
		crc = crc<<8 ^ crc16Table[byte(crc>>8)^b]
	}
	return crc
}
