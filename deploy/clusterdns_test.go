package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nat64kit/nat64kit/internal/sdnotify/sdnotifytest"
	"github.com/nat64kit/nat64kit/test/netns"
)

// The cluster Corefile of deploy/kubernetes, run by our real CoreDNS with
// the real kubernetes plugin, in a namespace. The plugin's API server is a
// small stand-in serving two Services, so cluster.local answers come from
// the plugin itself; the test changes only what the cluster provides: the
// API endpoint (in a cluster, the in-cluster config) and the upstream
// resolver (the node's /etc/resolv.conf).
func TestClusterCorefileNeverSynthesizesClusterNames(t *testing.T) {
	netns.RequireRoot(t)
	corefile, err := os.ReadFile(filepath.Join(kubeDir, "Corefile"))
	if err != nil {
		t.Fatal(err)
	}
	c := startClusterDNS(t, string(corefile))

	// The plugin serves the cluster's names: web has only an IPv4
	// ClusterIP, web6 only an IPv6 one.
	if r := c.ask("web.default.svc.cluster.local.", dns.TypeA); r.Rcode != dns.RcodeSuccess || !hasRR(r, "192.0.2.10") {
		t.Fatalf("A web.default.svc.cluster.local: %v", r)
	}
	// ... and no AAAA is ever made up for them.
	if r := c.ask("web.default.svc.cluster.local.", dns.TypeAAAA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Errorf("AAAA of an IPv4-only Service must be empty (NODATA), got %v", r)
	}
	if r := c.ask("web6.default.svc.cluster.local.", dns.TypeAAAA); len(r.Answer) != 1 || !hasRR(r, "2001:db8:96::10") {
		t.Errorf("AAAA web6: %v", r)
	}
	if r := c.ask("nosuch.default.svc.cluster.local.", dns.TypeAAAA); r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 {
		t.Errorf("AAAA of a missing cluster name: want NXDOMAIN, got %v", r)
	}
	// The cluster's reverse zone is the plugin's too.
	rev, _ := dns.ReverseAddr("2001:db8:96::10")
	if r := c.ask(rev, dns.TypePTR); !hasRR(r, "web6.default.svc.cluster.local.") {
		t.Errorf("PTR of the Service address: %v", r)
	}

	// Everything else is dns64's: synthesized from upstream A records
	// (both translators are unreachable here, so it uses them all), and
	// PTR inside a NAT64 prefix points at the IPv4 address's PTR.
	if r := c.ask("v4.example.", dns.TypeAAAA); !hasRR(r, "64:ff9b:1::c633:6402") && !hasRR(r, "2001:db8:64::c633:6402") {
		t.Errorf("AAAA v4.example. not synthesized: %v", r)
	}
	rev, _ = dns.ReverseAddr("64:ff9b:1::c633:6402")
	if r := c.ask(rev, dns.TypePTR); !hasRR(r, "2.100.51.198.in-addr.arpa.") {
		t.Errorf("PTR inside the NAT64 prefix: %v", r)
	}

	// The check is not vacuous: dns64 in the cluster block would
	// synthesize the IPv4-only Service.
	t.Run("dns64 in the cluster block would", func(t *testing.T) {
		bad := strings.Replace(string(corefile), "    errors\n    kubernetes", "    errors\n    dns64 {\n        instances nat64.toml\n    }\n    kubernetes", 1)
		c := startClusterDNS(t, bad)
		if r := c.ask("web.default.svc.cluster.local.", dns.TypeAAAA); !hasRR(r, "c000:20a") {
			t.Errorf("with dns64 in the cluster block, want a synthesized AAAA, got %v", r)
		}
	})
}

func hasRR(m *dns.Msg, text string) bool {
	for _, rr := range m.Answer {
		if strings.Contains(rr.String(), text) {
			return true
		}
	}
	return false
}

type clusterDNS struct {
	t  *testing.T
	ns *netns.NS
}

const (
	fakeAPIAddr   = "127.0.0.1:6443"
	fakeUpstream  = "127.0.0.1:5300"
	clusterDNSAdd = "[::1]:53"
)

