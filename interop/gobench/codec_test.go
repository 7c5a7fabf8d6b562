// Package gobench measures, in Go, the codec work Go memberlist does per packet and per
// push/pull — the same operations as memberlist-proto's `cargo bench --bench codec` — so the two
// can be compared on one machine. memberlist's message structs and helpers are unexported, so
// the structs are declared here with the same fields and encoded with the same library and
// handle (go-msgpack v2, a zero MsgpackHandle); compound framing, LZW, CRC and AES-GCM follow
// memberlist's util.go and security.go.
package gobench

import (
	"bytes"
	"compress/lzw"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

type ping struct {
	SeqNo      uint32
	Node       string
	SourceAddr []byte `codec:",omitempty"`
	SourcePort uint16 `codec:",omitempty"`
	SourceNode string `codec:",omitempty"`
}

type alive struct {
	Incarnation uint32
	Node        string
	Addr        []byte
	Port        uint16
	Meta        []byte
	Vsn         []uint8
}

type pushPullHeader struct {
	Nodes        int
	UserStateLen int
	Join         bool
}

type pushNodeState struct {
	Name        string
	Addr        []byte
	Port        uint16
	Meta        []byte
	Incarnation uint32
	State       int
	Vsn         []uint8
}

type compress struct {
	Algo int
	Buf  []byte
}

func encode(t byte, v any) []byte {
	buf := bytes.NewBuffer([]byte{t})
	hd := codec.MsgpackHandle{}
	if err := codec.NewEncoder(buf, &hd).Encode(v); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func decode(b []byte, v any) {
	hd := codec.MsgpackHandle{}
	if err := codec.NewDecoder(bytes.NewReader(b), &hd).Decode(v); err != nil {
		panic(err)
	}
}

func compound(msgs [][]byte) []byte {
	buf := bytes.NewBuffer([]byte{7, byte(len(msgs))})
	for _, m := range msgs {
		_ = binary.Write(buf, binary.BigEndian, uint16(len(m)))
	}
	for _, m := range msgs {
		buf.Write(m)
	}
	return buf.Bytes()
}

func splitCompound(b []byte) [][]byte {
	n := int(b[0])
	lens := b[1 : 1+2*n]
	b = b[1+2*n:]
	var parts [][]byte
	for i := 0; i < n; i++ {
		l := int(binary.BigEndian.Uint16(lens[2*i:]))
		parts = append(parts, b[:l])
		b = b[l:]
	}
	return parts
}

func lzwCompress(msg []byte) []byte {
	var buf bytes.Buffer
	w := lzw.NewWriter(&buf, lzw.LSB, 8)
	_, _ = w.Write(msg)
	_ = w.Close()
	return encode(9, &compress{Algo: 0, Buf: buf.Bytes()})
}

func lzwDecompress(b []byte) []byte {
	var c compress
	decode(b, &c)
	r := lzw.NewReader(bytes.NewReader(c.Buf), lzw.LSB, 8)
	defer r.Close()
	var out bytes.Buffer
	if _, err := io.Copy(&out, r); err != nil {
		panic(err)
	}
	return out.Bytes()
}

func withCrc(msg []byte) []byte {
	out := make([]byte, 5, 5+len(msg))
	out[0] = 12
	binary.BigEndian.PutUint32(out[1:], crc32.ChecksumIEEE(msg))
	return append(out, msg...)
}

func encrypt(gcm cipher.AEAD, msg []byte) []byte {
	out := make([]byte, 13, 13+len(msg)+16)
	out[0] = 1
	_, _ = rand.Read(out[1:13])
	return gcm.Seal(out, out[1:13], msg, nil)
}

func decrypt(gcm cipher.AEAD, b []byte) []byte {
	p, err := gcm.Open(nil, b[1:13], b[13:], nil)
	if err != nil {
		panic(err)
	}
	return p
}

var vsn = []uint8{1, 5, 2, 0, 0, 0}

func probePacket(gcm cipher.AEAD) {
	p := encode(0, &ping{SeqNo: 1234, Node: "node-0001", SourceAddr: net.IPv4(10, 0, 0, 2).To4(), SourcePort: 7946, SourceNode: "node-0002"})
	a := encode(4, &alive{Incarnation: 3, Node: "node-0009", Addr: net.IPv4(10, 0, 0, 9).To4(), Port: 7946, Meta: []byte("role=web,zone=eu-west-1a"), Vsn: vsn})
	msg := compound([][]byte{p, a})
	if c := lzwCompress(msg); len(c) < len(msg) {
		msg = c
	}
	msg = withCrc(msg)
	if gcm != nil {
		msg = encrypt(gcm, msg)
		msg = decrypt(gcm, msg)
	}
	// Receive side.
	if crc32.ChecksumIEEE(msg[5:]) != binary.BigEndian.Uint32(msg[1:5]) {
		panic("crc")
	}
	body := msg[5:]
	if body[0] == 9 {
		body = lzwDecompress(body[1:])
	}
	for _, part := range splitCompound(body[1:]) {
		switch part[0] {
		case 0:
			var x ping
			decode(part[1:], &x)
		case 4:
			var x alive
			decode(part[1:], &x)
		}
	}
}

func pushPull(gcm cipher.AEAD, compressOn bool) {
	buf := bytes.NewBuffer(nil)
	buf.WriteByte(6)
	hd := codec.MsgpackHandle{}
	enc := codec.NewEncoder(buf, &hd)
	_ = enc.Encode(&pushPullHeader{Nodes: 100})
	for i := 0; i < 100; i++ {
		_ = enc.Encode(&pushNodeState{Name: fmt.Sprintf("node-%04d", i), Addr: net.IPv4(10, 0, byte(i>>8), byte(i)).To4(), Port: 7946, Meta: []byte("role=web,zone=eu-west-1a"), Incarnation: 3, Vsn: vsn})
	}
	msg := buf.Bytes()
	if compressOn {
		msg = lzwCompress(msg)
	}
	if gcm != nil {
		msg = decrypt(gcm, encrypt(gcm, msg))
	}
	if msg[0] == 9 {
		msg = lzwDecompress(msg[1:])
	}
	dec := codec.NewDecoder(bytes.NewReader(msg[1:]), &hd)
	var h pushPullHeader
	_ = dec.Decode(&h)
	nodes := make([]pushNodeState, h.Nodes)
	for i := range nodes {
		if err := dec.Decode(&nodes[i]); err != nil {
			panic(err)
		}
	}
}

func aes256() cipher.AEAD {
	block, _ := aes.NewCipher(bytes.Repeat([]byte{7}, 32))
	gcm, _ := cipher.NewGCM(block)
	return gcm
}

func BenchmarkCompoundPingAlive(b *testing.B) {
	for i := 0; i < b.N; i++ {
		probePacket(nil)
	}
}

func BenchmarkCompoundPingAliveAES256(b *testing.B) {
	gcm := aes256()
	for i := 0; i < b.N; i++ {
		probePacket(gcm)
	}
}

func BenchmarkPushPull100(b *testing.B) {
	for i := 0; i < b.N; i++ {
		pushPull(nil, true)
	}
}

func BenchmarkPushPull100AES256(b *testing.B) {
	gcm := aes256()
	for i := 0; i < b.N; i++ {
		pushPull(gcm, true)
	}
}

func BenchmarkPushPull100NoCompression(b *testing.B) {
	for i := 0; i < b.N; i++ {
		pushPull(nil, false)
	}
}
