package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// Every repository path docs/deploy.md names exists, so its commands do
// not point at files that moved; it links nowhere outside the repository.
func TestDeployDocPaths(t *testing.T) {
	doc, err := os.ReadFile("../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	paths := regexp.MustCompile(`(?:deploy|corefile-examples)/[A-Za-z0-9_.@/-]*[A-Za-z0-9_@]`).FindAllString(string(doc), -1)
	if len(paths) < 10 {
		t.Fatalf("only %d paths found", len(paths))
	}
	for _, p := range paths {
		if _, err := os.Stat(filepath.Join("..", p)); err != nil {
			t.Errorf("docs/deploy.md names %s: %v", p, err)
		}
	}
	if regexp.MustCompile(`\]\(\w+://`).Match(doc) {
		t.Error("docs/deploy.md links outside the repository")
	}
}
