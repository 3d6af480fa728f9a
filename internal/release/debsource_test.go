package release

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// Any input is refused with an error or parsed; a control file that
// parses is written back as DEBIAN/control holds it and parses again to
// the same fields.
func FuzzParseControl(f *testing.F) {
	if b, err := os.ReadFile("../../deploy/debian/control"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("Package: a1\nSection: net\nPriority: optional\nArchitecture: amd64\nMaintainer: A <a@b.example>\nDescription: x\n more\n"))
	f.Add([]byte(" continuation first\n"))
	f.Add([]byte("Depends: libc6 (>= 2.36) | musl, foo\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseControl("control", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "control") {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		again, err := ParseControl("control", c.Bytes())
		if err != nil || !slices.Equal(again, c) {
			t.Errorf("%q parsed, but its bytes %q do not parse back: %v", data, c.Bytes(), err)
		}
	})
}

func FuzzParseChangelog(f *testing.F) {
	if b, err := os.ReadFile("../../deploy/debian/changelog"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("p (1) unstable; urgency=low\n\n -- A <a@b.example>  Thu, 03 Dec 2026 08:00:00 +0000\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseChangelog("changelog", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "changelog") {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		if !nativeVersion.MatchString(c.Version) || c.Date.IsZero() {
			t.Errorf("%q: accepted version %q date %v", data, c.Version, c.Date)
		}
	})
}
