package main

import (
	"math/rand"
	"net"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// dropTransport wraps memberlist's NetTransport and drops a fraction of UDP datagrams in both
// directions (streams are untouched), to exercise the TCP fallback ping, and delays the others
// in both directions (the round trip grows by twice the delay) where the kernel has no netem.
type dropTransport struct {
	*memberlist.NetTransport
	dropPermille atomic.Int32
	delayMicros  atomic.Int64
	packets      chan *memberlist.Packet
	streams      chan net.Conn
	// What this node sent, for benchmarks: UDP datagrams and bytes, TCP bytes (both directions
	// of connections count only what this node wrote).
	sentPackets atomic.Int64
	sentBytes   atomic.Int64
	streamBytes atomic.Int64
}

// countingConn counts the bytes written to a stream.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(int64(n))
	return n, err
}

func (t *dropTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *dropTransport) sent(n int) {
	t.sentPackets.Add(1)
	t.sentBytes.Add(int64(n))
}

func (t *dropTransport) delay() time.Duration {
	return time.Duration(t.delayMicros.Load()) * time.Microsecond
}

func newDropTransport(host string, port int) (*dropTransport, error) {
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: port})
	if err != nil {
		return nil, err
	}
	t := &dropTransport{NetTransport: nt, packets: make(chan *memberlist.Packet, 1024), streams: make(chan net.Conn)}
	go func() {
		for c := range nt.StreamCh() {
			t.streams <- countingConn{c, &t.streamBytes}
		}
	}()
	go func() {
		for p := range nt.PacketCh() {
			if t.dropped() {
				continue
			}
			if d := t.delay(); d > 0 {
				p := p
				time.AfterFunc(d, func() { t.packets <- p })
				continue
			}
			t.packets <- p
		}
	}()
	return t, nil
}

func (t *dropTransport) dropped() bool {
	p := t.dropPermille.Load()
	return p > 0 && rand.Int31n(1000) < p
}

func (t *dropTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// send applies the knobs to one outgoing datagram and hands it to write (now or after the
// delay, on a copy since the caller may reuse b).
func (t *dropTransport) send(b []byte, write func([]byte) (time.Time, error)) (time.Time, error) {
	if t.dropped() {
		return time.Now(), nil
	}
	t.sent(len(b))
	if d := t.delay(); d > 0 {
		buf := append([]byte(nil), b...)
		time.AfterFunc(d, func() { _, _ = write(buf) })
		return time.Now(), nil
	}
	return write(b)
}

func (t *dropTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.send(b, func(b []byte) (time.Time, error) { return t.NetTransport.WriteTo(b, addr) })
}

func (t *dropTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.send(b, func(b []byte) (time.Time, error) { return t.NetTransport.WriteToAddress(b, a) })
}

// counted wraps a freshly dialed stream so that what this node writes to it is counted.
func (t *dropTransport) counted(c net.Conn, err error) (net.Conn, error) {
	if err != nil {
		return nil, err
	}
	return countingConn{c, &t.streamBytes}, nil
}

func (t *dropTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.counted(t.NetTransport.DialAddressTimeout(a, timeout))
}

func (t *dropTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.counted(t.NetTransport.DialTimeout(addr, timeout))
}
