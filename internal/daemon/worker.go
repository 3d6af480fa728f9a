package daemon

import (
	"errors"
	"log/slog"
	"sync"

	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/tunio"
	"github.com/nat64kit/nat64kit/internal/xlat"
)

// batchBounds are the upper bounds of the TUN batch-size histogram.
var batchBounds = [numBuckets]int{1, 2, 4, 8, 16, 32, 64, 128}

const numBuckets = 8

// worker owns one TUN queue: it reads a batch, translates every packet in
// place, and writes the batch back. Nothing on this path allocates: the
// slots, the Output and the spare buffers are made once, in newWorker.
//
// Pipelined, a second goroutine writes one batch while the next is read and
// translated, so one busy flow can use two cores; the writer takes the
// batches in order, so a flow's packets are never reordered.
type worker struct {
	dev   tunio.Device
	tr    *xlat.Translator
	out   *xlat.Output
	clock func() int64
	log   *slog.Logger

	// slot is the batch being read and translated.
	slot *slot
	// Pipelined only: toWrite takes translated slots to the writer, which
	// gives them back on written. nil when the worker writes itself.
	toWrite, written chan *slot

	batches [numBuckets]uint64 // by batchBounds

	// writeMu serializes writes to dev: the worker's batches and the
	// expiry's ICMP errors (a Device takes one writer at a time).
	writeMu  sync.Mutex
	oneWrite [1][]byte
	oneBuf   []byte

	// mu guards published, the counters other goroutines read; the worker
	// copies its own into it once per batch.
	mu        sync.Mutex
	published xlat.Counters
	pubBatch  [numBuckets]uint64
}

// slot is one batch in flight: the buffers read and translated in place,
// and the spare buffers holding packets the translator built in its own
// arena (ICMP errors, IPv6 fragments), copied behind WriteOffset bytes of
// headroom so the TUN can prepend its virtio-net header.
type slot struct {
	batch     *tunio.Batch
	spares    [][]byte
	nextSpare int
}

func newSlot(batchSize, spareSize int) *slot {
	s := &slot{batch: tunio.NewBatch(batchSize)}
	// Enough for one full Output (the fragments of a 64 KiB datagram);
	// when a batch needs more, the worker writes early.
	block := make([]byte, xlat.MaxPackets*spareSize)
	for i := 0; i < xlat.MaxPackets; i++ {
		s.spares = append(s.spares, block[i*spareSize:(i+1)*spareSize:(i+1)*spareSize])
	}
	return s
}

// pipelineSlots is how many batches a pipelined worker has: one being
// translated, one being written.
const pipelineSlots = 2

func newWorker(dev tunio.Device, tr *xlat.Translator, spareSize int, clock func() int64, log *slog.Logger, pipelined bool) *worker {
	w := &worker{
		dev:   dev,
		tr:    tr,
		slot:  newSlot(dev.BatchSize(), spareSize),
		out:   xlat.NewOutput(),
		clock: clock,
		log:   log,
	}
	if pipelined {
		w.toWrite = make(chan *slot)
		w.written = make(chan *slot, pipelineSlots)
		for i := 1; i < pipelineSlots; i++ {
			w.written <- newSlot(dev.BatchSize(), spareSize)
		}
	}
	return w
}

// run reads until the device is closed.
func (w *worker) run() {
	if w.toWrite != nil {
		defer w.startWriter()()
	}
	for {
		n, err := w.slot.batch.Read(w.dev)
		if err != nil {
			if errors.Is(err, tunio.ErrClosed) {
				return
			}
			// A read error loses one packet (e.g. a super-packet with
			// more segments than a batch has buffers); keep serving.
			w.tr.Counters.Drops[nat64.TUNReadError]++
			w.publish()
			w.log.Warn("tun read", "err", err)
			continue
		}
		w.handle(n)
	}
}