// startClusterDNS runs CoreDNS with corefile (adapted as described above)
// and nat64.toml of deploy/kubernetes in a fresh namespace, with the fake
// API server and upstream beside it, and waits until it listens and the
// kubernetes plugin has synced.
func startClusterDNS(t *testing.T, corefile string) *clusterDNS {
	t.Helper()
	bin := binary(t, "plugin/coredns")
	ns := netns.New(t, "cluster")
	serveFakeAPI(t, ns)
	serveFakeUpstream(t, ns)

	adapted := strings.Replace(corefile, "        pods insecure\n", "        pods insecure\n        endpoint http://"+fakeAPIAddr+"\n", 1)
	adapted = strings.Replace(adapted, "forward . /etc/resolv.conf", "forward . "+fakeUpstream, 1)
	if adapted == corefile || strings.Contains(adapted, "/etc/resolv.conf") {
		t.Fatal("the Corefile no longer has the kubernetes stanza or the forward this test adapts")
	}
	dir := t.TempDir()
	toml, err := os.ReadFile(filepath.Join(kubeDir, "nat64.toml"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "nat64.toml"), toml, 0o644)
	os.WriteFile(filepath.Join(dir, "Corefile"), []byte(adapted), 0o644)
	// In its directory, as the Deployment's workingDir, so that
	// "instances nat64.toml" resolves as in the cluster. READY=1 says the
	// servers listen; /ready that the kubernetes plugin has synced.
	sock := sdnotifytest.Listen(t)
	p := ns.Start(append(append([]string{"env", "-C", dir}, sock.Env(0)...), bin, "-conf", "Corefile")...)
	if _, err := sock.Await("READY=1", 60*time.Second, p.Done()); err != nil {
		t.Fatalf("%v\n%s", err, p.Output())
	}
	netns.WaitFor(t, 60*time.Second, "CoreDNS /ready (the kubernetes plugin synced)", func() error {
		select {
		case <-p.Done():
			return fmt.Errorf("coredns exited: %v\n%s", p.Err(), p.Output())
		default:
		}
		if !strings.Contains(scrapeStatus(ns, "http://127.0.0.1:8181/ready"), "200") {
			return fmt.Errorf("not ready")
		}
		return nil
	})
	return &clusterDNS{t, ns}
}

func (c *clusterDNS) ask(name string, qtype uint16) *dns.Msg {
	c.t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	var r *dns.Msg
	err := c.ns.Do(func() (err error) {
		r, _, err = (&dns.Client{Timeout: 3 * time.Second}).Exchange(m, clusterDNSAdd)
		return err
	})
	if err != nil {
		c.t.Fatalf("%s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return r
}

// scrapeStatus is the HTTP status line of a GET from inside ns.
func scrapeStatus(ns *netns.NS, url string) string {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = ns.Do(func() (err error) {
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(url)
	if err != nil {
		return err.Error()
	}
	resp.Body.Close()
	return resp.Status
}

// serveFakeAPI answers the kubernetes plugin's lists and watches: two
// Services in namespace default, no EndpointSlices. Watches stay open
// with no events; a watch-list request (sendInitialEvents) is refused,
// which makes client-go fall back to list-then-watch, as against an API
// server without that feature.
func serveFakeAPI(t *testing.T, ns *netns.NS) {
	t.Helper()
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: "default", ResourceVersion: "1", UID: types.UID("uid-" + name)}
	}
	svc := func(name, ip string, family corev1.IPFamily) corev1.Service {
		return corev1.Service{ObjectMeta: meta(name), Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: ip, ClusterIPs: []string{ip}, IPFamilies: []corev1.IPFamily{family},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
		}}
	}
	lists := map[string]any{
		"/api/v1/services": corev1.ServiceList{TypeMeta: metav1.TypeMeta{Kind: "ServiceList", APIVersion: "v1"}, ListMeta: metav1.ListMeta{ResourceVersion: "1"},
			Items: []corev1.Service{svc("web", "192.0.2.10", corev1.IPv4Protocol), svc("web6", "2001:db8:96::10", corev1.IPv6Protocol)}},
		"/api/v1/namespaces": corev1.NamespaceList{TypeMeta: metav1.TypeMeta{Kind: "NamespaceList", APIVersion: "v1"}, ListMeta: metav1.ListMeta{ResourceVersion: "1"},
			Items: []corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "default", ResourceVersion: "1"}}}},
		"/apis/discovery.k8s.io/v1/endpointslices": discoveryv1.EndpointSliceList{TypeMeta: metav1.TypeMeta{Kind: "EndpointSliceList", APIVersion: "discovery.k8s.io/v1"}, ListMeta: metav1.ListMeta{ResourceVersion: "1"}},
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		list, ok := lists[r.URL.Path]
		if !ok {
			http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`, http.StatusNotFound)
			return
		}
		q := r.URL.Query()
		switch {
		case q.Get("sendInitialEvents") == "true":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"watch-list not supported here","reason":"BadRequest","code":400}`)
		case q.Get("watch") == "true" || q.Get("watch") == "1":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		default:
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(list)
		}
	})
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", fakeAPIAddr); return err }); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// serveFakeUpstream is the cluster's upstream resolver: v4.example. has
// only an A record, and the in-addr.arpa name of its address a PTR.
func serveFakeUpstream(t *testing.T, ns *netns.NS) {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		switch {
		case q.Name == "v4.example." && q.Qtype == dns.TypeA:
			rr, _ := dns.NewRR("v4.example. 300 IN A 198.51.100.2")
			m.Answer = append(m.Answer, rr)
		case q.Name == "v4.example.":
		case q.Name == "2.100.51.198.in-addr.arpa." && q.Qtype == dns.TypePTR:
			rr, _ := dns.NewRR("2.100.51.198.in-addr.arpa. 300 IN PTR v4.example.")
			m.Answer = append(m.Answer, rr)
		default:
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	var pc net.PacketConn
	if err := ns.Do(func() (err error) { pc, err = net.ListenPacket("udp", fakeUpstream); return err }); err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: h}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
}
