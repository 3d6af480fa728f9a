package packet

import (
	"encoding/binary"
)

// UDP is a UDP header (RFC 768):
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|            Length             |           Checksum            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Checksum 0 means "none" over IPv4 only; IPv6 forbids it (RFC 8200 §8.1).
type UDP []byte

// Field offsets of the UDP header.
const (
	udpSrcPort = 0
	udpDstPort = 2
	udpLength  = 4
	// UDPChecksumOffset is where the checksum lies in a UDP header.
	UDPChecksumOffset = 6
)

func (b UDP) SrcPort() uint16      { return binary.BigEndian.Uint16(b[udpSrcPort:]) }
func (b UDP) DstPort() uint16      { return binary.BigEndian.Uint16(b[udpDstPort:]) }
func (b UDP) Length() uint16       { return binary.BigEndian.Uint16(b[udpLength:]) }
func (b UDP) Checksum() uint16     { return binary.BigEndian.Uint16(b[UDPChecksumOffset:]) }
func (b UDP) SetSrcPort(v uint16)  { binary.BigEndian.PutUint16(b[udpSrcPort:], v) }
func (b UDP) SetDstPort(v uint16)  { binary.BigEndian.PutUint16(b[udpDstPort:], v) }
func (b UDP) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[UDPChecksumOffset:], v) }
