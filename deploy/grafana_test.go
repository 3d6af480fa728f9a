package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/nat64kit/nat64kit/test/netns"
)

const dashboardFile = "grafana/nat64kit.json"

// dashPanel is the part of a Grafana panel the tests read; rows carry
// their collapsed panels inside.
type dashPanel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	Targets    []struct {
		RefID      string          `json:"refId"`
		Expr       string          `json:"expr"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"`
}

type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []dashPanel `json:"panels"`
}

// query is one PromQL expression of the dashboard and where it sits.
type query struct {
	where, expr string
}

func loadDashboard(t *testing.T, data []byte) (dashboard, []query) {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var qs []query
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				qs = append(qs, query{fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID), tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		var s string
		if json.Unmarshal(v.Query, &s) != nil {
			json.Unmarshal(v.Query, &q)
			s = q.Query
		}
		qs = append(qs, query{fmt.Sprintf("variable %q", v.Name), labelValuesSelector(s)})
	}
	return d, qs
}

var labelValues = regexp.MustCompile(`^\s*label_values\(\s*(.*?)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$`)

// labelValuesSelector is the PromQL selector of Grafana's
// label_values(SELECTOR, LABEL), or the query itself.
func labelValuesSelector(q string) string {
	if m := labelValues.FindStringSubmatch(q); m != nil {
		return m[1]
	}
	return q
}

// checkDashboard returns one line per metric the dashboard reads that no
// exporter exports, naming where it is read, and per unparsable query.
func checkDashboard(qs []query, exported map[string]bool) []string {
	var bad []string
	for _, q := range qs {
		names, err := promqlMetrics(q.expr)
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("%s: %q: %v", q.where, q.expr, err))
		case len(names) == 0:
			bad = append(bad, fmt.Sprintf("%s: %q reads no metric", q.where, q.expr))
		}
		for _, n := range names {
			if !exported[n] {
				bad = append(bad, fmt.Sprintf("%s: metric %s is exported by neither nat64ctl nor coredns", q.where, n))
			}
		}
	}
	return bad
}

