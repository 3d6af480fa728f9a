package release

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Changelog is the top entry of deploy/debian/changelog: the one place the
// release version is written. Debian's tools read a package's version from
// there, and a version must compare upward from release to release
// (dpkg --compare-versions), which a commit hash from git describe on an
// untagged tree does not.
type Changelog struct {
	Package, Version, Distribution string
	Date                           time.Time // the trailer's; every packaged file gets it as mtime
}

var (
	changelogHead    = regexp.MustCompile(`^([a-z0-9][a-z0-9+.-]+) \(([^() ]+)\) ([a-z][a-z0-9-]*); urgency=(low|medium|high|emergency|critical)$`)
	changelogTrailer = regexp.MustCompile(`^ -- ([^<>]+ <[^<>@ ]+@[^<> ]+>)  (.+)$`)
	// Native versions only: no Debian revision, since the package is
	// built from this tree, not from an upstream tarball.
	nativeVersion = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)
)

// ReadChangelog parses the top entry of a Debian changelog; an error names
// the file and line.
func ReadChangelog(path string) (Changelog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Changelog{}, err
	}
	return ParseChangelog(path, data)
}

// ParseChangelog is ReadChangelog on the file's content; path only names
// it in errors.
func ParseChangelog(path string, data []byte) (Changelog, error) {
	lines := strings.Split(string(data), "\n")
	m := changelogHead.FindStringSubmatch(lines[0])
	if m == nil {
		return Changelog{}, fmt.Errorf("%s:1: want \"PACKAGE (VERSION) DISTRIBUTION; urgency=URGENCY\", have %q", path, lines[0])
	}
	c := Changelog{Package: m[1], Version: m[2], Distribution: m[3]}
	if !nativeVersion.MatchString(c.Version) {
		return Changelog{}, fmt.Errorf("%s:1: version %q: want digits, letters and . + ~ starting with a digit (a native version, no Debian revision)", path, c.Version)
	}
	for i, l := range lines[1:] {
		if changelogHead.MatchString(l) {
			break // the next entry: the top one has no trailer
		}
		if t := changelogTrailer.FindStringSubmatch(l); t != nil {
			d, err := time.Parse(time.RFC1123Z, t[2])
			if err != nil {
				return Changelog{}, fmt.Errorf("%s:%d: date %q: want RFC 5322 as date -R prints it (%v)", path, i+2, t[2], err)
			}
			c.Date = d
			return c, nil
		}
	}
	return Changelog{}, fmt.Errorf("%s: the top entry has no \" -- NAME <EMAIL>  DATE\" trailer", path)
}

// controlField is one field of a control file, with the line it starts on.
type controlField struct {
	Name, Value string
	Line        int
}

// Control is a binary package's control paragraph, in file order.
type Control []controlField

