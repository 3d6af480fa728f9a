package state

// heldStore keeps the IPv4 SYNs waiting for a simultaneous open (RFC 6146
// §3.5.2.2), in memory allocated once: a fixed number of slots of fixed
// size. All have the same lifetime, so a FIFO list is their expiry order.
type heldStore struct {
	slots   []heldSlot
	buf     []byte
	size    int
	byKey   map[Flow4]int32
	head    int32 // oldest
	tail    int32
	free    int32
	n       int
	timeout int64
	deliver []int32
}

type heldSlot struct {
	key        Flow4
	exp        int64
	len        int32
	prev, next int32
}

func (h *heldStore) init(count, size int, timeout int64) {
	h.slots = make([]heldSlot, count)
	h.buf = make([]byte, count*size)
	h.size = size
	h.byKey = make(map[Flow4]int32, count)
	h.timeout = timeout
	h.deliver = make([]int32, 0, count)
	h.head, h.tail, h.free = -1, -1, -1
	for i := count - 1; i >= 0; i-- {
		h.slots[i].next = h.free
		h.free = int32(i)
	}
}

func (h *heldStore) has(k Flow4) bool {
	_, ok := h.byKey[k]
	return ok
}

func (h *heldStore) add(k Flow4, pkt []byte, now int64) bool {
	if h.free < 0 {
		return false
	}
	i := h.free
	sl := &h.slots[i]
	h.free = sl.next
	sl.key, sl.exp = k, now+h.timeout
	sl.len = int32(copy(h.buf[int(i)*h.size:(int(i)+1)*h.size], pkt))
	sl.next, sl.prev = -1, h.tail
	if h.tail >= 0 {
		h.slots[h.tail].next = i
	} else {
		h.head = i
	}
	h.tail = i
	h.byKey[k] = i
	h.n++
	return true
}

func (h *heldStore) unlink(i int32) {
	sl := &h.slots[i]
	if sl.prev >= 0 {
		h.slots[sl.prev].next = sl.next
	} else {
		h.head = sl.next
	}
	if sl.next >= 0 {
		h.slots[sl.next].prev = sl.prev
	} else {
		h.tail = sl.prev
	}
	delete(h.byKey, sl.key)
	h.n--
}

// drop discards the held SYN of k, if any.
func (h *heldStore) drop(k Flow4) bool {
	i, ok := h.byKey[k]
	if !ok {
		return false
	}
	h.unlink(i)
	h.slots[i].next = h.free
	h.free = i
	return true
}

// expire moves the SYNs due by now to the deliver list.
func (h *heldStore) expire(now int64) int {
	for h.head >= 0 && h.slots[h.head].exp <= now {
		i := h.head
		h.unlink(i)
		h.deliver = append(h.deliver, i)
	}
	return len(h.deliver)
}

func (h *heldStore) packet(i int32) []byte {
	off := int(i) * h.size
	return h.buf[off : off+int(h.slots[i].len)]
}

func (h *heldStore) release() {
	for _, i := range h.deliver {
		h.slots[i].next = h.free
		h.free = i
	}
	h.deliver = h.deliver[:0]
}
