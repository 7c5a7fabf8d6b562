// gopeer runs one node of HashiCorp's Go memberlist for the interop tests of memberlist-rs.
// It reads one command per line on stdin and writes one JSON event per line on stdout.
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/hashicorp/memberlist"
)

var (
	out   = json.NewEncoder(os.Stdout)
	outMu sync.Mutex
	start = time.Now()
	self  string
)

func emit(ev string, fields map[string]any) {
	if fields == nil {
		fields = map[string]any{}
	}
	fields["ev"] = ev
	fields["self"] = self
	fields["t"] = float64(time.Since(start).Microseconds()) / 1000
	outMu.Lock()
	defer outMu.Unlock()
	_ = out.Encode(fields)
}

type broadcast []byte

func (b broadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b broadcast) Message() []byte                       { return b }
func (b broadcast) Finished()                             {}

// delegate keeps a set of text notes: broadcasts add to it, messages add to it, push/pull
// exchanges it as JSON.
type delegate struct {
	mu    sync.Mutex
	meta  []byte
	notes []string
	queue *memberlist.TransmitLimitedQueue
}

func (d *delegate) NodeMeta(limit int) []byte { d.mu.Lock(); defer d.mu.Unlock(); return d.meta }
func (d *delegate) NotifyMsg(b []byte) {
	msg := string(b)
	d.mu.Lock()
	d.notes = append(d.notes, msg)
	d.mu.Unlock()
	emit("msg", map[string]any{"data": msg})
}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}
func (d *delegate) LocalState(join bool) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, _ := json.Marshal(map[string]any{"notes": d.notes})
	emit("local_state", map[string]any{"join": join})
	return b
}
func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	var s struct {
		Notes []string `json:"notes"`
	}
	_ = json.Unmarshal(buf, &s)
	emit("merge_state", map[string]any{"join": join, "state": string(buf)})
}

type events struct{}

func nodeFields(n *memberlist.Node) map[string]any {
	return map[string]any{"name": n.Name, "addr": n.Addr.String(), "port": n.Port, "meta": string(n.Meta)}
}
func (events) NotifyJoin(n *memberlist.Node)   { emit("join", nodeFields(n)) }
func (events) NotifyLeave(n *memberlist.Node)  { emit("leave", nodeFields(n)) }
func (events) NotifyUpdate(n *memberlist.Node) { emit("update", nodeFields(n)) }

var stateNames = []string{"alive", "suspect", "dead", "left"}

// table reads memberlist's own node table, since Members() hides dead and left nodes and
// Node.State is never filled in (the field is shadowed by nodeState.State).
func table(m *memberlist.Memberlist) []map[string]any {
	v := reflect.ValueOf(m).Elem()
	lockField := v.FieldByName("nodeLock")
	mu := (*sync.RWMutex)(unsafe.Pointer(lockField.UnsafeAddr()))
	mu.RLock()
	defer mu.RUnlock()
	nodes := v.FieldByName("nodes")
	var rows []map[string]any
	for i := 0; i < nodes.Len(); i++ {
		ns := nodes.Index(i).Elem()
		node := ns.FieldByName("Node")
		state := int(ns.FieldByName("State").Int())
		name := "?"
		if state >= 0 && state < len(stateNames) {
			name = stateNames[state]
		}
		rows = append(rows, map[string]any{
			"name":  node.FieldByName("Name").String(),
			"addr":  net.IP(node.FieldByName("Addr").Bytes()).String(),
			"port":  node.FieldByName("Port").Uint(),
			"meta":  string(node.FieldByName("Meta").Bytes()),
			"state": name,
			"inc":   ns.FieldByName("Incarnation").Uint(),
		})
	}
	return rows
}

func membersEvent(m *memberlist.Memberlist, t *dropTransport) map[string]any {
	return map[string]any{
		"members": table(m), "num_alive": m.NumMembers(), "health": m.GetHealthScore(),
		"sent_packets": t.sentPackets.Load(), "sent_bytes": t.sentBytes.Load(), "stream_sent_bytes": t.streamBytes.Load(),
	}
}

