package daemon

import (
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/nat64kit/nat64kit/internal/control"
	"github.com/nat64kit/nat64kit/internal/fastpath"
	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/state"
	"github.com/nat64kit/nat64kit/nat64conf"
)

// fastPath is the kernel fast path of a running instance, and the mirror
// through which the state table tells it which sessions it may carry.
type fastPath struct {
	mode   nat64conf.FastPathMode
	fp     *fastpath.FastPath // nil when not loaded
	reason string             // why it is not loaded (mode auto)

	// insertErrors counts sessions the maps refused (full): those stay on
	// the slow path.
	insertErrors atomic.Uint64
	conv         fastpath.Session
}

// startFastPath loads and attaches the fast path on the instance's TUN
// device as mode says: off never loads it; auto logs one line saying why
// it could not and goes on without it; on fails start-up instead.
func (d *Daemon) startFastPath(in *nat64conf.Instance, mode nat64conf.FastPathMode) error {
	d.fast = &fastPath{mode: mode}
	if mode == nat64conf.FastPathOff {
		d.fast.reason = "fastpath = off"
		return nil
	}
	fp, err := loadFast(in)
	if err != nil {
		if mode == nat64conf.FastPathOn {
			return fmt.Errorf("fast path (fastpath = on): %w", err)
		}
		d.fast.reason = err.Error()
		d.log.Warn("fast path not loaded; the user-space translator carries everything", "reason", err.Error())
		return nil
	}
	d.fast.fp = fp
	d.table.SetMirror(d.fast)
	d.log.Info("fast path attached", "device", in.Name)
	return nil
}

// loadFast loads and attaches the fast path; tests stand in for it.
var loadFast = loadFastPath

func loadFastPath(in *nat64conf.Instance) (*fastpath.FastPath, error) {
	ifc, err := net.InterfaceByName(in.Name)
	if err != nil {
		return nil, err
	}
	// The MTUs as the translators resolve them, so both paths agree on
	// what is too big.
	xc := limitsConfig(in).Resolved()
	fp, err := fastpath.Load(fastpath.Config{
		Ifindex:       ifc.Index,
		MaxSessions:   in.MaxSessions,
		MTU:           xc.MTU,
		IPv4MTU:       xc.IPv4MTU,
		LowestIPv6MTU: xc.LowestIPv6MTU,
	})
	if err != nil {
		return nil, err
	}
	if err := fp.Attach(); err != nil {
		fp.Close()
		return nil, err
	}
	return fp, nil
}

// stop detaches the program and frees its maps; the table forgets the
// mirror first, so nothing calls into freed maps.
func (f *fastPath) stop(t *state.Table) error {
	if f == nil || f.fp == nil {
		return nil
	}
	t.SetMirror(nil)
	err := f.fp.Close()
	f.fp = nil
	return err
}

// The state.Mirror methods; the table calls them with its writer lock held,
// so conv is never used by two at once.

func (f *fastPath) Add(s *state.MirrorSession) {
	if err := f.fp.Insert(f.convert(s)); err != nil {
		f.insertErrors.Add(1)
	}
}

func (f *fastPath) Remove(s *state.MirrorSession) {
	// A session the maps refused is not there to delete.
	_ = f.fp.Delete(f.convert(s))
}

func (f *fastPath) Idle(s *state.MirrorSession) (time.Duration, bool) {
	return f.fp.Idle(f.convert(s))
}

func (f *fastPath) convert(s *state.MirrorSession) *fastpath.Session {
	f.conv = fastpath.Session{
		Proto: s.Proto,
		Src6:  s.Src6, Src6Port: s.SrcPort6,
		Dst6: s.Dst6, Dst6Port: s.DstPort6,
		Src4: s.Src4, Src4Port: s.SrcPort4,
		Dst4: s.Dst4, Dst4Port: s.DstPort4,
	}
	return &f.conv
}

// addStats puts the fast path's share into a stats snapshot: its packets
// and bytes are translated packets too, so they join the totals, and are
// shown apart so an operator sees how much the kernel carries.
func (f *fastPath) addStats(s *control.Stats) {
	out := &control.FastPathStats{Mode: string(f.mode), Reason: f.reason}
	s.FastPath = out
	if f.fp == nil {
		return
	}
	out.Active = true
	// Counted in the map itself, not from what was inserted: the figure
	// shows what the kernel really holds.
	out.Sessions = f.fp.Sessions()
	out.InsertErrors = f.insertErrors.Load()
	out.Packets = map[string]uint64{}
	out.Bytes = map[string]uint64{}
	out.Passed = map[string]uint64{}
	st, err := f.fp.Stats()
	if err != nil {
		out.Reason = "reading the fast path's counters: " + err.Error()
		return
	}
	out.Dropped = st.Dropped
	for dir, name := range [2]string{"6to4", "4to6"} {
		for _, p := range nat64.Transports {
			k := name + "/" + p.String()
			n, b := st.Packets[dir][p.Index()], st.Bytes[dir][p.Index()]
			out.Packets[k], out.Bytes[k] = n, b
			s.Packets[k] += n
			s.Bytes[k] += b
		}
	}
	for reason, n := range st.Passed {
		out.Passed[reason] = n
	}
}
