package ctl

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/calyx-net/calyx/internal/api"
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
	var out []sourced
	seen := map[string]sourced{}
	for _, f := range files {
		var data []byte
		var err error
		name := f
		if f == "-" {
			name = "<stdin>"
			data, err = io.ReadAll(stdin)
		} else {
			data, err = os.ReadFile(f)
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		rs, err := api.DecodeFile(name, data)
		if err != nil {
			return nil, err
		}
		for i, r := range rs {
			s := sourced{file: name, index: i, resource: r}
			key := r.GetKind() + "/" + r.GetObjectMeta().Name
			if prev, dup := seen[key]; dup {
				return nil, fmt.Errorf("%s: %s %q is also defined in %s", s, r.GetKind(), r.GetObjectMeta().Name, prev)
			}
			seen[key] = s
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no resources found", strings.Join(files, ", "))
	}
	return out, nil
}