func main() {
	name := flag.String("name", "go", "node name")
	bind := flag.String("bind", "127.0.0.1:0", "bind host:port")
	advertise := flag.String("advertise", "=bind", "advertise IP (\"=bind\": the bind host; \"\": let memberlist choose, as deployments do)")
	join := flag.String("join", "", "comma-separated seeds")
	key := flag.String("key", "", "base64 encryption key")
	label := flag.String("label", "", "cluster label")
	preset := flag.String("config", "local", "lan, wan or local")
	meta := flag.String("meta", "", "node metadata")
	compress := flag.Bool("compress", true, "EnableCompression")
	proto := flag.Int("proto", 2, "ProtocolVersion")
	probeInterval := flag.Duration("probe-interval", 0, "ProbeInterval override")
	probeTimeout := flag.Duration("probe-timeout", 0, "ProbeTimeout override")
	gossipInterval := flag.Duration("gossip-interval", 0, "GossipInterval override")
	pushPull := flag.Duration("pushpull-interval", 0, "PushPullInterval override")
	suspicionMult := flag.Int("suspicion-mult", 0, "SuspicionMult override")
	toTheDead := flag.Duration("gossip-to-the-dead", 0, "GossipToTheDeadTime override")
	interval := flag.Duration("interval", 0, "emit a members event this often (0: only on request)")
	udpDrop := flag.Float64("udp-drop", 0, "drop this fraction of UDP datagrams each way")
	udpDelay := flag.Duration("udp-delay", 0, "delay UDP datagrams this long each way")
	flag.Parse()
	self = *name

	var cfg *memberlist.Config
	switch *preset {
	case "lan":
		cfg = memberlist.DefaultLANConfig()
	case "wan":
		cfg = memberlist.DefaultWANConfig()
	default:
		cfg = memberlist.DefaultLocalConfig()
	}
	host, portStr, err := net.SplitHostPort(*bind)
	if err != nil {
		log.Fatalf("bad -bind: %v", err)
	}
	port, _ := strconv.Atoi(portStr)
	cfg.Name = *name
	cfg.BindAddr = host
	cfg.BindPort = port
	cfg.AdvertiseAddr = host
	if *advertise != "=bind" {
		cfg.AdvertiseAddr = *advertise
	}
	cfg.AdvertisePort = port
	if err := setLabel(cfg, *label); err != nil {
		log.Fatalf("%v", err)
	}
	cfg.EnableCompression = *compress
	cfg.ProtocolVersion = uint8(*proto)
	cfg.LogOutput = io.Discard
	if os.Getenv("GOPEER_LOG") != "" {
		cfg.LogOutput = os.Stderr
	}
	if *probeInterval > 0 {
		cfg.ProbeInterval = *probeInterval
	}
	if *probeTimeout > 0 {
		cfg.ProbeTimeout = *probeTimeout
	}
	if *gossipInterval > 0 {
		cfg.GossipInterval = *gossipInterval
	}
	if *pushPull > 0 {
		cfg.PushPullInterval = *pushPull
	}
	if *suspicionMult > 0 {
		cfg.SuspicionMult = *suspicionMult
	}
	if *toTheDead > 0 {
		cfg.GossipToTheDeadTime = *toTheDead
	}
	if *key != "" {
		k, err := base64.StdEncoding.DecodeString(*key)
		if err != nil {
			log.Fatalf("bad -key: %v", err)
		}
		cfg.SecretKey = k
	}
	transport, err := newDropTransport(host, port)
	if err != nil {
		log.Fatalf("transport: %v", err)
	}
	cfg.Transport = transport
	transport.dropPermille.Store(int32(*udpDrop * 1000))
	transport.delayMicros.Store(udpDelay.Microseconds())
	if port == 0 {
		cfg.BindPort = transport.GetAutoBindPort()
		cfg.AdvertisePort = cfg.BindPort
	}
	d := &delegate{meta: []byte(*meta)}
	cfg.Delegate = d
	cfg.Events = events{}
	m, err := memberlist.Create(cfg)
	if err != nil {
		emit("fatal", map[string]any{"error": err.Error()})
		os.Exit(1)
	}
	d.queue = &memberlist.TransmitLimitedQueue{NumNodes: m.NumMembers, RetransmitMult: cfg.RetransmitMult}
	ln := m.LocalNode()
	emit("ready", map[string]any{"addr": ln.Addr.String(), "port": ln.Port})
	if *interval > 0 {
		go func() {
			for range time.Tick(*interval) {
				emit("members", membersEvent(m, transport))
			}
		}()
	}
	if *join != "" {
		n, err := m.Join(strings.Split(*join, ","))
		emit("joined", map[string]any{"contacted": n, "err": fmt.Sprint(err)})
	}

	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		fields := strings.SplitN(strings.TrimSpace(sc.Text()), " ", 3)
		switch fields[0] {
		case "members":
			emit("members", membersEvent(m, transport))
		case "join":
			n, err := m.Join(strings.Split(fields[1], ","))
			emit("joined", map[string]any{"contacted": n, "err": fmt.Sprint(err)})
		case "leave":
			err := m.Leave(2 * time.Second)
			emit("left", map[string]any{"err": fmt.Sprint(err)})
		case "broadcast":
			d.queue.QueueBroadcast(broadcast(strings.Join(fields[1:], " ")))
			emit("queued", nil)
		case "send", "sendudp":
			var target *memberlist.Node
			for _, n := range m.Members() {
				if n.Name == fields[1] {
					target = n
				}
			}
			if target == nil {
				emit("error", map[string]any{"error": "no such node " + fields[1]})
				continue
			}
			if fields[0] == "send" {
				err = m.SendReliable(target, []byte(fields[2]))
			} else {
				err = m.SendBestEffort(target, []byte(fields[2]))
			}
			emit("sent", map[string]any{"err": fmt.Sprint(err)})
		case "meta":
			d.mu.Lock()
			d.meta = []byte(strings.Join(fields[1:], " "))
			d.mu.Unlock()
			err := m.UpdateNode(2 * time.Second)
			emit("meta_updated", map[string]any{"err": fmt.Sprint(err)})
		case "key":
			// key install|use|remove <base64>
			k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(fields[2]))
			if err == nil && cfg.Keyring == nil {
				err = fmt.Errorf("encryption is not configured")
			}
			if err == nil {
				switch fields[1] {
				case "install":
					err = cfg.Keyring.AddKey(k)
				case "use":
					err = cfg.Keyring.UseKey(k)
				case "remove":
					err = cfg.Keyring.RemoveKey(k)
				default:
					err = fmt.Errorf("unknown key operation %q", fields[1])
				}
			}
			emit("key", map[string]any{"op": fields[1], "err": fmt.Sprint(err)})
		case "udp-drop":
			// udp-drop <fraction 0..1>
			f, err := strconv.ParseFloat(strings.TrimSpace(fields[1]), 64)
			if err == nil {
				transport.dropPermille.Store(int32(f * 1000))
			}
			emit("knob", map[string]any{"udp_drop": f, "err": fmt.Sprint(err)})
		case "udp-delay":
			// udp-delay <duration>, e.g. 50ms
			d, err := time.ParseDuration(strings.TrimSpace(fields[1]))
			if err == nil {
				transport.delayMicros.Store(d.Microseconds())
			}
			emit("knob", map[string]any{"udp_delay": d.String(), "err": fmt.Sprint(err)})
		case "quit", "shutdown":
			_ = m.Shutdown()
			emit("bye", nil)
			os.Exit(0)
		default:
			emit("error", map[string]any{"error": "unknown command " + fields[0]})
		}
	}
	// Keep running after stdin closes, until killed.
	select {}
}
