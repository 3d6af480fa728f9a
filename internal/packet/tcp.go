package packet

import (
	"encoding/binary"
)

// TCP is a TCP header (RFC 9293 §3.1):
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                        Sequence Number                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Acknowledgment Number                      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Data |       |C|E|U|A|P|R|S|F|                               |
//	| Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Checksum            |         Urgent Pointer        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type TCP []byte

// Field offsets of the TCP header.
const (
	tcpSrcPort    = 0
	tcpDstPort    = 2
	tcpSeq        = 4
	tcpAck        = 8
	tcpDataOffset = 12
	tcpFlags      = 13
	// TCPChecksumOffset is where the checksum lies in a TCP header.
	TCPChecksumOffset = 16
)

func (b TCP) SrcPort() uint16      { return binary.BigEndian.Uint16(b[tcpSrcPort:]) }
func (b TCP) DstPort() uint16      { return binary.BigEndian.Uint16(b[tcpDstPort:]) }
func (b TCP) Seq() uint32          { return binary.BigEndian.Uint32(b[tcpSeq:]) }
func (b TCP) Ack() uint32          { return binary.BigEndian.Uint32(b[tcpAck:]) }
func (b TCP) DataOffset() int      { return int(b[tcpDataOffset]>>4) * 4 }
func (b TCP) Flags() uint8         { return b[tcpFlags] }
func (b TCP) Checksum() uint16     { return binary.BigEndian.Uint16(b[TCPChecksumOffset:]) }
func (b TCP) SetSrcPort(v uint16)  { binary.BigEndian.PutUint16(b[tcpSrcPort:], v) }
func (b TCP) SetDstPort(v uint16)  { binary.BigEndian.PutUint16(b[tcpDstPort:], v) }
func (b TCP) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[TCPChecksumOffset:], v) }
