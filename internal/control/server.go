package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Backend is what the server exposes: the running translator. Its methods
// are called from HTTP goroutines and must be safe for concurrent use.
type Backend interface {
	Healthy() bool
	Sessions(proto string) []Session // proto "" means all
	BIB(proto string) []BIBEntry
	Stats() Stats
	AddStatic(StaticEntry) error
	RemoveStatic(StaticEntry) error
	Reload() error
}

// ErrNotFound is returned by a Backend for an absent static entry.
var ErrNotFound = errors.New("no such entry")

// Server serves the control API on one listener.
type Server struct {
	srv *http.Server
	ln  net.Listener
	log *slog.Logger
}

// NewServer binds addr (host:port; the config's default is loopback) and
// prepares the handlers. reg may hold more collectors; the backend's
// counters are added to it.
func NewServer(addr string, b Backend, reg *prometheus.Registry, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if err := reg.Register(newCollector(b)); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control: metrics: %w", err)
	}
	// The runtime's and the process's own figures (go_goroutines,
	// process_resident_memory_bytes, process_open_fds, ...), which a long
	// run is watched by; a caller may have registered them already.
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			ln.Close()
			return nil, fmt.Errorf("control: metrics: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathHealthz, func(w http.ResponseWriter, _ *http.Request) {
		if !b.Healthy() {
			http.Error(w, "not translating", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET "+PathMetrics, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET "+PathSessions, func(w http.ResponseWriter, r *http.Request) {
		proto, ok := protoParam(w, r)
		if ok {
			writeJSON(w, http.StatusOK, nonNil(b.Sessions(proto)))
		}
	})
	mux.HandleFunc("GET "+PathBIB, func(w http.ResponseWriter, r *http.Request) {
		proto, ok := protoParam(w, r)
		if ok {
			writeJSON(w, http.StatusOK, nonNil(b.BIB(proto)))
		}
	})
	mux.HandleFunc("GET "+PathStats, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, b.Stats())
	})
	mux.HandleFunc("POST "+PathStatic, func(w http.ResponseWriter, r *http.Request) {
		e, ok := readStatic(w, r)
		if !ok {
			return
		}
		if err := b.AddStatic(e); err != nil {
			writeJSON(w, http.StatusBadRequest, Error{err.Error()})
			return
		}
		writeJSON(w, http.StatusCreated, e)
	})
	mux.HandleFunc("DELETE "+PathStatic, func(w http.ResponseWriter, r *http.Request) {
		e, ok := readStatic(w, r)
		if !ok {
			return
		}
		switch err := b.RemoveStatic(e); {
		case errors.Is(err, ErrNotFound):
			writeJSON(w, http.StatusNotFound, Error{err.Error()})
		case err != nil:
			writeJSON(w, http.StatusBadRequest, Error{err.Error()})
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	mux.HandleFunc("POST "+PathReload, func(w http.ResponseWriter, _ *http.Request) {
		if err := b.Reload(); err != nil {
			writeJSON(w, http.StatusBadRequest, Error{err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, b.Stats())
	})
	if log == nil {
		log = slog.Default()
	}
	return &Server{
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)},
		ln:  ln,
		log: log,
	}, nil
}

// Addr is the address actually bound (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve answers requests until Shutdown.
func (s *Server) Serve() error {
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops the server, letting requests in flight finish.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

func protoParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	p := r.URL.Query().Get("proto")
	switch p {
	case "", "tcp", "udp", "icmp":
		return p, true
	}
	writeJSON(w, http.StatusBadRequest, Error{fmt.Sprintf("proto %q: want tcp, udp or icmp", p)})
	return "", false
}

func readStatic(w http.ResponseWriter, r *http.Request) (StaticEntry, bool) {
	var e StaticEntry
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		writeJSON(w, http.StatusBadRequest, Error{"body: " + err.Error()})
		return e, false
	}
	return e, true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// nonNil makes an empty list travel as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