// startWriter starts a pipelined worker's writer goroutine; the function
// it returns stops it, once the batches handed over are written.
func (w *worker) startWriter() (stop func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for s := range w.toWrite {
			w.write(s)
			w.written <- s
		}
	}()
	return func() {
		close(w.toWrite)
		<-done
	}
}

// handle translates the n packets of the last read and writes the result.
func (w *worker) handle(n int) {
	now := w.clock()
	w.batches[bucket(n)]++
	for i := 0; i < n; i++ {
		buf := w.slot.batch.Bufs[i]
		w.tr.Process(buf, tunio.Offset, w.slot.batch.Sizes[i], now, w.out)
		for j, p := range w.out.List() {
			start, inPlace := w.out.InPlace(j)
			w.queue(buf, p, start, inPlace)
		}
	}
	// Counted before sent: whoever sees a packet of this batch also sees
	// it in the counters.
	w.publish()
	if w.toWrite == nil {
		w.write(w.slot)
		return
	}
	w.toWrite <- w.slot
	w.slot = <-w.written
}

// queue puts one output packet on the write list: in place when the
// translator rewrote it in the read buffer (at buf[start:]) with room for
// the device's header in front, else through a spare buffer.
func (w *worker) queue(buf, p []byte, start int, inPlace bool) {
	s := w.slot
	if inPlace && start >= tunio.WriteOffset {
		s.batch.Queue(buf, start, start+len(p))
		return
	}
	if len(p)+tunio.WriteOffset > cap(s.spares[0]) {
		w.tr.Counters.Drops[nat64.OutputFull]++
		return
	}
	if s.nextSpare == len(s.spares) {
		w.writeEarly()
	}
	sp := s.spares[s.nextSpare]
	s.nextSpare++
	copy(sp[tunio.WriteOffset:], p)
	s.batch.QueueExact(sp, tunio.WriteOffset, tunio.WriteOffset+len(p))
}

// writeEarly writes what the current batch has queued so its spares can be
// reused. Pipelined, it first waits for the writer to finish the batches
// before it, so the order of packets holds.
func (w *worker) writeEarly() {
	if w.toWrite != nil {
		var idle [pipelineSlots - 1]*slot
		for i := range idle {
			idle[i] = <-w.written
		}
		for _, s := range idle {
			w.written <- s
		}
	}
	w.write(w.slot)
}

// write sends a slot's queued packets to the device and frees its spares.
func (w *worker) write(s *slot) {
	if s.batch.Queued() > 0 {
		w.writeMu.Lock()
		_, err := s.batch.Flush(w.dev)
		w.writeMu.Unlock()
		if err != nil && !errors.Is(err, tunio.ErrClosed) {
			// The kernel refuses single packets (e.g. no route back);
			// the others were written.
			w.log.Debug("tun write", "err", err)
		}
	}
	s.nextSpare = 0
}

// writeOne writes a packet from outside the worker's loop (the expiry's
// ICMP errors), with the headroom the device needs.
func (w *worker) writeOne(p []byte) {
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	if len(p)+tunio.WriteOffset > cap(w.oneBuf) {
		w.oneBuf = make([]byte, tunio.WriteOffset+len(p))
	}
	b := w.oneBuf[:tunio.WriteOffset+len(p)]
	copy(b[tunio.WriteOffset:], p)
	w.oneWrite[0] = b
	if _, err := w.dev.Write(w.oneWrite[:], tunio.WriteOffset); err != nil {
		w.log.Debug("tun write", "err", err)
	}
}

func (w *worker) publish() {
	w.mu.Lock()
	w.published = w.tr.Counters
	w.pubBatch = w.batches
	w.mu.Unlock()
}

// snapshot adds the worker's last published counters into c and b.
func (w *worker) snapshot(c *xlat.Counters, b *[numBuckets]uint64) {
	w.mu.Lock()
	c.Add(&w.published)
	for i := range b {
		b[i] += w.pubBatch[i]
	}
	w.mu.Unlock()
}

func bucket(n int) int {
	for i, b := range batchBounds {
		if n <= b {
			return i
		}
	}
	return len(batchBounds) - 1
}
