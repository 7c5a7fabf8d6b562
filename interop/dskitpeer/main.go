// dskitpeer: one node of Grafana dskit's memberlist KV (kv/memberlist), as Loki, Mimir, Tempo
// and Pyroscope run it: dskit's TCP-only transport, Grafana's memberlist fork, a ring in the
// KV store. Each node keeps its own instance in the ring "ring" with a heartbeat every second.
// It reports JSON lines on stdout (like interop/gopeer): "ready", "members" (memberlist's own
// node table, real states, every -interval) and "ring" (the instances it sees in the KV).
// Commands on stdin: "leave" (graceful: dskit's StopAndAwaitTerminated), "members", "quit".
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/dns"
	"github.com/grafana/dskit/flagext"
	dskitml "github.com/grafana/dskit/kv/memberlist"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

var outMu sync.Mutex

func emit(ev string, fields map[string]any) {
	if fields == nil {
		fields = map[string]any{}
	}
	fields["ev"] = ev
	fields["self"] = *name
	b, _ := json.Marshal(fields)
	outMu.Lock()
	fmt.Println(string(b))
	outMu.Unlock()
}

var name = flag.String("name", "dskit", "node name")

var stateNames = []string{"alive", "suspect", "dead", "left"}

// table reads memberlist's node table out of dskit's KV (both are private fields), since
// Members() hides dead and left nodes.
func table(kv *dskitml.KV) []map[string]any {
	kvv := reflect.ValueOf(kv).Elem().FieldByName("memberlist")
	if kvv.IsNil() {
		return nil
	}
	ml := (*memberlist.Memberlist)(unsafe.Pointer(kvv.Pointer()))
	v := reflect.ValueOf(ml).Elem()
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
		s := "?"
		if state >= 0 && state < len(stateNames) {
			s = stateNames[state]
		}
		rows = append(rows, map[string]any{
			"name":  node.FieldByName("Name").String(),
			"addr":  net.IP(node.FieldByName("Addr").Bytes()).String(),
			"port":  node.FieldByName("Port").Uint(),
			"state": s,
			"inc":   ns.FieldByName("Incarnation").Uint(),
		})
	}
	return rows
}

func main() {
	bind := flag.String("bind", "127.0.0.1:7946", "bind host:port")
	join := flag.String("join", "", "comma-separated seeds")
	label := flag.String("label", "", "cluster label")
	compression := flag.String("compression", "lzw", "lzw or snappy")
	tlsOn := flag.Bool("tls", false, "TLS on the transport")
	tlsCA := flag.String("tls-ca", "", "CA file")
	tlsCert := flag.String("tls-cert", "", "certificate file")
	tlsKey := flag.String("tls-key", "", "key file")
	tlsServerName := flag.String("tls-server-name", "", "server name to verify")
	interval := flag.Duration("interval", 250*time.Millisecond, "emit members this often")
	flag.Parse()

	host, portStr, err := net.SplitHostPort(*bind)
	if err != nil {
		emit("fatal", map[string]any{"error": err.Error()})
		os.Exit(1)
	}
	port, _ := strconv.Atoi(portStr)

	var cfg dskitml.KVConfig
	flagext.DefaultValues(&cfg)
	cfg.NodeName = *name
	cfg.RandomizeNodeName = false
	cfg.TCPTransport.BindAddrs = []string{host}
	cfg.TCPTransport.BindPort = port
	cfg.AdvertiseAddr = host
	cfg.AdvertisePort = port
	cfg.ClusterLabel = *label
	cfg.EnableCompression = true
	cfg.CompressionAlgorithm = *compression
	cfg.PushPullInterval = 5 * time.Second
	cfg.GossipToTheDeadTime = 10 * time.Second
	cfg.LeaveTimeout = 5 * time.Second
	cfg.TCPTransport.TLSEnabled = *tlsOn
	cfg.TCPTransport.TLS.CAPath = *tlsCA
	cfg.TCPTransport.TLS.CertPath = *tlsCert
	cfg.TCPTransport.TLS.KeyPath = *tlsKey
	cfg.TCPTransport.TLS.ServerName = *tlsServerName
	if *join != "" {
		cfg.JoinMembers = strings.Split(*join, ",")
	}
	cfg.Codecs = append(cfg.Codecs, ring.GetCodec())
	logger := log.NewLogfmtLogger(log.NewSyncWriter(os.Stderr))
	reg := prometheus.NewRegistry()
	kvs := dskitml.NewKVInitService(&cfg, logger, dns.NewProvider(dns.GolangResolverType, 0, logger, reg), reg)
	ctx := context.Background()
	if err := services.StartAndAwaitRunning(ctx, kvs); err != nil {
		emit("fatal", map[string]any{"error": err.Error()})
		os.Exit(1)
	}
	kv, err := kvs.GetMemberlistKV()
	if err != nil {
		emit("fatal", map[string]any{"error": err.Error()})
		os.Exit(1)
	}
	if err := kv.AwaitRunning(ctx); err != nil {
		emit("fatal", map[string]any{"error": err.Error()})
		os.Exit(1)
	}
	client, err := dskitml.NewClient(kv, ring.GetCodec())
	if err != nil {
		emit("fatal", map[string]any{"error": err.Error()})
		os.Exit(1)
	}
	emit("ready", map[string]any{"addr": host, "port": port})

	// Heartbeat our instance in the ring, as a lifecycler does.
	go func() {
		for range time.Tick(time.Second) {
			_ = client.CAS(ctx, "ring", func(in interface{}) (interface{}, bool, error) {
				desc, _ := in.(*ring.Desc)
				if desc == nil {
					desc = ring.NewDesc()
				}
				inst := desc.AddIngester(*name, *bind, "zone-a", []uint32{uint32(len(*name))}, ring.ACTIVE, time.Now(), false, time.Time{}, nil)
				inst.Timestamp = time.Now().Unix()
				desc.Ingesters[*name] = inst
				return desc, true, nil
			})
		}
	}()
	report := func() {
		emit("members", map[string]any{"members": table(kv)})
		v, err := client.Get(ctx, "ring")
		var ids []string
		if desc, ok := v.(*ring.Desc); ok && desc != nil {
			for id := range desc.Ingesters {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		emit("ring", map[string]any{"instances": ids, "err": fmt.Sprint(err)})
	}
	go func() {
		for range time.Tick(*interval) {
			report()
		}
	}()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch strings.TrimSpace(sc.Text()) {
		case "members":
			report()
		case "leave":
			err := services.StopAndAwaitTerminated(ctx, kvs)
			emit("left", map[string]any{"err": fmt.Sprint(err)})
		case "quit":
			emit("bye", nil)
			os.Exit(0)
		}
	}
	select {}
}
