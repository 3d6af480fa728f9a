package dns64

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

// answerCacheOff, set for the second run of the tests, takes the answer
// cache out of every plugin whose Corefile does not name answer_cache, so
// each test of the package passes both with the cache (the default) and
// without.
var answerCacheOff bool

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if code != 0 || flagSet("test.bench") || flagSet("test.fuzz") || flagSet("test.list") {
		os.Exit(code)
	}
	fmt.Println("dns64: the tests again, with answer_cache off")
	answerCacheOff = true
	os.Exit(m.Run())
}

func flagSet(name string) bool {
	f := flag.Lookup(name)
	return f != nil && f.Value.String() != ""
}
