package ctl

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
)

// sourced is a decoded resource and where it came from, so that errors
// found after decoding can still name the file and document.
type sourced struct {
	file     string
	index    int // 0-based position among the file's resources
	resource api.Resource
}

func (s sourced) String() string {
	m := s.resource.GetObjectMeta()
	return fmt.Sprintf("%s: document %d (%s %q)", s.file, s.index+1, s.resource.GetKind(), m.Name)
}

// loadPaths decodes, defaults and validates every document in the given
// files ("-" is stdin; a directory contributes its *.yaml, *.yml and *.json
// files in name order). It returns the first error and no resources if any
// document is bad, so callers write all or nothing.
func loadPaths(paths []string, stdin io.Reader) ([]sourced, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("no input: give -f FILE, -f DIR or -f -")
	}
	var files []string
	for _, p := range paths {
		if p == "-" {
			files = append(files, p)
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("reading directory %s: %w", p, err)
		}
		var inDir []string
		for _, e := range entries {
			ext := strings.ToLower(filepath.Ext(e.Name()))
			if !e.IsDir() && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
				inDir = append(inDir, filepath.Join(p, e.Name()))
			}
		}
		if len(inDir) == 0 {
			return nil, fmt.Errorf("directory %s holds no .yaml, .yml or .json files", p)
		}
		sort.Strings(inDir)
		files = append(files, inDir...)
	}
	l := loader{seen: map[string]sourced{}}
	for _, f := range files {
		if f == "-" {
			if err := l.read("<stdin>", stdin); err != nil {
				return nil, err
			}
			continue
		}
		fh, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", f, err)
		}
		err = l.read(f, fh)
		_ = fh.Close()
		if err != nil {
			return nil, err
		}
	}
	if len(l.out) == 0 {
		return nil, fmt.Errorf("%s: no resources found", strings.Join(files, ", "))
	}
	return l.out, nil
}

// loader collects the resources of several files.
type loader struct {
	out  []sourced
	seen map[string]sourced // by kind/name
}

// read decodes one file document by document, so that a bad document or
// one too many stops the reading there rather than after the whole input.
func (l *loader) read(name string, r io.Reader) error {
	d := api.NewDecoder(name, r)
	for i := 0; ; {
		rs, err := d.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, r := range rs {
			s := sourced{file: name, index: i, resource: r}
			i++
			if len(l.out) == maxResources {
				return fmt.Errorf("%s: more than %d resources: calyxctl writes all of its input in one transaction, "+
					"and a transaction holds at most %d operations (the datastore's limit); split the input into several files and apply them one by one",
					s, maxResources, maxResources)
			}
			key := r.GetKind() + "/" + r.GetObjectMeta().Name
			if prev, dup := l.seen[key]; dup {
				return fmt.Errorf("%s: %s %q is also defined in %s", s, r.GetKind(), r.GetObjectMeta().Name, prev)
			}
			l.seen[key] = s
			l.out = append(l.out, s)
		}
	}
}

// maxResources is the most resources one calyxctl command reads: all of
// them are written in one transaction, which etcd bounds.
const maxResources = datastore.DefaultMaxTxnOps
