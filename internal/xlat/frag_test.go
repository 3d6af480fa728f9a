package xlat

import (
	"testing"
)

func fragTestKey(i int) fragKey {
	k := fragKey{id: uint32(i), proto: 17, v6: true}
	copy(k.src[:], hostX[:])
	copy(k.dst[:], serverZ6[:])
	return k
}

// The fragment table's slots come from a hash keyed per table: the same
// key lands in unrelated slots of two tables, so keys that an attacker
// made collide in one table (had it learnt that table's seed) are spread
// in another, and cannot crowd out other flows' entries there.
func TestFragmentHashKeyedPerTable(t *testing.T) {
	var a, b fragTable
	same := 0
	for i := range 256 {
		k := fragTestKey(i)
		ha := a.hash(&k)
		if ha == b.hash(&k) {
			same++
		}
		if again := a.hash(&k); again != ha {
			t.Fatal("a table's hash of one key changed")
		}
	}
	if same != 0 {
		t.Fatalf("%d of 256 keys hash alike in two tables: the hash is not keyed", same)
	}

	// Keys that all share one home slot in a: found by trying, as an
	// attacker who could compute a's hash would.
	home := func(ft *fragTable, k *fragKey) uint64 { return ft.hash(k) & (fragTableSize - 1) }
	k0 := fragTestKey(0)
	target := home(&a, &k0)
	var colliding []fragKey
	for i := 1; len(colliding) < 3*fragProbe; i++ {
		if k := fragTestKey(i); home(&a, &k) == target {
			colliding = append(colliding, k)
		}
	}
	// In a they overflow the probe window: entries are pushed out.
	var addr [16]byte
	for i := range colliding {
		a.put(&colliding[i], &addr, now0, int64(FragmentTimeout))
	}
	lost := 0
	for i := range colliding {
		if _, ok := a.get(&colliding[i], now0); !ok {
			lost++
		}
	}
	if lost == 0 {
		t.Fatalf("%d keys in one probe window of %d, none lost: the test does not collide", len(colliding), fragProbe)
	}
	// In b the same keys are spread: every one is found, and no slot is
	// home to more than a few of them.
	slots := map[uint64]int{}
	for i := range colliding {
		b.put(&colliding[i], &addr, now0, int64(FragmentTimeout))
		slots[home(&b, &colliding[i])]++
	}
	for i := range colliding {
		if _, ok := b.get(&colliding[i], now0); !ok {
			t.Errorf("key %d lost in a table whose seed it was not made for", colliding[i].id)
		}
	}
	for s, n := range slots {
		if n > 3 {
			t.Errorf("%d of the %d keys share slot %d of the other table", n, len(colliding), s)
		}
	}
}

// Lookups by the keyed hash find what was put, keep IPv4 and IPv6 keys
// apart, and miss what was not put.
func TestFragmentTableLookups(t *testing.T) {
	var ft fragTable
	for i := range 1000 {
		k := fragTestKey(i)
		a := [16]byte{byte(i), byte(i >> 8)}
		ft.put(&k, &a, now0, int64(FragmentTimeout))
	}
	for i := range 1000 {
		k := fragTestKey(i)
		got, ok := ft.get(&k, now0)
		if !ok {
			// The seed is random, so now and then more than fragProbe keys
			// share a window and the oldest is pushed out: that is allowed
			// only when its whole window is taken by other live entries.
			home := ft.hash(&k)
			for j := uint64(0); j < fragProbe; j++ {
				if e := &ft.entries[(home+j)&(fragTableSize-1)]; e.expires <= now0 || e.key == k {
					t.Fatalf("key %d lost although slot %d of its window is free", i, j)
				}
			}
			continue
		}
		if got[0] != byte(i) || got[1] != byte(i>>8) {
			t.Fatalf("key %d: %v", i, got)
		}
		k.v6 = false
		if _, ok := ft.get(&k, now0); ok {
			t.Fatalf("key %d found as IPv4", i)
		}
	}
	k := fragTestKey(5000)
	if _, ok := ft.get(&k, now0); ok {
		t.Fatal("a key never put was found")
	}
}

func TestFragmentTableZeroAllocs(t *testing.T) {
	var ft fragTable
	k := fragTestKey(1)
	var a [16]byte
	allocs := testing.AllocsPerRun(1000, func() {
		k.id++
		ft.put(&k, &a, now0, int64(FragmentTimeout))
		if _, ok := ft.get(&k, now0); !ok {
			t.Fatal("lost")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per put and get", allocs)
	}
}
