package mesos

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDocsEnableCNIIsolator checks that docs/mesos.md tells the operator
// to enable the network/cni isolator in the agent's flags, and how to
// recognise an agent that runs without it: without the isolator Mesos
// never runs the plugins and tasks get no Calyx network.
func TestDocsEnableCNIIsolator(t *testing.T) {
	b, err := os.ReadFile("../../docs/mesos.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	_, flags, ok := strings.Cut(doc, "### The agent's flags")
	if !ok {
		t.Fatal(`docs/mesos.md has no "### The agent's flags" section`)
	}
	flags, _, _ = strings.Cut(flags, "\n## ")
	block := regexp.MustCompile("(?s)```sh\n(.*?)```").FindStringSubmatch(flags)
	if block == nil {
		t.Fatal("the agent's flags section has no sh block")
	}
	isolation := regexp.MustCompile(`--isolation=(\S+)`).FindStringSubmatch(block[1])
	if isolation == nil {
		t.Fatalf("the agent's flags do not set --isolation:\n%s", block[1])
	}
	for _, want := range []string{"network/cni", "filesystem/linux"} {
		if !strings.Contains(","+isolation[1]+",", ","+want+",") {
			t.Errorf("--isolation=%s lacks %s", isolation[1], want)
		}
	}
	_, trouble, ok := strings.Cut(doc, "## 4. Troubleshooting")
	if !ok {
		t.Fatal("docs/mesos.md has no troubleshooting section")
	}
	entry := regexp.MustCompile(`(?s)- \*\*The task runs but has no Calyx address\*\*(.*?)\n- \*\*`).FindStringSubmatch(trouble)
	if entry == nil {
		t.Fatal(`no troubleshooting entry "The task runs but has no Calyx address"`)
	}
	if !strings.Contains(entry[1], "network/cni") || !strings.Contains(entry[1], "--isolation") {
		t.Errorf("the troubleshooting entry does not point at the isolator:\n%s", entry[1])
	}
}

// TestDocsPortMappings checks that docs/mesos.md explains Mesos port
// mappings: where they come from, that the task's ingress policy applies
// with the container port, how to see them, and that Calico needed
// mesos-cni-port-mapper for them.
func TestDocsPortMappings(t *testing.T) {
	b, err := os.ReadFile("../../docs/mesos.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "### Port mappings")
	if !ok {
		t.Fatal(`docs/mesos.md has no "### Port mappings" section`)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	for _, want := range []string{
		`"hostPort"`, "network_info.port_mappings", "inet calyx", "ingress policy",
		"container port", "calyxctl get workloadendpoint", "nft list table inet calyx", "mesos-cni-port-mapper",
	} {
		if !strings.Contains(sec, want) {
			t.Errorf("the port mappings section does not mention %s", want)
		}
	}
}