// Get is the value of a field, "" when absent.
func (c Control) Get(name string) string {
	for _, f := range c {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// Bytes is the paragraph as DEBIAN/control holds it.
func (c Control) Bytes() []byte {
	var b bytes.Buffer
	for _, f := range c {
		fmt.Fprintf(&b, "%s: %s\n", f.Name, f.Value)
	}
	return b.Bytes()
}

// The fields deploy/debian/control may have, and what each value must be.
// Version and Installed-Size are not among them: the build writes them
// (from the changelog and from the files), so they cannot disagree.
var (
	packageName  = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	maintainer   = regexp.MustCompile(`^[^<>,]+ <[^<>@ ]+@[^<> ]+\.[^<> ]+>$`)
	relationItem = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(:any)?( \((<<|<=|=|>=|>>) [0-9][A-Za-z0-9.+~:-]*\))?$`)
	// Debian policy section 2.4, the sections of the main archive.
	sections = []string{"admin", "cli-mono", "comm", "database", "debug", "devel", "doc", "editors", "education",
		"electronics", "embedded", "fonts", "games", "gnome", "gnu-r", "gnustep", "graphics", "hamradio", "haskell",
		"httpd", "interpreters", "introspection", "java", "javascript", "kde", "kernel", "libdevel", "libs", "lisp",
		"localization", "mail", "math", "metapackages", "misc", "net", "news", "ocaml", "oldlibs", "otherosfs", "perl",
		"php", "python", "ruby", "rust", "science", "shells", "sound", "tasks", "tex", "text", "utils", "vcs", "video",
		"web", "x11", "xfce", "zope"}
	priorities = []string{"required", "important", "standard", "optional"}
)

func checkRelations(v string) error {
	for _, item := range strings.Split(v, ",") {
		for _, alt := range strings.Split(item, "|") {
			if !relationItem.MatchString(strings.TrimSpace(alt)) {
				return fmt.Errorf("%q is not a package relation (NAME or NAME (OP VERSION))", strings.TrimSpace(alt))
			}
		}
	}
	return nil
}

var controlFields = map[string]func(v string) error{
	"Package": func(v string) error {
		if !packageName.MatchString(v) {
			return fmt.Errorf("%q: want lower-case letters, digits and + - . (two characters at least)", v)
		}
		return nil
	},
	"Architecture": func(v string) error {
		if v != "amd64" {
			return fmt.Errorf("%q: the binaries are built for amd64", v)
		}
		return nil
	},
	"Maintainer": func(v string) error {
		if !maintainer.MatchString(v) {
			return fmt.Errorf("%q: want \"NAME <EMAIL>\"", v)
		}
		return nil
	},
	"Section": func(v string) error {
		if !slices.Contains(sections, v) {
			return fmt.Errorf("%q is not a Debian archive section (for example net, admin, utils)", v)
		}
		return nil
	},
	"Priority": func(v string) error {
		if !slices.Contains(priorities, v) {
			return fmt.Errorf("%q: want one of %s", v, strings.Join(priorities, ", "))
		}
		return nil
	},
	"Description": func(v string) error {
		synopsis, long, _ := strings.Cut(v, "\n")
		switch {
		case strings.TrimSpace(synopsis) == "":
			return errors.New("the first line (the synopsis) is empty")
		case len(synopsis) > 80:
			return fmt.Errorf("the synopsis has %d characters, more than 80", len(synopsis))
		case strings.TrimSpace(long) == "":
			return errors.New("no extended description after the synopsis")
		}
		return nil
	},
	"Depends": checkRelations, "Pre-Depends": checkRelations, "Recommends": checkRelations,
	"Suggests": checkRelations, "Enhances": checkRelations, "Breaks": checkRelations,
	"Conflicts": checkRelations, "Replaces": checkRelations, "Provides": checkRelations,
}

var requiredFields = []string{"Package", "Section", "Priority", "Architecture", "Maintainer", "Description"}

// ReadControl reads and checks a binary package's control template. Every
// problem is reported at once, each naming the file, the line and the
// field.
func ReadControl(path string) (Control, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseControl(path, data)
}

// ParseControl is ReadControl on the file's content; path only names it
// in errors.
func ParseControl(path string, data []byte) (Control, error) {
	var (
		c    Control
		errs []error
	)
	bad := func(line int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s:%d: "+format, append([]any{path, line}, args...)...))
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		l := sc.Text()
		switch {
		case strings.TrimSpace(l) == "":
			bad(n, "blank line: a binary package's control is one paragraph")
		case l[0] == ' ' || l[0] == '\t':
			if len(c) == 0 {
				bad(n, "continuation line before any field")
				continue
			}
			c[len(c)-1].Value += "\n" + l
		default:
			name, value, ok := strings.Cut(l, ":")
			if !ok || name == "" || strings.ContainsAny(name, " \t") {
				bad(n, "%q: want \"Field: value\"", l)
				continue
			}
			c = append(c, controlField{Name: name, Value: strings.TrimSpace(value), Line: n})
		}
	}
	seen := map[string]int{}
	for _, f := range c {
		if first, dup := seen[f.Name]; dup {
			bad(f.Line, "field %q: already given on line %d", f.Name, first)
			continue
		}
		seen[f.Name] = f.Line
		check, known := controlFields[f.Name]
		switch {
		case f.Name == "Version" || f.Name == "Installed-Size":
			bad(f.Line, "field %q: the build writes it (Version from the changelog, Installed-Size from the files); remove it", f.Name)
		case !known:
			bad(f.Line, "field %q: unknown field (want one of %s)", f.Name, strings.Join(slices.Sorted(maps.Keys(controlFields)), ", "))
		default:
			if err := check(f.Value); err != nil {
				bad(f.Line, "field %q: %v", f.Name, err)
			}
		}
	}
	for _, name := range requiredFields {
		if _, ok := seen[name]; !ok {
			errs = append(errs, fmt.Errorf("%s: field %q is missing", path, name))
		}
	}
	return c, errors.Join(errs...)
}
