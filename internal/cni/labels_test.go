package cni

import (
	"strings"
	"testing"
)

func TestSanitiseLabel(t *testing.T) {
	long := strings.Repeat("a", 64)
	for i, tc := range []struct {
		key, value   string
		wantK, wantV string
		dropped      string // part of the warning; "" = kept
	}{
		{key: "app", value: "frontend", wantK: "app", wantV: "frontend"},
		{key: "group", value: "prod", wantK: "group", wantV: "prod"},
		{key: "mesos.apache.org/role", value: "web", wantK: "mesos.apache.org.role", wantV: "web"},
		{key: "a/b/c", value: "x/y", wantK: "a.b.c", wantV: "x.y"},
		{key: "key with spaces", value: "v a l", wantK: "key-with-spaces", wantV: "v-a-l"},
		{key: "k!!!@@@k", value: "v", wantK: "k-k", wantV: "v"},
		{key: "a.-.b", value: "c-.-d", wantK: "a.b", wantV: "c.d"},
		{key: "a--b", value: "c---d", wantK: "a--b", wantV: "c---d"},
		{key: "a-.b", value: "x.-y", wantK: "a.b", wantV: "x.y"},
		{key: "/leading", value: "trailing/", wantK: "leading", wantV: "trailing"},
		{key: "--k--", value: "..v..", wantK: "k", wantV: "v"},
		{key: "a/-/b", value: "v", wantK: "a.b", wantV: "v"},
		{key: "Upper_Case", value: "MiXeD_1", wantK: "Upper_Case", wantV: "MiXeD_1"},
		{key: "ünïcode", value: "日本", wantK: "n-code", wantV: "", dropped: ""},
		{key: "tier", value: "", wantK: "tier", wantV: ""},
		{key: "k", value: "a b/c", wantK: "k", wantV: "a-b.c"},
		{key: "k", value: "--", wantK: "k", wantV: ""},
		{key: "123", value: "456", wantK: "123", wantV: "456"},
		{key: "a:b", value: "c=d", wantK: "a-b", wantV: "c-d"},
		{key: "", value: "v", wantK: "", dropped: "key"},
		{key: "///", value: "v", wantK: "", dropped: "is empty"},
		{key: "_private", value: "v", wantK: "_private", dropped: "must start and end"},
		{key: "k", value: "v_", wantK: "k", wantV: "v_", dropped: "value"},
		{key: long, value: "v", wantK: long, dropped: "64 characters"},
		{key: "k", value: long, wantK: "k", wantV: long, dropped: "at most 63"},
		{key: "tab\there", value: "new\nline", wantK: "tab-here", wantV: "new-line"},
	} {
		k, v, warn := SanitiseLabel(tc.key, tc.value)
		if tc.dropped != "" {
			if warn == "" || !strings.Contains(warn, tc.dropped) {
				t.Errorf("%d: SanitiseLabel(%q, %q) warning %q, want one containing %q", i, tc.key, tc.value, warn, tc.dropped)
			}
			continue
		}
		if warn != "" || k != tc.wantK || v != tc.wantV {
			t.Errorf("%d: SanitiseLabel(%q, %q) = %q, %q, %q; want %q, %q kept", i, tc.key, tc.value, k, v, warn, tc.wantK, tc.wantV)
		}
	}
}