// Every panel uses the Prometheus data source chosen in the dashboard's
// datasource variable, so an operator picks theirs at import.
func TestDashboardDatasourceVariable(t *testing.T) {
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	d, qs := loadDashboard(t, data)
	if len(qs) < 15 {
		t.Fatalf("only %d queries", len(qs))
	}
	var ds bool
	for _, v := range d.Templating.List {
		ds = ds || v.Type == "datasource" && v.Name == "datasource" && string(v.Query) == `"prometheus"`
	}
	if !ds {
		t.Error(`no templating variable "datasource" of type datasource for prometheus`)
	}
	want := `{"type":"prometheus","uid":"${datasource}"}`
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			if p.Type != "row" {
				if len(p.Targets) == 0 {
					t.Errorf("panel %d %q has no query", p.ID, p.Title)
				}
				if compact(p.Datasource) != want {
					t.Errorf("panel %d %q: datasource %s, want %s", p.ID, p.Title, p.Datasource, want)
				}
				for _, tg := range p.Targets {
					if compact(tg.Datasource) != want {
						t.Errorf("panel %d %q target %s: datasource %s", p.ID, p.Title, tg.RefID, tg.Datasource)
					}
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
}

func compact(m json.RawMessage) string {
	var v any
	if json.Unmarshal(m, &v) != nil {
		return string(m)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// The dashboard's metrics against what the real binaries export: a
// nat64ctl translating in a namespace, and our CoreDNS beside it whose
// dns64 polls that translator (and a second instance that is down), after
// traffic that makes every series the dashboard reads appear.
func TestDashboardMetricsExist(t *testing.T) {
	netns.RequireRoot(t)
	netns.RequireCommand(t, "ping", "iputils-ping")
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	_, qs := loadDashboard(t, data)
	exported := liveMetrics(t)

	if bad := checkDashboard(qs, exported); len(bad) > 0 {
		t.Errorf("%s:\n%s", dashboardFile, strings.Join(bad, "\n"))
	}

	// A misspelt metric fails, naming the panel and the metric.
	t.Run("typo", func(t *testing.T) {
		typo := strings.Replace(string(data), "nat64ctl_drops_total", "nat64ctl_drop_total", 1)
		_, qs := loadDashboard(t, []byte(typo))
		bad := strings.Join(checkDashboard(qs, exported), "\n")
		if !strings.Contains(bad, `"Drops by reason"`) || !strings.Contains(bad, "metric nat64ctl_drop_total is exported by neither") {
			t.Errorf("the typo should be reported with its panel:\n%s", bad)
		}
	})
}

const statsZone = `$ORIGIN example.
@       3600 IN SOA ns.example. host.example. 1 7200 3600 1209600 300
@       3600 IN NS  ns
ns      3600 IN A   198.51.100.1
v4      3600 IN A   198.51.100.2
both    3600 IN A    198.51.100.5
both    3600 IN AAAA 2001:db8:5::1
mapped  3600 IN A    198.51.100.6
mapped  3600 IN AAAA ::ffff:198.51.100.6
`

// liveMetrics runs the stack in a namespace and returns the names of all
// series the two exporters expose (histograms as their _bucket, _sum and
// _count series, as PromQL reads them).
func liveMetrics(t *testing.T) map[string]bool {
	ctl, coredns := binary(t, "nat64ctl"), binary(t, "plugin/coredns")
	ns := netns.New(t, "stack")
	dir := t.TempDir()
	toml := `[[instance]]
name    = "nat64-t"
prefix  = "64:ff9b:1::/96"
pool4   = ["203.0.113.1/32"]
control = "127.0.0.1:9164"

[[instance]]
name    = "nat64-down"
prefix  = "2001:db8:64::/96"
pool4   = ["203.0.113.2/32"]
control = "127.0.0.1:9165"    # nothing listens: dns64 sees it down
`
	corefile := fmt.Sprintf(`. {
    bind ::1
    prometheus 127.0.0.1:9153
    dns64 {
        instances %[1]s/nat64.toml
        health_interval 100ms
        health_timeout 90ms
    }
    file %[1]s/db.example example.
}
`, dir)
	for name, body := range map[string]string{"nat64.toml": toml, "Corefile": corefile, "db.example": statsZone} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	x := ns.Start(ctl, "run", "-c", filepath.Join(dir, "nat64.toml"), "--instance", "nat64-t", "--queues", "1")
	ns.Start(coredns, "-conf", filepath.Join(dir, "Corefile"))
	ctlMetrics := "http://127.0.0.1:9164/metrics"
	dnsMetrics := "http://127.0.0.1:9153/metrics"
	netns.WaitFor(t, 30*time.Second, "nat64ctl healthy", func() error {
		select {
		case <-x.Done():
			return fmt.Errorf("nat64ctl exited: %s", x.Output())
		default:
		}
		return want(scrape(ns, ctlMetrics), "nat64ctl_healthy 1")
	})

	// A ping with hop limit 1 is dropped (Time Exceeded sent back): the
	// drop counters have a series only once a packet was dropped.
	synth := netip.MustParseAddr("64:ff9b:1::c633:6402") // 198.51.100.2
	ns.Exec(context.Background(), "ping", "-c", "1", "-W", "1", "-t", "1", synth.String())
	netns.WaitFor(t, 10*time.Second, "a drop counted", func() error {
		return want(scrape(ns, ctlMetrics), "nat64ctl_drops_total{")
	})
	names := seriesNames(scrape(ns, ctlMetrics))

	// The down instance leaves the rotation after max_fails (2) failed polls.
	netns.WaitFor(t, 30*time.Second, "dns64 polled both instances", func() error {
		m := scrape(ns, dnsMetrics)
		if err := want(m, `coredns_dns64_instance_healthy{instance="nat64-t",prefix="64:ff9b:1::/96"} 1`); err != nil {
			return err
		}
		if err := want(m, `coredns_dns64_instance_healthy{instance="nat64-down",prefix="2001:db8:64::/96"} 0`); err != nil {
			return err
		}
		return want(m, `coredns_dns64_health_checks_failed_total{instance="nat64-down"}`)
	})
	ask := func(name string, qtype uint16) *dns.Msg {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		var r *dns.Msg
		err := ns.Do(func() (err error) {
			r, _, err = (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, "[::1]:53")
			return err
		})
		if err != nil {
			t.Fatalf("%s %s: %v", name, dns.TypeToString[qtype], err)
		}
		return r
	}
	for range 2 { // the second answer comes from dns64's answer cache
		if r := ask("v4.example.", dns.TypeAAAA); len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), "64:ff9b:1::c633:6402") {
			t.Fatalf("v4.example. AAAA: %v", r)
		}
	}
	ask("both.example.", dns.TypeAAAA)   // passed through
	ask("mapped.example.", dns.TypeAAAA) // ::ffff:0:0/96 excluded, then synthesized
	rev, _ := dns.ReverseAddr(synth.String())
	ask(rev, dns.TypePTR)

	// With the translator gone too, dns64 synthesizes with every instance.
	x.Stop()
	netns.WaitFor(t, 30*time.Second, "dns64 to see nat64-t down", func() error {
		return want(scrape(ns, dnsMetrics), `coredns_dns64_instance_healthy{instance="nat64-t",prefix="64:ff9b:1::/96"} 0`)
	})
	ask("v4.example.", dns.TypeAAAA)
	for n := range seriesNames(scrape(ns, dnsMetrics)) {
		names[n] = true
	}
	return names
}

// scrape GETs a URL from inside the namespace ("" on any error: the
// callers wait for content).
func scrape(ns *netns.NS, url string) string {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
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
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func want(metrics, line string) error {
	if !strings.Contains(metrics, line) {
		return fmt.Errorf("no %s yet", line)
	}
	return nil
}

// seriesNames reads the names of the samples in Prometheus text format.
func seriesNames(text string) map[string]bool {
	out := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		if i := strings.IndexAny(l, "{ "); i > 0 {
			out[l[:i]] = true
		}
	}
	return out
}
